"""Fonts for the generator: matplotlib's bundled DejaVu and STIX faces, never system fonts.

matplotlib is a core dependency, so these files exist wherever vlmocr is installed and a
seed renders the same pixels on every machine with the same Pillow/FreeType. Fonts are
located without importing matplotlib and cached per (face, size): opening a TrueType
file costs far more than drawing a line with it.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from vlmocr.errors import VlmocrError

#: Face name → file in matplotlib's mpl-data/fonts/ttf.
FACES: dict[str, str] = {
    "sans": "DejaVuSans.ttf",
    "sans-bold": "DejaVuSans-Bold.ttf",
    "serif": "DejaVuSerif.ttf",
    "serif-bold": "DejaVuSerif-Bold.ttf",
    "mono": "DejaVuSansMono.ttf",
    "mono-bold": "DejaVuSansMono-Bold.ttf",
    "times": "STIXGeneral.ttf",
    "times-bold": "STIXGeneralBol.ttf",
}
#: Families a layout can pick: (regular face, bold face).
FAMILIES: dict[str, tuple[str, str]] = {
    "sans": ("sans", "sans-bold"),
    "serif": ("serif", "serif-bold"),
    "mono": ("mono", "mono-bold"),
    "times": ("times", "times-bold"),
}


@lru_cache(maxsize=1)
def font_dir() -> Path:
    """matplotlib's bundled TrueType folder."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise VlmocrError(
            "the synthetic data generator draws with matplotlib's bundled fonts, but matplotlib "
            "(a core dependency of vlmocr) is not installed: pip install matplotlib"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "mpl-data" / "fonts" / "ttf"


@lru_cache(maxsize=16)
def font_bytes(face: str) -> bytes:
    """The TrueType file of `face`, read once per process."""
    return (font_dir() / FACES[face]).read_bytes()


@lru_cache(maxsize=1024)
def get_font(face: str, size: int):  # -> PIL.ImageFont.FreeTypeFont
    """The FreeType font of `face` at `size` pixels (basic layout: fast and reproducible)."""
    import io

    from PIL import ImageFont

    return ImageFont.truetype(io.BytesIO(font_bytes(face)), max(1, int(size)),
                              layout_engine=ImageFont.Layout.BASIC)
