"""`vlmocr data synth`: write a synthetic Roboflow-format dataset of pallet manifests."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from vlmocr.cli._common import console, handle_errors, out
from vlmocr.data.synth.config import MAX_PRODUCTS, N_FILLABLE, SynthConfig

#: Defaults shown in --help come from the config dataclass (flags left out keep them).
_D = SynthConfig()


def register(data_app: typer.Typer) -> None:
    data_app.command("synth")(synth)


def _parse_size(text: str) -> tuple[int, int]:
    from vlmocr.errors import ConfigError

    parts = text.lower().replace("×", "x").split("x")
    try:
        width, height = (int(p) for p in parts) if len(parts) == 2 else (int(parts[0]),) * 2
    except ValueError as exc:
        raise ConfigError(f"--size must look like 768x768 (or 768), got {text!r}") from exc
    return width, height


def _parse_layouts(values: list[str] | None) -> tuple[str, ...] | None:
    if not values:
        return None
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    return tuple(names) or None


@handle_errors
def synth(
    out_dir: Path = typer.Option(None, "--out", help="Dataset folder to create (train/ valid/ test/); required."),
    train: int = typer.Option(0, "--train", help="Training images."),
    valid: int = typer.Option(0, "--valid", help="Validation images."),
    test: int = typer.Option(0, "--test", help="Test images."),
    seed: int = typer.Option(None, "--seed", help=f"Seed: the same arguments give byte-identical files. (default: {_D.seed})"),
    layouts: list[str] = typer.Option(None, "--layouts", help="Layouts to use, comma-separated or repeated (default: all). See --list-layouts."),
    photos_per_doc: int = typer.Option(None, "--photos-per-doc", help=f"Images of each document (N images = N/K documents). (default: {_D.photos_per_doc})"),
    augment: str = typer.Option(None, "--augment", help=f"none, light (scan-like) or photo (phone photo). (default: {_D.augment})"),
    size: str = typer.Option(None, "--size", help=f"Image size WxH. (default: {_D.size[0]}x{_D.size[1]})"),
    min_products: int = typer.Option(None, "--min-products", help=f"Fewest product rows a document has. (default: {_D.min_products})"),
    max_products: int = typer.Option(None, "--max-products", help=f"Most product rows a document has (<= {MAX_PRODUCTS}). (default: {_D.max_products})"),
    min_filled: int = typer.Option(None, "--min-filled", help=f"Fewest of the {N_FILLABLE} header/footer fields that are not totals with a value; the rest are printed blank. (default: {_D.min_filled})"),
    max_filled: int = typer.Option(None, "--max-filled", help=f"Most of those fields with a value (fewer values a page: an easier first stage of a curriculum). (default: {_D.max_filled})"),
    type_scale: float = typer.Option(None, "--type-scale", help="Type up to this many times the layouts' sizes where the page has room (1-4; larger text per visual token for a curriculum's first stage). (default: 1.0)"),
    novel_names: float = typer.Option(None, "--novel-names", help="Share of documents (0-1) whose salesman and destination names are random letters of Faker's lengths: values a model can only read, not guess. (default: 0)"),
    jpeg_quality: int = typer.Option(None, "--jpeg-quality", help=f"JPEG quality of the written images. (default: {_D.jpeg_quality})"),
    workers: int = typer.Option(0, "--workers", help="Processes to render with (0 = one per CPU core)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
    contact_sheet: Path = typer.Option(None, "--contact-sheet", help="Also write a PNG grid of samples of each layout here."),
    list_layouts: bool = typer.Option(False, "--list-layouts", help="Print the layout names and exit."),
) -> None:
    """Generate manifests with exact JSON targets: a dataset `vlmocr data check` accepts."""
    from vlmocr.data.synth import LAYOUTS, generate_dataset
    from vlmocr.errors import ConfigError

    if list_layouts:
        out.print("\n".join(LAYOUTS))
        return
    if out_dir is None:
        raise ConfigError("--out is required: the dataset folder to create")
    given = {
        "seed": seed,
        "layouts": _parse_layouts(layouts),
        "photos_per_doc": photos_per_doc,
        "augment": augment,
        "size": _parse_size(size) if size else None,
        "min_products": min_products,
        "max_products": max_products,
        "min_filled": min_filled,
        "max_filled": max_filled,
        "type_scale": type_scale,
        "jpeg_quality": jpeg_quality,
        "novel_names": novel_names,
    }
    config = SynthConfig(**{k: v for k, v in given.items() if v is not None})
    processes = workers if workers > 0 else (os.cpu_count() or 1)

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    total = train + valid + test
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task("rendering", total=max(total, 0))
        report = generate_dataset(out_dir, train, valid, test, config, workers=processes,
                                  overwrite=overwrite, progress=lambda done: bar.update(task, completed=done))
    table = Table(title=escape(str(report.root)))
    for col in ("split", "images", "documents"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for split, n in report.images.items():
        table.add_row(split, str(n), str(report.documents[split]))
    out.print(table)
    mix = ", ".join(f"{name} {n}" for name, n in report.layouts.items())
    out.print(f"layouts: {mix}")
    out.print(f"[green]wrote[/] {report.total_images} images in {report.seconds:.1f} s "
              f"({report.images_per_second:.0f} images/s, {processes} process(es)); augment={config.augment}, "
              f"seed={config.seed}")
    if contact_sheet is not None:
        from vlmocr.data.synth.sheet import contact_sheet as make_sheet

        contact_sheet.parent.mkdir(parents=True, exist_ok=True)
        make_sheet(config).save(contact_sheet)
        out.print(f"[green]contact sheet[/] → {escape(str(contact_sheet))}")
