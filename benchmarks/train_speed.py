"""Training throughput of `vlmocr train`, measured from the runs' own metrics.jsonl.

Steps (each a subcommand, so a GPU machine can run them in one shell line):

  python benchmarks/train_speed.py build --size 3b --out M --dtype bfloat16 --device cuda
  python benchmarks/train_speed.py data --out D --train 64 --valid 8        # synthetic Roboflow folder
  vlmocr train CONFIG ... (one process), torchrun ... -m vlmocr.cli.app train CONFIG ... (DDP)
  python benchmarks/train_speed.py summarize --name NAME RUN [RUN ...]      # → benchmarks/results/NAME.json

`summarize` skips the first `--warmup` steps of every run (allocator, kernel selection)
and reports steady-state samples/s and tokens/s (all ranks together), the per-step time,
peak GPU memory where a row has it, the machine, and each run's resolved config; with a
run named `*1gpu*` and one named `*2gpu*` it adds the scaling ratio.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version()}
    try:
        import os

        import torch

        info["torch"] = torch.__version__
        info["cpu_count"] = os.cpu_count()
        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["load_average"] = list(os.getloadavg())
    except ImportError:
        pass
    return info


def summarize_run(run: Path, warmup: int) -> dict[str, Any]:
    import yaml

    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    steps = [r for r in rows if r.get("kind") == "train" and r["step"] > warmup]
    if not steps:
        raise SystemExit(f"{run}: no training rows after step {warmup}")
    config = yaml.safe_load((run / "config.yaml").read_text())
    prov = json.loads((run / "provenance.json").read_text())
    per_step_samples = config["batch_size"] * config["grad_accum"] * prov.get("world_size", 1)
    seconds = [per_step_samples / r["samples_per_s"] for r in steps]  # log_every: 1 → one row a step
    total_time = sum(seconds)
    return {
        "run": run.name,
        "world_size": prov.get("world_size", 1),
        "steps_measured": len(steps),
        "samples_per_s": sum(per_step_samples for _ in steps) / total_time,
        "tokens_per_s": sum(r["tokens_per_s"] * s for r, s in zip(steps, seconds)) / total_time,
        "step_seconds_median": statistics.median(seconds),
        # The first step, warm-up excluded above: where a compile or cuDNN planning shows.
        "first_step_seconds": next((per_step_samples / r["samples_per_s"] for r in rows
                                    if r.get("kind") == "train" and r["step"] == 1), None),
        "step_seconds_p90": sorted(seconds)[int(0.9 * (len(seconds) - 1))],
        "data_wait_share_median": statistics.median(r.get("data_wait_share", 0.0) for r in steps),
        "gpu_peak_gib": max((r.get("gpu_peak_gib", 0.0) for r in steps), default=None),
        "vision_attention": prov.get("vision_attention"),
        "liger": prov.get("liger"),  # what ran (config liger: null means on when installed on CUDA)
        "loss_first": next((r["loss"] for r in rows if r.get("kind") == "train"), None),
        "loss_last": steps[-1]["loss"],
        "config": {k: config[k] for k in ("model", "method", "batch_size", "grad_accum", "max_length", "precision",
                                          "gradient_checkpointing", "loss_chunk_size", "attn_implementation",
                                          "compile", "resolution", "data", "liger", "lora", "vision_attention") if k in config},
        "libraries": prov.get("libraries", {}),
    }


def _record(run: dict[str, Any]) -> dict[str, Any]:
    cfg = run["config"]
    return {
        "name": run["run"], "samples_per_s": run["samples_per_s"], "tokens_per_s": run["tokens_per_s"],
        "peak_gib": run.get("gpu_peak_gib"), "batch_size": cfg.get("batch_size"), "world_size": run["world_size"],
        "tokens_per_sample": run["tokens_per_s"] / run["samples_per_s"],
        "gradient_checkpointing": cfg.get("gradient_checkpointing"), "vision_attention": run.get("vision_attention"),
        "liger": run["liger"] if run.get("liger") is not None else cfg.get("liger", False), "compile": cfg.get("compile"), "loss_chunk_size": cfg.get("loss_chunk_size"),
        "lora_dropout": (cfg.get("lora") or {}).get("dropout"),
        "step_seconds_median": run["step_seconds_median"], "first_step_seconds": run.get("first_step_seconds"),
        "data_wait_share_median": run["data_wait_share_median"],
        "loss_first": run["loss_first"], "loss_last": run["loss_last"], "path": "vlmocr train",
    }


def write_records(args: argparse.Namespace) -> None:
    """Issue-style records (name, samples_per_s, peak_gib, batch_size, tokens_per_sample), ratios to `naive`."""
    records = []
    for path in args.naive:
        if path.is_file():
            records.append({"path": "plain transformers + PEFT loop", **json.loads(path.read_text())})
    runs = []
    for run in args.runs:
        if (run / "metrics.jsonl").is_file():
            try:
                runs.append(summarize_run(run, args.warmup))
            except SystemExit as exc:
                print(exc, file=sys.stderr)
    records += [_record(r) for r in runs]
    predictions = json.loads(args.predictions.read_text()) if args.predictions and args.predictions.is_file() else {}
    naive = next((r for r in records if r["name"] == "naive"), None)
    for r in records:
        if naive:
            r["speedup_vs_naive"] = r["samples_per_s"] / naive["samples_per_s"]
        if r["name"] in predictions:
            r["predicted_samples_per_s"] = predictions[r["name"]]
    machine = _machine()
    libraries = runs[0]["libraries"] if runs else {}
    result = {"name": args.name, "note": args.note, "card": (machine.get("gpus") or ["cpu"])[0], "machine": machine,
              "libraries": libraries, "records": records, "runs": runs}
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"{args.name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    for r in records:
        print(f"{r['name']:<28} {r['samples_per_s']:6.2f} samples/s  peak {r.get('peak_gib') or 0:5.1f} GiB  "
              f"batch {r['batch_size']}  {r['tokens_per_sample']:.0f} tok/sample  "
              f"x{r.get('speedup_vs_naive', 0):.2f}")
    print(f"wrote {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--size", default="3b")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--dtype", default="bfloat16")
    b.add_argument("--device", default=None)
    d = sub.add_parser("data")
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--train", type=int, default=64)
    d.add_argument("--valid", type=int, default=8)
    d.add_argument("--workers", type=int, default=8)
    d.add_argument("--size", type=int, default=768, help="square page side in pixels")
    s = sub.add_parser("summarize")
    s.add_argument("runs", type=Path, nargs="+")
    s.add_argument("--name", required=True)
    s.add_argument("--warmup", type=int, default=5)
    s.add_argument("--note", default="")
    s.add_argument("--results", type=Path, default=RESULTS)
    r = sub.add_parser("records", help="one results file: naive JSON records + vlmocr runs, as issue-style records")
    r.add_argument("--name", required=True)
    r.add_argument("--naive", type=Path, nargs="*", default=[])
    r.add_argument("--runs", type=Path, nargs="*", default=[])
    r.add_argument("--warmup", type=int, default=5)
    r.add_argument("--note", default="")
    r.add_argument("--predictions", type=Path, default=None, help="JSON {run name: predicted samples/s}")
    r.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    if args.cmd == "build":
        from vlmocr.models.build import build_model

        built = build_model(args.out, args.size, dtype=args.dtype, device=args.device, overwrite=True)
        print(json.dumps({"path": str(built.path), "n_parameters": built.n_parameters, "seconds": built.seconds}))
    elif args.cmd == "data":
        from vlmocr.data.synth import SynthConfig, generate_dataset

        report = generate_dataset(args.out, args.train, args.valid, 0, SynthConfig(size=(args.size, args.size)),
                                  workers=args.workers,
                                  overwrite=True)
        print(f"{report.total_images} images in {report.seconds:.1f} s → {args.out}")
    elif args.cmd == "records":
        write_records(args)
    else:
        runs = [summarize_run(run, args.warmup) for run in args.runs]
        result: dict[str, Any] = {"name": args.name, "note": args.note, "machine": _machine(), "runs": runs}
        one = [r for r in runs if "1gpu" in r["run"]]
        two = [r for r in runs if "2gpu" in r["run"]]
        if one and two:
            result["scaling_2gpu_over_1gpu"] = two[0]["samples_per_s"] / one[0]["samples_per_s"]
        args.results.mkdir(parents=True, exist_ok=True)
        path = args.results / f"{args.name}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
        for r in runs:
            print(f"{r['run']}: {r['samples_per_s']:.2f} samples/s, {r['tokens_per_s']:,.0f} tokens/s, "
                  f"{r['step_seconds_median']:.3f} s/step (world {r['world_size']})")
        print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
