"""Named page layouts and the renderer that fits a document onto a page.

`render_page(doc, layout, seed, size)` draws one `Document` with one layout and returns a
`Page` (image, every text box it placed, the paper rectangle). Type sizes are chosen by
measuring first: the layout runs on a measuring canvas at its preferred size and, if any
string would leave the paper or collide with the footer, again at smaller sizes, never
below `MIN_SCALE` of the preferred size (at 768x768 body text stays >= 12 px). Only then
is the page drawn once, so rendering costs one pass of PIL ImageDraw.

The layouts themselves live in `forms.py` (form, two_column, label) and `lists.py`
(receipt, dense); shared pieces (style, product table) are here.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vlmocr.data.synth.augment import Tint
from vlmocr.data.synth.canvas import Box, Canvas, Overflow, TextBox
from vlmocr.data.synth.content import Document
from vlmocr.errors import ConfigError

if TYPE_CHECKING:
    from PIL.Image import Image

#: Type scales tried in order until the layout fits (1.0 = the layout's preferred sizes):
#: short documents get larger type, long ones shrink to at most MIN_SCALE.
SCALES: tuple[float, ...] = (1.2, 1.1, 1.0, 0.92, 0.85, 0.78, 0.72)
MIN_SCALE = SCALES[-1]
#: The size layouts are designed at; other sizes scale margins and type by min(w, h) / 768.
REFERENCE_SIDE = 768

INKS: tuple[tuple[int, int, int], ...] = ((20, 20, 20), (28, 28, 40), (18, 28, 66), (38, 34, 30), (0, 0, 0))
PAPERS: tuple[tuple[int, int, int], ...] = (
    (255, 255, 255), (251, 250, 245), (246, 244, 236), (252, 250, 238), (242, 245, 249),
)
DESKS: tuple[tuple[int, int, int], ...] = ((88, 82, 76), (120, 104, 86), (64, 70, 78), (150, 146, 140), (96, 110, 96))


@dataclass
class Style:
    """Per-document choices shared by both passes (measure, draw) of a layout.

    Pages are drawn in grayscale: `ink`, `muted`, `paper`, `shade` and `desk` are gray
    levels, and `tint` maps them to colour afterwards (see augment.py).
    """

    rng: random.Random
    font_unit: float  # pixels per type point: size unit x fitting scale
    unit: float  # size unit: min(w, h) / 768
    tint: Tint
    ink: int = 0
    muted: int = 100  # labels
    paper: int = 255
    shade: int = 228  # table header / zebra fill
    desk: int = 128  # around a narrow paper; replaced by the tint's desk colour

    def px(self, points: float) -> float:
        return points * self.font_unit

    def sp(self, points: float) -> int:
        return round(points * self.unit)


@dataclass(frozen=True)
class Page:
    """A rendered grayscale page: every text box placed, where the paper is, its colours."""

    image: Image  # mode "L"
    boxes: tuple[TextBox, ...]
    layout: str
    paper: Box
    scale: float
    tint: Tint


def make_style(seed: int, unit: float, scale: float) -> Style:
    """The style of one page; the same seed always gives the same choices."""
    rng = random.Random(seed)
    tint = Tint(ink=rng.choice(INKS), paper=rng.choice(PAPERS), desk=rng.choice(DESKS))
    return Style(rng=rng, font_unit=unit * scale, unit=unit, tint=tint, ink=rng.randint(0, 24),
                 muted=rng.randint(80, 112), shade=rng.randint(220, 236))


def product_table(
    c: Canvas,
    doc: Document,
    st: Style,
    x0: int,
    x1: int,
    y: int,
    *,
    face: str,
    bold: str,
    size: float,
    grid: bool = True,
    zebra: bool = False,
    header_fill: bool = True,
    totals_row: bool = False,
    pad: int = 6,
) -> int:
    """Draw the product rows as a table (header, rows, optional totals row); return its bottom."""
    font, head = c.font(face, st.px(size)), c.font(bold, st.px(size))
    columns = ("cases", "sales_units", "layers")
    titles = [doc.label(name) for name in columns]
    widths = [max(c.measure(t, head), c.measure("8888", font)) + 2 * pad for t in titles]
    desc_w = (x1 - x0) - sum(widths)
    if desc_w < 8 * c.measure("M", font):
        raise Overflow("description column too narrow")
    rights = []
    edge = x0 + desc_w
    for w in widths:
        edge += w
        rights.append(edge)
    lh = c.line_height(font)
    vpad = max(2, pad // 2)
    top = y
    if header_fill:
        c.rect((x0, y, x1, y + lh + 2 * vpad), fill=st.shade)
    c.text(x0 + pad, y + vpad, doc.label("description"), head, st.ink)
    for right, title in zip(rights, titles):
        c.text(right - pad, y + vpad, title, head, st.ink, align="right")
    y += lh + 2 * vpad
    c.hline(x0, x1, y, st.ink, width=max(1, st.sp(1.5)))
    for i, row in enumerate(doc.products):
        lines = c.wrap(row["description"], font, desc_w - 2 * pad)
        height = len(lines) * lh + 2 * vpad
        if zebra and i % 2 == 1:
            c.rect((x0, y + 1, x1, y + height), fill=st.shade)
        for k, line in enumerate(lines):
            c.text(x0 + pad, y + vpad + k * lh, line, font, st.ink, field=f"products.{i}.description")
        for right, name in zip(rights, columns):
            c.text(right - pad, y + vpad, row[name], font, st.ink, field=f"products.{i}.{name}",
                   align="right")
        y += height
        if grid:
            c.hline(x0, x1, y, st.muted)
    if totals_row:
        c.hline(x0, x1, y, st.ink, width=max(1, st.sp(1.5)))
        c.text(x0 + pad, y + vpad, "TOTAL" if doc.upper_labels else "Total", head, st.ink)
        for right, name in zip(rights, ("total_cases", "total_units", "total_layers")):
            c.text(right - pad, y + vpad, doc.target[name], head, st.ink, field=name, align="right")
        y += lh + 2 * vpad
    if grid:
        c.rect((x0, top, x1, y), outline=st.ink)
        for right in [x0 + desc_w, *rights[:-1]]:
            c.line(right, top, right, y, st.muted)
    return y


def footer(c: Canvas, doc: Document, st: Style, x0: int, x1: int, y_bottom: int, *,
           face: str, size: float, sep: str = ": ") -> int:
    """Printed date at the left and page number at the right of the last line; return its top."""
    font = c.font(face, st.px(size))
    y = y_bottom - c.line_height(font)
    label = doc.label("printed_date") + sep
    c.text(x0, y, label, font, st.muted)
    c.text(x0 + c.measure(label, font), y, doc.target["printed_date"], font, st.ink, field="printed_date")
    value = doc.target["page_number"]
    vbox_left = x1 - c.measure(value, font)
    c.text(x1, y, value, font, st.ink, field="page_number", align="right")
    c.text(vbox_left - c.measure(" ", font), y, doc.label("page_number"), font, st.muted, align="right")
    return y


LayoutFn = Callable[[Canvas, Document, Style], None]


def _registry() -> dict[str, LayoutFn]:
    from vlmocr.data.synth import forms, lists

    return {
        "form": forms.draw_form,
        "two_column": forms.draw_two_column,
        "receipt": lists.draw_receipt,
        "dense": lists.draw_dense,
        "label": forms.draw_label,
    }


#: The layout names, in a fixed order (select with SynthConfig.layouts).
LAYOUTS: tuple[str, ...] = ("form", "two_column", "receipt", "dense", "label")


#: Ratio between neighbouring larger type scales (see type_scales).
TYPE_STEP = 0.92


def type_scales(type_scale: float = 1.0) -> tuple[float, ...]:
    """The type scales render_page tries, largest first: SCALES[0] / TYPE_STEP**k up to
    SCALES[0] * `type_scale`, then SCALES, so a page too full for larger type still fits as usual.

    One grid for every `type_scale`: a larger one only adds sizes on top, so it never picks
    smaller type than a smaller one would.
    """
    larger: list[float] = []
    k = 1
    while SCALES[0] / TYPE_STEP**k <= SCALES[0] * type_scale * 1.0001:
        larger.append(round(SCALES[0] / TYPE_STEP**k, 4))
        k += 1
    return (*reversed(larger), *SCALES)


def _overlap(boxes: list[TextBox]) -> str | None:
    """The first two non-empty text boxes that intersect, described; None when none do."""
    placed = [b for b in boxes if b.text and b.box[2] > b.box[0]]
    for i, a in enumerate(placed):
        for b in placed[i + 1:]:
            if a.box[0] < b.box[2] and b.box[0] < a.box[2] and a.box[1] < b.box[3] and b.box[1] < a.box[3]:
                return f"{a.text!r} overlaps {b.text!r}"
    return None


def render_page(doc: Document, layout: str, seed: int, size: tuple[int, int], type_scale: float = 1.0) -> Page:
    """Fit and draw `doc` with `layout` on a page of `size` (w, h); deterministic in `seed`.

    `type_scale` > 1 sets the type up to that many times larger where the page has room.
    """
    from PIL import Image as PILImage

    draw = _registry().get(layout)
    if draw is None:
        raise ConfigError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    width, height = size
    unit = min(width, height) / REFERENCE_SIDE
    full: Box = (0, 0, width, height)
    chosen = None
    last = ""
    for scale in type_scales(type_scale):
        canvas = Canvas(size, full)
        try:
            draw(canvas, doc, make_style(seed, unit, scale))
        except Overflow as exc:
            # Keep the message, never the exception: its traceback holds this frame (which
            # would hold it back: a reference cycle) and, through f_back, every caller's
            # frame. In a data-loader worker those include the batch being built (13 MB of
            # pixels a sample), which then lived until the cyclic GC got to it, and the
            # heap grown to hold it stayed with the worker.
            last = str(exc)
            continue
        # The layouts are designed for SCALES; larger type (type_scale) is kept only where no
        # two strings collide, which the layouts do not check themselves.
        if scale > SCALES[0] and (clash := _overlap(canvas.boxes)):
            last = clash
            continue
        chosen = scale
        break
    if chosen is None:
        raise ConfigError(
            f"layout {layout!r} does not fit a {width}x{height} page even at {MIN_SCALE:.0%} type "
            f"({last}); use a larger --size or fewer products"
        )
    style = make_style(seed, unit, chosen)
    image = PILImage.new("L", size, style.paper)
    canvas = Canvas(size, full, image)
    draw(canvas, doc, style)
    return Page(image=image, boxes=tuple(canvas.boxes), layout=layout, paper=canvas.paper,
                scale=chosen, tint=style.tint)


def layout_fields(page: Page) -> dict[str, str]:
    """The text each field shows on the page (wrapped pieces joined by spaces)."""
    shown: dict[str, list[str]] = {}
    for box in page.boxes:
        if box.field is not None:
            shown.setdefault(box.field, []).append(box.text)
    return {name: " ".join(parts) for name, parts in shown.items()}


def flatten_target(target: dict[str, Any]) -> dict[str, str]:
    """Field path → value for every string in a target ("products.0.cases" ...)."""
    flat: dict[str, str] = {}
    for key, value in target.items():
        if key == "products":
            for i, row in enumerate(value):
                for name, cell in row.items():
                    flat[f"products.{i}.{name}"] = cell
        else:
            flat[key] = value
    return flat
