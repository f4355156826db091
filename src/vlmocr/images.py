"""Safe image loading, Qwen2-VL resizing and data URLs: the resolution contract.

One `Resolution` (min/max pixels) runs the whole way: training resizes images with it,
export writes it into `preprocessor_config.json`, `vlmocr serve` passes it to vLLM with
`--mm-processor-kwargs`, and the client resizes with it before sending. `smart_resize`
is the same arithmetic as transformers' Qwen2-VL image processor, so an image resized
here is left alone by the server.
"""

from __future__ import annotations

import base64
import io
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlmocr.errors import ConfigError, ImageError, UnsafePathError

if TYPE_CHECKING:
    from PIL.Image import Image

#: One visual token covers 28x28 pixels (14px patches, 2x2 merge).
PATCH_FACTOR = 28
#: Formats accepted from datasets and users (Pillow format names).
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "TIFF"})
#: Refuse to decode images above this many pixels (decompression bombs): 64 MP.
DEFAULT_MAX_IMAGE_PIXELS = 64_000_000
MAX_ASPECT_RATIO = 200


@dataclass(frozen=True)
class Resolution:
    """The resolution contract: bounds on pixels an image is resized into.

    Defaults are the common practice for documents (256..1280 visual tokens), not the
    shipped processor's 12.8 MP, which runs out of memory on phone photos.
    """

    min_pixels: int = 256 * PATCH_FACTOR * PATCH_FACTOR
    max_pixels: int = 1280 * PATCH_FACTOR * PATCH_FACTOR

    def __post_init__(self) -> None:
        if self.min_pixels < PATCH_FACTOR * PATCH_FACTOR:
            raise ConfigError(f"min_pixels must be at least {PATCH_FACTOR**2}, got {self.min_pixels}")
        if self.max_pixels < self.min_pixels:
            raise ConfigError(
                f"max_pixels ({self.max_pixels}) must be >= min_pixels ({self.min_pixels})"
            )

    @property
    def max_visual_tokens(self) -> int:
        """Upper bound of visual tokens one image can produce under this contract."""
        return self.max_pixels // (PATCH_FACTOR * PATCH_FACTOR)

    def visual_tokens(self, width: int, height: int) -> int:
        """Visual tokens an image of this size becomes after resizing."""
        h, w = smart_resize(height, width, self)
        return (h // PATCH_FACTOR) * (w // PATCH_FACTOR)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Resolution:
        if not data:
            return cls()
        unknown = set(data) - {"min_pixels", "max_pixels"}
        if unknown:
            raise ConfigError(f"unknown resolution keys: {sorted(unknown)}")
        return cls(**{k: int(v) for k, v in data.items()})


def smart_resize(height: int, width: int, resolution: Resolution) -> tuple[int, int]:
    """Target (height, width): multiples of 28, pixels within the contract, aspect kept.

    Mirrors `transformers.models.qwen2_vl.image_processing_qwen2_vl.smart_resize`.
    """
    factor = PATCH_FACTOR
    if height <= 0 or width <= 0:
        raise ImageError(f"image has no pixels ({width}x{height})")
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ImageError(
            f"aspect ratio {max(height, width) / min(height, width):.0f} exceeds {MAX_ASPECT_RATIO}"
        )
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > resolution.max_pixels:
        beta = math.sqrt((height * width) / resolution.max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < resolution.min_pixels:
        beta = math.sqrt(resolution.min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def resolve_inside(base: Path, name: str) -> Path:
    """Resolve `name` relative to `base`, refusing anything that escapes `base`.

    Rejects NUL bytes, absolute paths, `..` components and symlinks whose target lies
    outside `base`.
    """
    if not isinstance(name, str) or not name:
        raise UnsafePathError(f"image path must be a non-empty string, got {name!r}")
    if "\x00" in name:
        raise UnsafePathError(f"image path contains a NUL byte: {name!r}")
    if os.path.isabs(name) or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafePathError(f"image path must be relative to its split folder: {name!r}")
    parts = Path(name.replace("\\", "/")).parts
    if ".." in parts:
        raise UnsafePathError(f"image path may not contain '..': {name!r}")
    root = base.resolve()
    candidate = (root / name).resolve()
    if candidate != root and root not in candidate.parents:
        raise UnsafePathError(f"image path {name!r} resolves outside {root} (symlink?)")
    return candidate


def open_image(
    path: str | os.PathLike[str] | bytes,
    *,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    allowed_formats: frozenset[str] = ALLOWED_FORMATS,
) -> Image:
    """Open and fully decode an image as RGB, checking format and size before decoding."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    label = "<bytes>" if isinstance(path, bytes) else str(path)
    source: Any = io.BytesIO(path) if isinstance(path, bytes) else path
    try:
        with PILImage.open(source) as img:
            if img.format not in allowed_formats:
                raise ImageError(
                    f"{label}: format {img.format} not allowed (allowed: {sorted(allowed_formats)})"
                )
            width, height = img.size
            if width * height > max_image_pixels:
                raise ImageError(
                    f"{label}: {width}x{height} = {width * height} pixels exceeds the cap of "
                    f"{max_image_pixels} (possible decompression bomb)"
                )
            img.load()
            return img.convert("RGB")
    except ImageError:
        raise
    except FileNotFoundError as exc:
        raise ImageError(f"{label}: file not found") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{label}: not a readable image") from exc
    except (OSError, ValueError, SyntaxError, PILImage.DecompressionBombError) as exc:
        raise ImageError(f"{label}: corrupt or truncated image ({exc})") from exc


def resize_for_model(image: Image, resolution: Resolution) -> Image:
    """Resize like the Qwen2-VL processor would (bicubic), so the server keeps it as is."""
    from PIL import Image as PILImage

    h, w = smart_resize(image.height, image.width, resolution)
    if (h, w) == (image.height, image.width):
        return image
    return image.resize((w, h), PILImage.Resampling.BICUBIC)


def to_data_url(image: Image, *, fmt: str = "JPEG", quality: int = 95) -> str:
    """Encode an image as a base64 data URL for OpenAI-compatible chat requests."""
    buf = io.BytesIO()
    save_kwargs: dict[str, Any] = {"quality": quality} if fmt == "JPEG" else {}
    image.save(buf, format=fmt, **save_kwargs)
    mime = "jpeg" if fmt == "JPEG" else fmt.lower()
    return f"data:image/{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")
