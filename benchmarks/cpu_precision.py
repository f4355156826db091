"""bf16 against fp32 for training on a CPU, side by side in one run on one machine.

On a CPU with bf16 in hardware (AVX512-BF16 or AMX) `precision: auto` now trains with bf16
autocast (fp32 master weights for full training, a bf16 frozen base under fp32 LoRA adapters).
This measures what that buys and what it costs, with the commands a user runs:

1. `vlmocr demo` twice (the built-in model, LoRA on the held-out layout), `--precision fp32`
   and `--precision bf16`: the fine-tune's samples/s and seconds, and the after-fine-tune
   scores through vLLM (the export is fp32 in both).
2. Full training of the built-in model on streamed synthetic pages, a few steps each
   precision from the same weights and data order: samples/s and the loss of each step.

    python benchmarks/cpu_precision.py [--out runs/cpu-precision] [--full-steps 12]
        [--result benchmarks/results/train_cpu_precision.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from vlmocr.fileio import cpu_machine, library_versions

RESULTS = Path(__file__).parent / "results"
PRECISIONS = ("fp32", "bf16")


def _train_rows(run: Path) -> list[dict[str, Any]]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return [r for r in rows if r.get("kind") == "train"]


def _speed(rows: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    steady = [r for r in rows if r["step"] > warmup] or rows
    return {
        "samples_per_s_median": round(statistics.median(r["samples_per_s"] for r in steady), 4),
        "tokens_per_s_median": round(statistics.median(r["tokens_per_s"] for r in steady), 1),
        "rows_after_warmup": len(steady),
    }


def run_demo(out: Path, precision: str) -> dict[str, Any]:
    from vlmocr.demo import DemoConfig
    from vlmocr.demo import run_demo as demo

    start = time.perf_counter()
    result = demo(DemoConfig(out=out, precision=precision, overwrite=True))
    rows = _train_rows(out / "train")
    return {
        "precision": precision,
        "wall_s": round(time.perf_counter() - start, 1),
        "timings_s": {k: round(v, 1) for k, v in result.timings.items()},
        "train": _speed(rows, warmup=1),
        "loss_first_last": [round(rows[0]["loss"], 4), round(rows[-1]["loss"], 4)],
        "before": result.before,
        "after": result.after,
    }


def run_full(out: Path, precision: str, steps: int, batch: int) -> dict[str, Any]:
    from vlmocr.train.config import load_config
    from vlmocr.train.trainer import train

    config = load_config(None, {
        "model": "builtin", "method": "full", "out": str(out), "precision": precision,
        "data": {"synth": {"layouts": ["form", "two_column", "receipt", "dense"], "augment": "light"},
                 "num_workers": 1},
        "optim": {"learning_rate": 5e-5, "warmup_steps": 2},
        "eval": {"every_steps": 0}, "checkpoint": {"every_steps": 0},
        "batch_size": batch, "max_steps": steps, "log_every": 1, "seed": 0,
    })
    start = time.perf_counter()
    train(config)
    rows = _train_rows(out)
    return {
        "precision": precision,
        "wall_s": round(time.perf_counter() - start, 1),
        "train": _speed(rows, warmup=2),
        "loss": [round(r["loss"], 4) for r in rows],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/cpu-precision"))
    parser.add_argument("--full-steps", type=int, default=12)
    parser.add_argument("--full-batch", type=int, default=8)
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--result", type=Path, default=RESULTS / "train_cpu_precision.json")
    args = parser.parse_args(argv)

    from vlmocr.train.modeling import cpu_has_native_bf16

    record: dict[str, Any] = {
        "name": args.result.stem,
        "date": datetime.date.today().isoformat(),
        "machine": cpu_machine(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "libraries": library_versions(),
        "command": "python benchmarks/cpu_precision.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "demo": [], "full": [],
    }
    if not args.skip_demo:
        for p in PRECISIONS:
            record["demo"].append(run_demo(args.out / f"demo-{p}", p))
            print(json.dumps(record["demo"][-1]), flush=True)
    for p in PRECISIONS:
        record["full"].append(run_full(args.out / f"full-{p}", p, args.full_steps, args.full_batch))
        print(json.dumps(record["full"][-1]), flush=True)

    def ratio(rows: list[dict[str, Any]]) -> float | None:
        if len(rows) != 2:
            return None
        return round(rows[1]["train"]["samples_per_s_median"] / rows[0]["train"]["samples_per_s_median"], 3)

    record["bf16_over_fp32_samples_per_s"] = {"demo_lora": ratio(record["demo"]), "full": ratio(record["full"])}
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.result}: {record['bf16_over_fp32_samples_per_s']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
