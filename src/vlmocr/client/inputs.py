"""Client inputs: image files and PDF pages found in folders, each as its model-size image or data URL.

A PDF becomes one input per page, named ``doc.pdf#page=N`` (`vlmocr.pdf`); a PDF that cannot be
opened stays one input, whose row is written as an image error, as a corrupt image's is.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from vlmocr.client.output import file_key
from vlmocr.errors import ConfigError, ImageError
from vlmocr.images import (
    DEFAULT_MAX_IMAGE_PIXELS,
    Resolution,
    open_image,
    resize_for_model,
    smart_resize,
    to_data_url,
)
from vlmocr.pdf import PDF_SUFFIX, SCAN_DPI, count_pages, is_pdf, page_ref, parse_page_ref, render_page

if TYPE_CHECKING:
    from PIL.Image import Image

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
#: What folders are searched for: images and PDFs.
INPUT_SUFFIXES = IMAGE_SUFFIXES | {PDF_SUFFIX}
#: Formats sent as their original bytes when the image is already at its model size.
_PASS_THROUGH = {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp"}


def _pdf_pages(pdf: Path) -> list[Path]:
    """One input per page; the PDF itself when it cannot be opened (its row reports why)."""
    try:
        return [page_ref(pdf, page) for page in range(1, count_pages(pdf) + 1)]
    except ImageError:
        return [pdf]


def discover_images(inputs: Iterable[Path | str], *, recursive: bool = False) -> list[Path]:
    """Image files and PDF pages named or found in folders (sorted), each once; ConfigError if none.

    A named ``doc.pdf#page=N`` is that page alone.
    """
    found: dict[str, Path] = {}

    def add(path: Path) -> None:
        for item in _pdf_pages(path) if is_pdf(path) else [path]:
            found.setdefault(file_key(str(item)), item)

    for item in inputs:
        path = Path(item)
        if path.is_dir():
            candidates = sorted(path.rglob("*") if recursive else path.iterdir())
            for candidate in candidates:
                if candidate.is_file() and candidate.suffix.lower() in INPUT_SUFFIXES:
                    add(candidate)
        elif path.is_file():
            add(path)
        elif (ref := parse_page_ref(path)) is not None and ref[0].is_file():
            pages = count_pages(ref[0])
            if ref[1] > pages:
                raise ConfigError(f"{path}: {ref[0]} has {pages} page(s)")
            found.setdefault(file_key(str(path)), path)
        else:
            raise ConfigError(f"{path}: no such file or folder")
    if not found:
        raise ConfigError(f"no images or PDFs ({', '.join(sorted(INPUT_SUFFIXES))}) found in the given paths")
    return list(found.values())


def load_for_model(
    path: Path, resolution: Resolution, *, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    pdf_dpi: float = SCAN_DPI,
) -> Image:
    """An input (image file or PDF page) as an RGB image at its model size; ImageError if unreadable.

    A PDF page is drawn as a `pdf_dpi` scan of it would be sized (`vlmocr.pdf.render_page`).
    """
    ref = parse_page_ref(path)
    if ref is not None:
        return render_page(*ref, resolution, dpi=pdf_dpi, max_image_pixels=max_image_pixels)
    if is_pdf(path):  # a PDF that did not open when the inputs were listed
        count_pages(path)  # raises its reason
        raise ImageError(f"{path}: give its pages (doc.pdf#page=N), not the PDF")
    return resize_for_model(open_image(path, max_image_pixels=max_image_pixels), resolution)


def prepare_image(
    path: Path, resolution: Resolution, *, fmt: str = "JPEG", quality: int = 95,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, pdf_dpi: float = SCAN_DPI,
) -> str:
    """A data URL of the input at its model size (an image's original bytes if already that size)."""
    from PIL import Image as PILImage

    if is_pdf(path) or parse_page_ref(path) is not None:
        image = load_for_model(path, resolution, max_image_pixels=max_image_pixels, pdf_dpi=pdf_dpi)
        return to_data_url(image, fmt=fmt, quality=quality)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    image = open_image(data, max_image_pixels=max_image_pixels)
    if smart_resize(image.height, image.width, resolution) == (image.height, image.width):
        with PILImage.open(io.BytesIO(data)) as original:
            mime = _PASS_THROUGH.get(original.format or "")
            mode = original.mode
        if mime is not None and mode in ("RGB", "L"):
            return f"data:image/{mime};base64," + base64.b64encode(data).decode("ascii")
    return to_data_url(resize_for_model(image, resolution), fmt=fmt, quality=quality)
