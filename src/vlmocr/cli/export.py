"""`vlmocr export`: merge a trained run into a verified, servable model directory."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from vlmocr.cli._common import console, handle_errors, out

_STYLE = {"ok": "green", "failed": "bold red", "skipped": "yellow"}


def register(app: typer.Typer) -> None:
    app.command("export")(export)


@handle_errors
def export(
    source: Path = typer.Argument(..., help="Training run folder (uses best/, else final/), a checkpoint, or a model/adapter folder."),
    out_dir: Path = typer.Option(..., "--out", help="Folder to write the servable model to (appears only if verification passes)."),
    base: str = typer.Option(None, "--base", help="Base model folder, hub id or `builtin` (default: the run's "
                             "base_model)."),
    dtype: str = typer.Option("bf16", "--dtype", help="Weights dtype: bf16, fp16 or fp32."),
    shard_size: str = typer.Option("2GB", "--shard-size", help="Largest weight shard, e.g. 2GB or 500MB."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Skip every verification check."),
    no_vllm_check: bool = typer.Option(False, "--no-vllm-check", help="Skip loading the result in vLLM."),
    allow_unchanged: bool = typer.Option(False, "--allow-unchanged", help="Export even if the result equals the base model."),
    no_legacy_files: bool = typer.Option(False, "--no-legacy-files", help="Do not write files only older tools read (chat_template.json, vocab.json ...)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
) -> None:
    """Merge a LoRA/QLoRA adapter into its base (or re-save a full fine-tune) and prove the result."""
    from vlmocr.export.merge import ExportConfig, export_model
    from vlmocr.export.verify import VerifyConfig
    from vlmocr.models.builtin import resolve_model

    config = ExportConfig(
        base=resolve_model(base),
        dtype=dtype,  # type: ignore[arg-type]  (validated by ExportConfig)
        shard_size=shard_size,
        verify=not no_verify,
        verification=VerifyConfig(vllm=not no_vllm_check, allow_unchanged=allow_unchanged),
        legacy_files=not no_legacy_files,
        overwrite=overwrite,
    )
    result = export_model(source, out_dir, config)
    if result.verification is not None:
        table = Table(title="verification")
        for col in ("check", "status", "detail"):
            table.add_column(col)
        for check in result.verification.checks:
            style = _STYLE[check.status]
            table.add_row(check.name, f"[{style}]{check.status}[/]", escape(check.detail))
        out.print(table)
    else:
        console.print("[yellow]verification skipped (--no-verify)[/]")
    out.print(
        f"[green]exported[/] {result.method} model ({result.n_parameters:,} parameters, {result.dtype}, "
        f"{len(result.weight_files)} weight file(s)) → {escape(str(result.path))} in {result.seconds:.0f} s"
    )
