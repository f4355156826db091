"""`vlmocr data ...`: check, convert and synthesize datasets."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from vlmocr.cli._common import EXIT_FAILURE, console, handle_errors, out

data_app = typer.Typer(help="Check, convert and synthesize Roboflow-style datasets.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
    try:  # the synthetic generator adds `data synth` when present
        importlib.import_module("vlmocr.cli.data_synth").register(data_app)
    except ModuleNotFoundError as exc:
        if exc.name != "vlmocr.cli.data_synth":
            raise


def _print_skips(skips: list, limit: int = 50) -> None:
    for skip in skips[:limit]:
        console.print(
            f"  [yellow]skip[/] {escape(str(skip))}", highlight=False
        )
    if len(skips) > limit:
        console.print(f"  ... and {len(skips) - limit} more (use --json for all)")


@data_app.command("check")
@handle_errors
def check(
    dataset: Path = typer.Argument(..., help="Roboflow dataset folder (train/ valid/ test/)."),
    split: list[str] = typer.Option(None, "--split", help="Split(s) to check (default: all present)."),
    max_skip_ratio: float = typer.Option(0.0, "--max-skip-ratio", help="Fail if more than this share of lines is bad."),
    max_image_pixels: int = typer.Option(64_000_000, "--max-image-pixels", help="Refuse images above this many pixels."),
    as_json: bool = typer.Option(False, "--json", help="Print the full report as JSON."),
) -> None:
    """Validate every annotation line and image; report counts and every skip."""
    from vlmocr.data.roboflow import check_dataset

    report = check_dataset(dataset, split or None, max_image_pixels=max_image_pixels)
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    else:
        table = Table(title=f"{dataset}")
        for col in ("split", "ok", "skipped", "documents"):
            table.add_column(col, justify="right" if col != "split" else "left")
        for name, s in report.splits.items():
            docs = len({r.doc_id for r in s.records})
            table.add_row(name, str(len(s.records)), str(len(s.skips)), str(docs))
        out.print(table)
        _print_skips(report.skips)
    if report.total == 0 or report.skip_ratio > max_skip_ratio:
        console.print(
            f"[bold red]check failed:[/] {len(report.skips)} of {report.total} lines skipped "
            f"(allowed {max_skip_ratio:.1%})"
        )
        raise typer.Exit(EXIT_FAILURE)


@data_app.command("convert")
@handle_errors
def convert(
    dataset: Path = typer.Argument(..., help="Roboflow dataset folder."),
    to: str = typer.Option("sharegpt", "--to", help="sharegpt (LLaMA-Factory) or messages (TRL)."),
    out_dir: Path = typer.Option(..., "--out", help="Output folder (e.g. LLaMA-Factory/data)."),
    name: str = typer.Option("manifest", "--name", help="Dataset name in dataset_info.json and file stem."),
    split: list[str] = typer.Option(None, "--split", help="Split(s) to convert (default: train)."),
    image_paths: str = typer.Option("absolute", "--image-paths", help="absolute, or relative to --out."),
    keep_prefix: bool = typer.Option(False, "--keep-prefix", help="Use each line's prefix as the question instead of the standard one."),
    question: str = typer.Option(None, "--question", help="Question text (default: the standard one)."),
    system: str = typer.Option(None, "--system", help="System message (default: the standard one)."),
    max_skip_ratio: float = typer.Option(0.05, "--max-skip-ratio", help="Fail if more than this share of lines is bad."),
) -> None:
    """Convert to ShareGPT + dataset_info.json (LLaMA-Factory) or chat messages (TRL)."""
    from vlmocr.data.convert import ConvertConfig, convert_dataset
    from vlmocr.errors import ConfigError
    from vlmocr.prompts import PromptContract

    if image_paths not in ("absolute", "relative"):
        raise ConfigError(f"--image-paths must be absolute or relative, got {image_paths!r}")
    defaults = PromptContract()
    prompt = PromptContract(system=system or defaults.system, question=question or defaults.question)
    config = ConvertConfig(
        to=to,  # type: ignore[arg-type]
        name=name,
        splits=tuple(split) if split else ("train",),
        image_paths=image_paths,  # type: ignore[arg-type]
        keep_prefix=keep_prefix,
        prompt=prompt,
        max_skip_ratio=max_skip_ratio,
    )
    report = convert_dataset(dataset, out_dir, config)
    for split_name, path in report.files.items():
        out.print(f"[green]wrote[/] {report.written[split_name]} samples → {path}")
    if report.dataset_info:
        out.print(f"[green]updated[/] {report.dataset_info}")
    _print_skips(report.skips)
