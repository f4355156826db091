"""`vlmocr demo`: the main job, offline, end to end, with a before/after table."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from vlmocr.cli._common import console, handle_errors, out


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "-" if value is None else str(value)


@handle_errors
def demo_command(
    out_dir: Path = typer.Option(Path("runs/demo"), "--out", help="Run folder for every artifact."),
    base: str = typer.Option(None, "--base", help="Base model directory, or `builtin` (the default: the shipped "
                             "built-in model)."),
    size: str = typer.Option("small", "--size", help="Without --base: small uses the built-in model when there is "
                             "one, else builds a random small base; tiny always builds a random tiny one."),
    layout: list[str] = typer.Option(None, "--layout", help="Synthetic layout(s) to fine-tune on (default: label)."),
    train_images: int = typer.Option(None, "--train-images", help="Training images to synthesize."),
    test_images: int = typer.Option(None, "--test-images", help="Test images to synthesize."),
    steps: int = typer.Option(None, "--steps", help="LoRA optimizer steps."),
    precision: str = typer.Option(None, "--precision", help="Fine-tune precision: auto (bf16 on a GPU or a CPU "
                                  "with bf16 in hardware, else fp32), bf16 or fp32."),
    quick: bool = typer.Option(False, "--quick", help="The smallest loop (tiny model, a few images and steps)."),
    overwrite: bool = typer.Option(True, "--overwrite/--keep", help="Replace an existing run folder."),
) -> None:
    """Synthesize data, serve the base, evaluate, fine-tune, export, serve again, compare."""
    from vlmocr.demo import DemoConfig, StageEvent, run_demo

    changes = {k: v for k, v in dict(base=base, train_images=train_images, test_images=test_images,
                                     steps=steps, precision=precision, overwrite=overwrite).items() if v is not None}
    if layout:
        changes["layouts"] = tuple(layout)
    config = DemoConfig.quick(out_dir, **changes) if quick else DemoConfig(out=out_dir, size=size, **changes)

    def progress(event: StageEvent) -> None:
        if event.kind == "start":
            console.print(f"[bold cyan]▶ {event.stage}[/]: {event.message}")
        else:
            console.print(f"[green]✓ {event.stage}[/] ({event.seconds:.1f} s)")

    result = run_demo(config, progress)
    table = Table(title=f"before vs after fine-tuning ({result.base_kind} base, {result.before.get('n')} test images)")
    for col in ("score", "before", "after", "change"):
        table.add_column(col, justify="left" if col == "score" else "right")
    for name, value in result.before.items():
        if name == "n":
            continue
        after = result.after.get(name)
        change = after - value if isinstance(after, float) and isinstance(value, float) else None
        table.add_row(name, _fmt(value), _fmt(after), ("+" if (change or 0) >= 0 else "") + _fmt(change)
                      if change is not None else "-")
    out.print(table)
    out.print(f"report: {result.report_html}   (all artifacts in {result.out}, {result.seconds:.0f} s)")
