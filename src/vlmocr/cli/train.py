"""`vlmocr train CONFIG.yaml [flags]`: fine-tune with a YAML config, flags overriding it.

Precedence: the config dataclass's defaults, then the YAML file, then `--set key=value`,
then the named flags. Progress (loss, samples/s, tokens/s) is drawn with rich from the
trainer's events; SIGTERM/SIGINT save a checkpoint and exit with 128 + the signal number
(continue with `--resume`).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from vlmocr.cli._common import console, handle_errors, out


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)


def _overrides(options: dict[str, Any], sets: list[str]) -> list[str]:
    from vlmocr.train.config import parse_override

    pairs = [parse_override(s) for s in sets]
    merged: dict[str, Any] = {".".join(k): v for k, v in pairs}
    merged.update({k: v for k, v in options.items() if v is not None})
    return merged  # type: ignore[return-value]


class _Progress:
    """Renders TrainEvents: a progress bar with loss and throughput, one line per eval/checkpoint."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]}"),
            TimeRemainingColumn(), console=console, transient=False,
        )
        self.task: Any = None

    def __call__(self, event: Any) -> None:
        if event.kind == "start":
            self.bar.start()
            self.task = self.bar.add_task("train", total=event.max_steps, completed=event.step,
                                          loss="-", speed="")
            self.bar.console.print(escape(event.message))
        elif event.kind == "step":
            self.bar.update(self.task, completed=event.step, loss=f"{event.loss:.4f}",
                            speed=f"{event.samples_per_s:.2f} samples/s {event.tokens_per_s:,.0f} tok/s")
        elif event.kind == "eval":
            self.bar.console.print(f"step {event.step}: eval {escape(event.message)}")
        elif event.kind == "checkpoint":
            self.bar.console.print(f"step {event.step}: checkpoint {escape(event.path or '')}")
        elif event.kind == "end":
            self.stop()

    def stop(self) -> None:
        self.bar.stop()


@handle_errors
def train_command(
    config: Path = typer.Argument(None, help="YAML config (see configs/); flags override it."),
    out_dir: Path = typer.Option(None, "--out", help="Run folder (config: out)."),
    model: str = typer.Option(None, "--model", help="Base model directory, hub id or `builtin` (the shipped "
                              "built-in model) (config: model)."),
    method: str = typer.Option(None, "--method", help="lora, qlora or full (config: method)."),
    dataset: Path = typer.Option(None, "--dataset", help="Roboflow dataset folder (config: data.dataset)."),
    train_file: Path = typer.Option(None, "--train-file", help="Converted ShareGPT/messages file."),
    max_steps: int = typer.Option(None, "--max-steps", help="Optimizer steps (config: max_steps)."),
    epochs: float = typer.Option(None, "--epochs", help="Epochs when max_steps is not set."),
    batch_size: int = typer.Option(None, "--batch-size", help="Samples per device per micro-batch."),
    grad_accum: int = typer.Option(None, "--grad-accum", help="Micro-batches per optimizer step."),
    learning_rate: float = typer.Option(None, "--learning-rate", "--lr", help="Peak learning rate."),
    seed: int = typer.Option(None, "--seed", help="Random seed."),
    max_length: int = typer.Option(None, "--max-length", help="Longest sample in tokens (pre-flight)."),
    sets: list[str] = typer.Option([], "--set", help="Any config key: --set optim.warmup_ratio=0.1 (repeatable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run folder's last complete checkpoint."),
) -> None:
    """Fine-tune Qwen2.5-VL (LoRA, QLoRA or full) on a dataset, converted file or synthetic stream."""
    # Less fragmentation of the CUDA caching allocator on batches whose shapes change (set
    # before torch loads; a user's own setting wins).
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    from vlmocr.train.config import load_config

    options = {
        "out": str(out_dir) if out_dir else None, "model": model, "method": method,
        "data.dataset": str(dataset) if dataset else None,
        "data.train_file": str(train_file) if train_file else None,
        "max_steps": max_steps, "epochs": epochs, "batch_size": batch_size, "grad_accum": grad_accum,
        "optim.learning_rate": learning_rate, "seed": seed, "max_length": max_length,
    }
    cfg = load_config(config, _overrides(options, sets))
    from vlmocr.train.trainer import train

    progress = _Progress()
    try:
        result = train(cfg, resume=resume, progress=progress)
    finally:
        progress.stop()
    if os.environ.get("RANK", "0") != "0":  # under torchrun / accelerate launch, rank 0 reports
        return
    table = Table(title=f"run {result.run}", show_header=False)
    rows = [
        ("steps", f"{result.steps} / {result.max_steps} ({result.stopped})"),
        ("final loss", f"{result.final_loss:.4f}" if result.final_loss is not None else "-"),
        (f"best {result.metric}", f"{result.best_score:.3f} at step {result.best_step}"
         if result.best_score is not None else "- (no validation samples)"),
        ("throughput", f"{result.samples_per_s:.2f} samples/s, {result.tokens_per_s:,.0f} tokens/s"),
        ("trainable parameters", f"{result.trainable_parameters:,} of {result.total_parameters:,}"),
        ("final model", str(result.final_dir or "-")),
        ("best model", str(result.best_dir or "-")),
        ("last checkpoint", str(result.last_checkpoint or "-")),
    ]
    for key, value in rows:
        table.add_row(key, escape(value))
    out.print(table)
    if result.stopped != "completed":
        console.print(f"[yellow]stopped by {result.stopped}[/]: continue with --resume")
        raise typer.Exit(128 + int(getattr(signal, result.stopped, signal.SIGTERM)))
