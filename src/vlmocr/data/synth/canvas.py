"""A measuring canvas: every string a layout places is checked against the paper and recorded.

Layouts draw through `Canvas.text`, which computes the line box of the string (ascender
top to descender bottom, the full advance width), refuses any box that leaves the paper
(`Overflow`, so the renderer retries with smaller type), and records a `TextBox` with the
field path it shows ("route", "products.2.cases", or None for labels and decoration).
Those boxes are what the tests check: every field drawn, inside the image, no overlaps.

A canvas built without an image only measures: layouts run once that way to find a type
size that fits, then once more on a real image. Layouts therefore must not draw random
numbers of their own; their choices come from a `random.Random` recreated per pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from vlmocr.data.synth.fonts import get_font

if TYPE_CHECKING:
    from PIL.Image import Image

Box = tuple[int, int, int, int]
Color = int  # a gray level: pages are drawn in mode "L" and tinted later


@dataclass(frozen=True)
class TextBox:
    """One string on the page: its text, line box (x0, y0, x1, y1), field path and size."""

    text: str
    box: Box
    field: str | None
    size: int


class _Advances(dict):
    """Per-character advance widths of one font, filled on first use.

    With Pillow's basic layout a string's advance is the sum of its characters' advances
    (to 1/64 px), and summing cached numbers is ~10x faster than `getlength` per string.
    """

    def __init__(self, font: Any) -> None:
        super().__init__()
        self.font = font

    def __missing__(self, char: str) -> float:
        value = self[char] = self.font.getlength(char)
        return value


_ADVANCES: dict[int, _Advances] = {}


def _advances(font: Any) -> _Advances:
    table = _ADVANCES.get(id(font))
    if table is None or table.font is not font:
        table = _ADVANCES[id(font)] = _Advances(font)
    return table


@lru_cache(maxsize=4096)  # a few tens of MB at most: masks are small
def _text_mask(font: Any, text: str) -> tuple[Any, int, int]:
    """The coverage mask of `text` and its offset from the line box's top-left corner.

    Pasting ink through this mask gives the same pixels as ImageDraw.text (both blend with
    Pillow's fill-with-mask), and labels and quantities repeat across documents, so caching
    the masks skips most FreeType rendering.
    """
    from PIL import Image as PILImage
    from PIL import ImageDraw

    left, top, right, bottom = font.getbbox(text)
    if right <= left or bottom <= top:
        return None, 0, 0
    mask = PILImage.new("L", (right - left, bottom - top), 0)
    ImageDraw.Draw(mask).text((-left, -top), text, font=font, fill=255)
    return mask, left, top


class Overflow(Exception):
    """A string does not fit the paper at the current type size (the renderer shrinks)."""


class Canvas:
    """Places text and shapes on a page, keeping every string inside `paper`."""

    def __init__(self, size: tuple[int, int], paper: Box, image: Image | None = None) -> None:
        self.width, self.height = size
        self.paper = paper
        self.image = image
        self.boxes: list[TextBox] = []
        self._draw: Any = None
        if image is not None:
            from PIL import ImageDraw

            self._draw = ImageDraw.Draw(image)

    # -- measuring -------------------------------------------------------------------------
    @staticmethod
    def font(face: str, size: float) -> Any:
        return get_font(face, max(6, round(size)))

    @staticmethod
    def measure(text: str, font: Any) -> int:
        """Advance width of `text` in whole pixels (never less than Pillow's getlength)."""
        return math.ceil(sum(map(_advances(font).__getitem__, text)) + 0.05)

    @staticmethod
    def line_height(font: Any) -> int:
        ascent, descent = font.getmetrics()
        return ascent + descent

    def wrap(self, text: str, font: Any, max_width: int) -> list[str]:
        """Greedy word wrap into lines no wider than `max_width` (Overflow if a word is)."""
        lines: list[str] = []
        current = ""
        for word in text.split(" "):
            candidate = f"{current} {word}" if current else word
            if self.measure(candidate, font) <= max_width:
                current = candidate
                continue
            if not current or self.measure(word, font) > max_width:
                raise Overflow(f"{word!r} is wider than {max_width}px")
            lines.append(current)
            current = word
        lines.append(current)
        return lines

    # -- placing -----------------------------------------------------------------------------
    def text(
        self,
        x: float,
        y: float,
        text: str,
        font: Any,
        fill: Color,
        *,
        field: str | None = None,
        align: str = "left",
    ) -> Box:
        """Place one line of text with its top at `y`; `x` is its left, right or centre."""
        width = self.measure(text, font)
        if align == "right":
            x = x - width
        elif align == "center":
            x = x - width / 2
        x0, y0 = int(round(x)), int(round(y))
        box = (x0, y0, x0 + width, y0 + self.line_height(font))
        px0, py0, px1, py1 = self.paper
        if box[0] < px0 or box[1] < py0 or box[2] > px1 or box[3] > py1:
            raise Overflow(f"{text!r} at {box} leaves the paper {self.paper}")
        if self.image is not None:
            mask, ox, oy = _text_mask(font, text)
            if mask is not None:
                self.image.paste(fill, (x0 + ox, y0 + oy, x0 + ox + mask.width, y0 + oy + mask.height), mask)
        self.boxes.append(TextBox(text, box, field, int(font.size)))
        return box

    def wrapped(
        self,
        x: float,
        y: float,
        text: str,
        font: Any,
        fill: Color,
        max_width: int,
        *,
        field: str | None = None,
        leading: float = 1.0,
    ) -> int:
        """Place `text` word-wrapped to `max_width`; return the y below its last line."""
        step = round(self.line_height(font) * leading)
        for line in self.wrap(text, font, max_width):
            self.text(x, y, line, font, fill, field=field)
            y += step
        return int(y)

    def flow(
        self,
        items: list[tuple[str, Any, str, Any, str | None]],
        x0: int,
        x1: int,
        y: int,
        fill: Color,
        label_fill: Color,
        *,
        gap: int,
        leading: float = 1.15,
    ) -> int:
        """Place (label, label font, value, value font, field) items left to right, wrapping.

        An item never splits between lines unless it alone is wider than a line, in which
        case its value wraps. Returns the y below the last line.
        """
        x = x0
        step = max(self.line_height(f) for item in items for f in (item[1], item[3]))
        step = round(step * leading)
        for label, label_font, value, value_font, field in items:
            lw = self.measure(label + " ", label_font) if label else 0
            vw = self.measure(value, value_font)
            if x > x0 and x + lw + vw > x1:
                x, y = x0, y + step
            if label:
                self.text(x, y, label, label_font, label_fill)
            if x + lw + vw <= x1:
                self.text(x + lw, y, value, value_font, fill, field=field)
                x = x + lw + vw + gap
            else:
                lines = self.wrap(value, value_font, x1 - x - lw)
                for i, line in enumerate(lines):
                    self.text(x + lw, y, line, value_font, fill, field=field)
                    if i < len(lines) - 1:
                        y += step
                x = x + lw + self.measure(lines[-1], value_font) + gap
        return y + step

    # -- decoration (drawn only on a real image) ------------------------------------------
    def rect(self, box: Box, *, fill: Color | None = None, outline: Color | None = None,
             width: int = 1) -> None:
        if self._draw is not None:
            self._draw.rectangle(box, fill=fill, outline=outline, width=width)

    def line(self, x0: float, y0: float, x1: float, y1: float, fill: Color, width: int = 1) -> None:
        if self._draw is not None:
            self._draw.line((x0, y0, x1, y1), fill=fill, width=width)

    def hline(self, x0: float, x1: float, y: float, fill: Color, width: int = 1,
              dash: int = 0) -> None:
        if self._draw is None:
            return
        if not dash:
            self._draw.line((x0, y, x1, y), fill=fill, width=width)
            return
        x = x0
        while x < x1:
            self._draw.line((x, y, min(x + dash, x1), y), fill=fill, width=width)
            x += 2 * dash

    def check_bottom(self, y: float, limit: float) -> None:
        """Overflow when content reaching down to `y` passes `limit`."""
        if y > limit:
            raise Overflow(f"content reaches y={y:.0f}, below the limit {limit:.0f}")
