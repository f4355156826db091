"""Contact sheets: a grid of samples, one row per layout, to see what the generator makes."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from vlmocr.data.synth.config import SynthConfig
from vlmocr.data.synth.generate import document_samples
from vlmocr.errors import ConfigError

if TYPE_CHECKING:
    from PIL.Image import Image


def contact_sheet(
    config: SynthConfig | None = None,
    *,
    per_layout: int = 3,
    tile: int = 448,
    augments: tuple[str, ...] | None = None,
    split: str = "sheet",
) -> Image:
    """A grid: one row per layout of `config`, `per_layout` documents each, `tile` px wide.

    Column j uses augmentation `augments[j % len(augments)]` (default: the config's).
    """
    from PIL import Image as PILImage
    from PIL import ImageDraw

    from vlmocr.data.synth.fonts import get_font

    config = config or SynthConfig()
    if per_layout < 1 or tile < 64:
        raise ConfigError(f"need per_layout >= 1 and tile >= 64, got {per_layout} and {tile}")
    levels = augments or (config.augment,)
    width, height = config.size
    tile_h = round(tile * height / width)
    label_h = 28
    names = config.layout_names
    sheet = PILImage.new("RGB", (per_layout * (tile + 8) + 8, len(names) * (tile_h + label_h + 8) + 8),
                         (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = get_font("sans-bold", 18)
    for row, layout in enumerate(names):
        y = 8 + row * (tile_h + label_h + 8)
        for col in range(per_layout):
            level = levels[col % len(levels)]
            one = replace(config, layouts=(layout,), augment=level, photos_per_doc=1)
            sample = document_samples(one, split, col)[0]
            x = 8 + col * (tile + 8)
            draw.text((x, y + 4), f"{layout} · {level}", font=font, fill=(30, 30, 30))
            sheet.paste(sample.image.resize((tile, tile_h), PILImage.Resampling.LANCZOS), (x, y + label_h))
    return sheet
