"""How much arithmetic a served manifest costs, and what share of the GPU's peak a measured rate uses.

Counts the forward FLOPs (2 per multiply-add) of one request on the Qwen2.5-VL-3B shape
(`vlmocr.models.build.SIZES["3b"]`): the vision tower on the image's patches, the language model's
prefill of the prompt tokens the prefix cache did not hold, and the forced output tokens' decode,
attention included. The token counts come from each record of a `bench_serve_gpu.py` results file
(vLLM's own counters: prompt tokens, prefix-cache hits, completion tokens); the image's patches from
the resolution contract for the benchmark's 768x768 manifests. Multiplying by the measured images/s
gives the arithmetic rate the GPU sustained (and, where a record has `full_images_per_s`, the rate
while the server was full); dividing by the card's dense peak (NVIDIA's data sheet, below) gives the
share of peak. These are computed figures, not measured ones: they say how far a
rate is from what the card can do, and which part of a request the arithmetic is in.

    python benchmarks/serve_flops.py benchmarks/results/serve_gpu_h200_fp8.json [...] \
        --json benchmarks/results/serve_gpu_flops.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tables import _while_full  # benchmarks/tables.py, beside this script
from vlmocr.images import Resolution
from vlmocr.models.build import SIZES

#: Dense tensor-core peaks in TFLOP/s from NVIDIA's H100 SXM / H200 data sheets (the sparse figures
#: are twice these). H100 SXM and H200 share the same compute; H200 has more memory bandwidth.
PEAK_TFLOPS = {"bf16": 989.0, "fp8": 1979.0}
IMAGE_SIDE = 768  # bench_serve_gpu.py's manifests
PATCH = 14
WINDOW = 112  # Qwen2.5-VL's vision attention window, in pixels


def request_flops(prompt_tokens: float, cached_tokens: float, output_tokens: float, size: str = "3b") -> dict:
    """Forward FLOPs of one request, by part."""
    s = SIZES[size]
    tokens = Resolution().visual_tokens(IMAGE_SIDE, IMAGE_SIDE)
    patches = 4 * tokens  # 2x2 patches merge into one visual token
    vh, vi = s.vision_hidden_size, s.vision_intermediate_size
    vision_layer = 4 * vh * vh + 3 * vh * vi  # qkv + proj, gate/up/down
    patch_embed = 3 * 2 * PATCH * PATCH * vh
    window_tokens = (WINDOW // PATCH) ** 2
    full = len(s.vision_fullatt_blocks)
    vision = (2 * patches * (patch_embed + s.vision_depth * vision_layer)
              + 4 * patches * patches * vh * full  # QK^T and AV over the whole image
              + 4 * patches * window_tokens * vh * (s.vision_depth - full)  # windowed blocks
              + 2 * tokens * (4 * vh * 4 * vh + 4 * vh * s.hidden_size))  # the merger MLP
    h, kv = s.hidden_size, s.num_key_value_heads * (s.hidden_size // s.num_attention_heads)
    layer = 2 * h * h + 2 * h * kv + 3 * h * s.intermediate_size  # q, o; k, v; MLP
    lm_layers = s.num_hidden_layers * layer
    head = h * (s.model_vocab_size or s.vocab_size)
    new = prompt_tokens - cached_tokens
    attn = 4 * h * s.num_hidden_layers  # QK^T + AV per (query, key) pair
    prefill = 2 * new * lm_layers + 2 * head + attn * new * (cached_tokens + new / 2)
    decode = 2 * output_tokens * (lm_layers + head) + attn * output_tokens * (prompt_tokens + output_tokens / 2)
    return {"visual_tokens": tokens, "patches": patches, "vision": vision, "prefill": prefill, "decode": decode,
            "total": vision + prefill + decode}


def rows(results: Path) -> list[dict]:
    data = json.loads(results.read_text())
    calls = data.get("calls") or [data]
    out = []
    for run in data["runs"]:
        images = run.get("images")
        if not images or not run.get("images_per_s") or not run.get("server_prompt_tokens"):
            continue
        settings = calls[run.get("call", 0)].get("settings") or {}
        if (settings.get("replicas") or 1) > 1 and not settings.get("metrics_all_replicas"):
            continue  # files from before: the token counters are the first replica's only
        flags = settings.get("extra_args") or []
        prompt = run["server_prompt_tokens"] / images
        cached = (run.get("server_prefix_cache_hits") or 0.0) / images
        f = request_flops(prompt, cached, run.get("completion_tokens_mean") or 0.0)
        rate = f["total"] * run["images_per_s"] / 1e12
        full = _while_full(run)
        out.append({
            "file": results.name, "name": run["name"], "server_flags": " ".join(flags) or "-",
            "images_per_s": run["images_per_s"], "prompt_tokens": round(prompt, 1), "cached_tokens": round(cached, 1),
            "output_tokens": run.get("completion_tokens_mean"), "patches": f["patches"],
            "tflop_per_image": round(f["total"] / 1e12, 3),
            "share_vision": round(f["vision"] / f["total"], 3), "share_prefill": round(f["prefill"] / f["total"], 3),
            "share_decode": round(f["decode"] / f["total"], 3),
            "sustained_tflops": round(rate, 1),
            "share_of_bf16_peak": round(rate / PEAK_TFLOPS["bf16"], 3),
            "server_running_mean": run.get("server_running_mean"),
            # The same while the server was full (no ramp-up or drain), where the record has that rate.
            "full_images_per_s": full,
            "sustained_tflops_full": round(f["total"] * full / 1e12, 1) if full else None,
        })
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", type=Path, nargs="+")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    table = [r for path in args.results for r in rows(path)]
    for r in table:
        print(f"{r['file']:32} {r['name']:24} {r['server_flags'][:40]:40} {r['images_per_s']:7.2f} img/s "
              f"{r['tflop_per_image']:.2f} TFLOP/img  {r['sustained_tflops']:6.1f} TFLOP/s "
              f"({100 * r['share_of_bf16_peak']:.0f}% of bf16 peak)")
    if args.json:
        args.json.write_text(json.dumps({
            "benchmark": "serve_flops", "computed_from": [str(p) for p in args.results],
            "model_shape": "Qwen2.5-VL-3B (vlmocr.models.build.SIZES['3b'])", "image": f"{IMAGE_SIDE}x{IMAGE_SIDE}",
            "peak_tflops_dense": PEAK_TFLOPS,
            "images_per_s_at_bf16_peak": round(PEAK_TFLOPS["bf16"] / table[0]["tflop_per_image"], 1)
            if table else None, "peak_source": "NVIDIA H100 SXM / H200 data sheets",
            "note": "forward FLOPs counted from the model shape and vLLM's token counters; computed, not measured",
            "rows": table}, indent=2) + "\n")


if __name__ == "__main__":
    main()
