"""Run LLaMA-Factory's training (`run_exp`, what `llamafactory-cli train CONFIG` runs) in this
process and write one throughput record in the form of benchmarks/naive_lora.py's.

  python benchmarks/train_llamafactory.py CONFIG.yaml --out llamafactory.json --name llamafactory

Runs under LLaMA-Factory's own environment (benchmarks/train_gpu_llamafactory.sh puts its
overlay first on PYTHONPATH); imports nothing from vlmocr.

How it measures: a Trainer callback takes the time at the end of every optimizer step (after
`torch.cuda.synchronize()`, so the step's GPU work is done) together with the Trainer's count
of non-padding input tokens (`include_num_input_tokens_seen: non_padding` in the config: the
attention mask's sum, the count vlmocr's rows and naive_lora.py use). Steady state is the wall
time from the end of step `--warmup` to the end of the last step: samples/s =
batch × world × measured steps / that time. It includes everything the Trainer does between
steps (data loading, collation, logging), as vlmocr train's rows do. Peak GPU memory is
`torch.cuda.max_memory_allocated()` at the end of training. The HF Trainer's own
`train_samples_per_second` (whole run, warm-up and set-up included) is kept alongside.
`--modules FILE` also writes every top-level module the run imported and where it came from.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _modules() -> list[dict[str, str]]:
    """Every imported top-level module with the folder it came from ('stdlib', 'builtin' ...)."""
    stdlib = set(sys.stdlib_module_names)
    rows = []
    for name in sorted({m.split(".")[0] for m in list(sys.modules)}):
        module = sys.modules.get(name)
        if name in stdlib or name.startswith("_") and name[1:] in stdlib:
            origin = "stdlib"
        else:
            file = getattr(module, "__file__", None) or ""
            paths = getattr(module, "__path__", None)
            origin = file or (str(list(paths)[0]) if paths else "builtin")
        rows.append({"module": name, "origin": origin})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="LLaMA-Factory YAML (what llamafactory-cli train takes)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--name", default="llamafactory")
    parser.add_argument("--warmup", type=int, default=5, help="steps left out of the steady state")
    parser.add_argument("--modules", type=Path, default=None)
    args = parser.parse_args()

    import torch
    import yaml
    from transformers import TrainerCallback

    from llamafactory.train.tuner import run_exp

    cfg = yaml.safe_load(args.config.read_text())
    cuda = torch.cuda.is_available() and not cfg.get("use_cpu", False)

    class StepClock(TrainerCallback):
        def __init__(self) -> None:
            self.steps: list[tuple[int, float, int]] = []  # (global step, seconds, tokens seen)
            self.start = 0.0
            self.logs: list[dict] = []
            self.world = 1

        def on_train_begin(self, train_args, state, control, **kwargs):
            self.world = train_args.world_size
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            self.start = time.perf_counter()

        def on_step_end(self, train_args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            self.steps.append((state.global_step, time.perf_counter(), int(state.num_input_tokens_seen)))

        def on_log(self, train_args, state, control, logs=None, **kwargs):
            if logs:
                self.logs.append(dict(logs))

    clock = StepClock()
    run_exp(dict(cfg), callbacks=[clock])

    batch = int(cfg.get("per_device_train_batch_size", 1)) * int(cfg.get("gradient_accumulation_steps", 1))
    per_step = batch * clock.world
    steps = clock.steps
    if len(steps) <= args.warmup + 1:
        raise SystemExit(f"only {len(steps)} steps ran; need more than warmup + 1 = {args.warmup + 1}")
    base = steps[args.warmup - 1] if args.warmup > 0 else (0, clock.start, 0)
    measured = steps[args.warmup:]
    seconds = measured[-1][1] - base[1]
    tokens = measured[-1][2] - base[2]
    step_times = [b[1] - a[1] for a, b in zip([base, *measured[:-1]], measured)]
    losses = [x["loss"] for x in clock.logs if "loss" in x]
    summary = next((x for x in reversed(clock.logs) if "train_runtime" in x), {})
    record = {
        "name": args.name,
        "samples_per_s": per_step * len(measured) / seconds,
        "tokens_per_s": tokens / seconds,
        "step_seconds_median": statistics.median(step_times),
        "step_seconds_p90": sorted(step_times)[int(0.9 * (len(step_times) - 1))],
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "batch_size": batch,
        "world_size": clock.world,
        "tokens_per_sample": tokens / (per_step * len(measured)),
        "steps_measured": len(measured),
        "warmup_steps": args.warmup,
        "gradient_checkpointing": not cfg.get("disable_gradient_checkpointing", False),
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "hf_train_samples_per_second": summary.get("train_samples_per_second"),
        "hf_train_runtime": summary.get("train_runtime"),
        "step_seconds": step_times,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "config": cfg,
        "libraries": {n: _version(n) for n in ("llamafactory", "transformers", "peft", "trl", "accelerate",
                                               "datasets", "tokenizers", "torch", "torchvision", "torchaudio")},
        "python": platform.python_version(),
        "path": "LLaMA-Factory (llamafactory-cli train's run_exp)",
        "note": "steady state: wall time from the end of step warmup_steps to the end of the last step, "
                "CUDA synchronized at each step end; data loading included",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k not in ("config", "step_seconds")}))
    if args.modules:
        args.modules.write_text(json.dumps(_modules(), indent=1) + "\n")


if __name__ == "__main__":
    main()
