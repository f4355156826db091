"""Client inputs: image files found in folders, and each image as its model-size data URL."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable
from pathlib import Path

from vlmocr.client.output import file_key
from vlmocr.errors import ConfigError, ImageError
from vlmocr.images import DEFAULT_MAX_IMAGE_PIXELS, Resolution, open_image, resize_for_model, smart_resize, to_data_url

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
#: Formats sent as their original bytes when the image is already at its model size.
_PASS_THROUGH = {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp"}


def discover_images(inputs: Iterable[Path | str], *, recursive: bool = False) -> list[Path]:
    """Image files named or found in folders (sorted), each once; ConfigError if none."""
    found: dict[str, Path] = {}
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            candidates = sorted(path.rglob("*") if recursive else path.iterdir())
            for candidate in candidates:
                if candidate.is_file() and candidate.suffix.lower() in IMAGE_SUFFIXES:
                    found.setdefault(file_key(str(candidate)), candidate)
        elif path.is_file():
            found.setdefault(file_key(str(path)), path)
        else:
            raise ConfigError(f"{path}: no such file or folder")
    if not found:
        raise ConfigError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in the given paths")
    return list(found.values())


def prepare_image(
    path: Path, resolution: Resolution, *, fmt: str = "JPEG", quality: int = 95,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> str:
    """A data URL of the image at its model size (original bytes if already that size)."""
    from PIL import Image as PILImage

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
