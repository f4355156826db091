"""`vlmocr model build`: write a small Qwen2.5-VL with random weights, offline."""

from __future__ import annotations

from pathlib import Path

import typer

from vlmocr.cli._common import handle_errors, out

model_app = typer.Typer(help="Build models offline.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")


@model_app.command("build")
@handle_errors
def build(
    out_dir: Path = typer.Option(..., "--out", help="Folder to write the model to."),
    size: str = typer.Option("tiny", "--size", help="tiny (~2M parameters, tests) or small (~20M)."),
    min_pixels: int = typer.Option(None, "--min-pixels", help="Resolution contract: minimum pixels an image."),
    max_pixels: int = typer.Option(None, "--max-pixels", help="Resolution contract: maximum pixels an image."),
    seed: int = typer.Option(0, "--seed", help="Seed for the weights and the tokenizer corpus."),
    pixel_norm: str = typer.Option(None, "--pixel-norm", help="Image mean/std the processor normalizes "
                                   "with: documents (default for tiny/small, trained from scratch) or clip "
                                   "(Qwen2.5-VL's own, default for 3b)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing folder."),
) -> None:
    """Build a Qwen2.5-VL (tokenizer, processor, random weights, vlmocr.json) in seconds."""
    from vlmocr.images import Resolution
    from vlmocr.models.build import SIZES, build_model

    resolution = None
    if min_pixels is not None or max_pixels is not None:
        default = SIZES[size].resolution if size in SIZES else Resolution()
        resolution = Resolution(
            min_pixels=min_pixels if min_pixels is not None else default.min_pixels,
            max_pixels=max_pixels if max_pixels is not None else default.max_pixels,
        )
    built = build_model(out_dir, size, resolution=resolution, seed=seed, overwrite=overwrite, pixel_norm=pixel_norm)
    out.print(
        f"[green]built[/] {built.size} Qwen2.5-VL: {built.n_parameters:,} parameters, "
        f"pixels {built.resolution.min_pixels}..{built.resolution.max_pixels}, "
        f"{built.seconds:.1f} s → {built.path}"
    )
