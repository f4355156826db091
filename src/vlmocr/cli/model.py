"""`vlmocr model build`: write a small Qwen2.5-VL with random weights, offline.
`vlmocr model info [MODEL]`: what a model folder (default: the built-in model) holds."""

from __future__ import annotations

from pathlib import Path

import typer

from vlmocr.cli._common import handle_errors, out

model_app = typer.Typer(help="Build models offline and describe them (the built-in one by default).",
                        no_args_is_help=True)


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


@model_app.command("info")
@handle_errors
def info(
    model: str = typer.Argument("builtin", help="Model folder, or `builtin` (the shipped built-in model, or "
                                "the folder VLMOCR_BUILTIN_MODEL names)."),
) -> None:
    """Describe a model folder: where it is, its architecture, parameters and contract."""
    import json
    import math

    from rich.markup import escape
    from rich.table import Table

    from vlmocr.contract import load_contract
    from vlmocr.errors import ConfigError
    from vlmocr.export.files import inspect_weights
    from vlmocr.models.builtin import BUILTIN_DIR, ENV_VAR, is_builtin_name, resolve_model

    path = Path(str(resolve_model(model)))
    if not (path / "config.json").is_file():
        raise ConfigError(f"{model}: not a model folder (no config.json)")
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    text = config.get("text_config") or config
    vision = config.get("vision_config") or {}
    weights = inspect_weights(path)
    n_params = sum(math.prod(t.shape) for t in weights.tensors.values())
    size_mib = sum((path / f).stat().st_size for f in weights.files if (path / f).is_file()) / 2**20
    contract = load_contract(path)
    if is_builtin_name(model):
        source = "built-in (shipped)" if path == BUILTIN_DIR else f"built-in ({ENV_VAR})"
    else:
        source = "given"
    rows = [
        ("model", source),
        ("path", str(path)),
        ("architecture", ", ".join(config.get("architectures") or [config.get("model_type", "?")])),
        ("parameters", f"{n_params:,}"),
        ("language model", (f"{text.get('num_hidden_layers')} layers of width {text.get('hidden_size')}, "
                            f"vocabulary {text.get('vocab_size')}")),
        ("vision tower", f"{vision.get('depth')} blocks of width {vision.get('hidden_size')}" if vision else "-"),
        ("weights", f"{len(weights.files)} file(s), {size_mib:.1f} MiB, {', '.join(sorted(weights.dtypes)) or '?'}"),
        ("pixels an image", f"{contract.resolution.min_pixels}..{contract.resolution.max_pixels}"),
        ("max new tokens", str(contract.max_new_tokens)),
        ("model card", str(path / "README.md") if (path / "README.md").is_file() else "-"),
    ]
    table = Table(title=escape(model), show_header=False)
    for key, value in rows:
        table.add_row(key, escape(value))
    out.print(table)

