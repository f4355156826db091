"""Layouts with boxes and columns: `form`, `two_column` and `label` (a pallet placard).

Each function draws one `Document` on a `Canvas` with a `Style`; see layouts.py for the
contract (no randomness except `st.rng`, every string through the canvas).
"""

from __future__ import annotations

from vlmocr.data.synth.canvas import Canvas, Overflow
from vlmocr.data.synth.content import Document
from vlmocr.data.synth.layouts import Style, footer, product_table
from vlmocr.schema import HEADER_FIELDS


def _family(st: Style, options: tuple[str, ...]) -> tuple[str, str]:
    family = st.rng.choice(options)
    return family, f"{family}-bold"


def draw_form(c: Canvas, doc: Document, st: Style) -> None:
    """A printed form: title, a grid of labelled cells, a ruled product table, a footer."""
    regular, bold = _family(st, ("sans", "sans", "serif", "times"))
    m = st.sp(st.rng.uniform(22, 34))
    x0, x1 = m, c.width - m
    y = m
    title = c.font(bold, st.px(27))
    c.text(x0, y, doc.title, title, st.ink)
    company = c.font(regular, st.px(16))
    cw = c.measure(doc.company, company)
    if c.measure(doc.title, title) + cw + st.sp(20) <= x1 - x0:
        c.text(x1, y + c.line_height(title) - c.line_height(company), doc.company, company,
               st.muted, align="right")
        y += c.line_height(title) + st.sp(10)
    else:
        y += c.line_height(title)
        c.text(x0, y, doc.company, company, st.muted)
        y += c.line_height(company) + st.sp(8)

    label_font, value_font = c.font(regular, st.px(14)), c.font(bold, st.px(19))
    if st.rng.random() < 0.5:
        rows = [["route", "pallet_number", "load", "dock"],
                ["delivery_date", "shipment_id", "asn_number"],
                ["salesman", "destination"]]
        spans = {"destination": 2}
    else:
        names = [n for n in HEADER_FIELDS if n != "destination"]
        st.rng.shuffle(names)
        rows = [names[0:3], names[3:6], names[6:8], ["destination"]]
        spans = {}
    pad = st.sp(6)
    grid_top = y
    for row in rows:
        units = sum(spans.get(n, 1) for n in row)
        cell_w = (x1 - x0) / units
        x = float(x0)
        bottom = y
        for name in row:
            w = cell_w * spans.get(name, 1)
            c.text(x + pad, y + pad, doc.label(name), label_font, st.muted)
            vy = y + pad + c.line_height(label_font)
            end = c.wrapped(x + pad, vy, doc.target[name], value_font, st.ink,
                            int(w - 2 * pad), field=name)
            bottom = max(bottom, end + pad)
            x += w
        x = float(x0)
        for name in row[:-1]:
            x += cell_w * spans.get(name, 1)
            c.line(x, y, x, bottom, st.ink)
        c.hline(x0, x1, bottom, st.ink)
        y = bottom
    c.rect((x0, grid_top, x1, y), outline=st.ink, width=max(1, st.sp(1.5)))
    y += st.sp(16)

    totals_row = st.rng.random() < 0.5
    y = product_table(c, doc, st, x0, x1, y, face=regular, bold=bold, size=17,
                      grid=True, totals_row=totals_row, pad=st.sp(7))
    font = c.font(regular, st.px(17))
    boldf = c.font(bold, st.px(17))
    if not totals_row:
        y += st.sp(10)
        lh = c.line_height(font)
        for name in ("total_cases", "total_units", "total_layers"):
            value = doc.target[name]
            c.text(x1 - st.sp(7), y, value, boldf, st.ink, field=name, align="right")
            c.text(x1 - st.sp(7) - st.sp(70), y, doc.label(name) + ":", font, st.muted, align="right")
            y += lh
    top = footer(c, doc, st, x0, x1, c.height - m, face=regular, size=15)
    c.check_bottom(y + st.sp(6), top)


def draw_two_column(c: Canvas, doc: Document, st: Style) -> None:
    """A letter-style sheet: company header, two columns of `Label: value`, product list."""
    regular, bold = _family(st, ("serif", "times", "sans"))
    m = st.sp(st.rng.uniform(30, 44))
    x0, x1 = m, c.width - m
    y = m
    c.text(x0, y, doc.company, c.font(bold, st.px(25)), st.ink)
    y += c.line_height(c.font(bold, st.px(25)))
    sub = c.font(regular, st.px(16))
    c.text(x0, y, doc.title.title(), sub, st.muted)
    y += c.line_height(sub) + st.sp(6)
    c.hline(x0, x1, y, st.ink, width=max(1, st.sp(2)))
    y += st.sp(12)

    left = ["route", "pallet_number", "delivery_date", "load", "dock"]
    right = ["shipment_id", "asn_number", "salesman", "destination"]
    if st.rng.random() < 0.4:
        left, right = right, left
    label_font, value_font = c.font(bold, st.px(17)), c.font(regular, st.px(17))
    gap = st.sp(24)
    mid = (x0 + x1) // 2
    leading = round(c.line_height(value_font) * 1.25)
    bottoms = []
    for names, cx0, cx1 in ((left, x0, mid - gap // 2), (right, mid + gap // 2, x1)):
        tab = max(c.measure(doc.label(n) + ":", label_font) for n in names) + st.sp(10)
        if cx1 - cx0 - tab < 6 * c.measure("M", value_font):
            raise Overflow("label column too wide for the sheet")
        cy = y
        for name in names:
            c.text(cx0, cy, doc.label(name) + ":", label_font, st.ink)
            lines = c.wrap(doc.target[name], value_font, cx1 - cx0 - tab)
            for line in lines:
                c.text(cx0 + tab, cy, line, value_font, st.ink, field=name)
                cy += c.line_height(value_font)
            cy += leading - c.line_height(value_font)
        bottoms.append(cy)
    y = max(bottoms) + st.sp(10)
    c.hline(x0, x1, y, st.muted)
    y += st.sp(12)
    y = product_table(c, doc, st, x0, x1, y, face=regular, bold=bold, size=17, grid=False,
                      header_fill=st.rng.random() < 0.5, pad=st.sp(6))
    c.hline(x0, x1, y + st.sp(2), st.ink)
    y += st.sp(10)
    font = c.font(regular, st.px(17))
    boldf = c.font(bold, st.px(17))
    label_w = max(c.measure(doc.label(n), font) for n in ("total_cases", "total_units", "total_layers"))
    for name in ("total_cases", "total_units", "total_layers"):
        c.text(x1 - st.sp(6), y, doc.target[name], boldf, st.ink, field=name, align="right")
        c.text(x1 - st.sp(80) - label_w, y, doc.label(name), font, st.ink)
        y += round(c.line_height(font) * 1.1)
    note = c.font(regular, st.px(15))
    top = footer(c, doc, st, x0, x1, c.height - m, face=regular, size=15, sep=" ")
    note_y = top - round(c.line_height(note) * 1.4)
    if st.rng.random() < 0.6 and note_y >= y + st.sp(4):
        c.text(x0, note_y, doc.note, note, st.muted)
    c.check_bottom(y, top)


def _barcode(c: Canvas, st: Style, text: str, x0: int, x1: int, y0: int, y1: int) -> None:
    """Bars derived from `text` (decoration; not a real symbology)."""
    if c.image is None:
        return
    bits = "".join(f"{ord(ch) * 37 % 256:08b}" for ch in text) + "1011"
    module = max(1.0, (x1 - x0) / (len(bits) * 1.5))
    x = float(x0)
    for i, bit in enumerate(bits):
        w = module * (2 if (i % 3 == 0) else 1)
        if x + w > x1:
            break
        if bit == "1":
            c.rect((int(x), y0, int(x + w) - 1, y1), fill=st.ink)
        x += w


def draw_label(c: Canvas, doc: Document, st: Style) -> None:
    """A pallet placard: inverse title band, big route/pallet/dock, barcode, compact table."""
    regular, bold = "sans", "sans-bold"
    m = st.sp(st.rng.uniform(16, 26))
    x0, x1 = m, c.width - m
    c.rect((x0 - st.sp(6), m - st.sp(6), x1 + st.sp(6), c.height - m + st.sp(6)),
           outline=st.ink, width=max(2, st.sp(4)))
    y = m
    band = c.font(bold, st.px(22))
    band_h = c.line_height(band) + st.sp(10)
    c.rect((x0, y, x1, y + band_h), fill=st.ink)
    c.text(x0 + st.sp(10), y + st.sp(5), doc.title, band, st.paper)
    y += band_h + st.sp(8)

    small, big = c.font(bold, st.px(14)), c.font(bold, st.px(38))
    cells = ["route", "pallet_number", "dock"]
    widths = [0.5, 0.25, 0.25]
    x = float(x0)
    for name, share in zip(cells, widths):
        w = (x1 - x0) * share
        if max(c.measure(doc.target[name], big), c.measure(doc.label(name).upper(), small)) > w - st.sp(12):
            raise Overflow(f"{name} does not fit its cell")
        c.text(x + st.sp(6), y, doc.label(name).upper(), small, st.muted)
        c.text(x + st.sp(6), y + c.line_height(small), doc.target[name], big, st.ink, field=name)
        if x > x0:
            c.line(x, y, x, y + c.line_height(small) + c.line_height(big), st.ink, width=max(1, st.sp(2)))
        x += w
    y += c.line_height(small) + c.line_height(big) + st.sp(6)
    c.hline(x0, x1, y, st.ink, width=max(1, st.sp(2)))
    y += st.sp(8)

    label_font, value_font = c.font(regular, st.px(14)), c.font(bold, st.px(17))
    c.text(x0 + st.sp(6), y, doc.label("shipment_id").upper(), label_font, st.muted)
    y += c.line_height(label_font)
    bar_h = st.sp(st.rng.uniform(36, 48))
    _barcode(c, st, doc.target["shipment_id"], x0 + st.sp(6), int(x0 + (x1 - x0) * 0.6), y, y + bar_h)
    sid_font = c.font("mono", st.px(18))
    c.text(x0 + st.sp(6), y + bar_h + st.sp(2), doc.target["shipment_id"], sid_font, st.ink,
           field="shipment_id")
    info_x = int(x0 + (x1 - x0) * 0.64)
    iy = y
    for name in ("load", "asn_number"):
        c.text(info_x, iy, doc.label(name).upper(), label_font, st.muted)
        iy += c.line_height(label_font)
        c.text(info_x, iy, doc.target[name], value_font, st.ink, field=name)
        iy += c.line_height(value_font) + st.sp(2)
    y = max(iy, y + bar_h + st.sp(2) + c.line_height(sid_font)) + st.sp(8)

    items = [(doc.label(n) + ":", label_font, doc.target[n], value_font, n)
             for n in ("delivery_date", "salesman", "destination")]
    y = c.flow(items, x0 + st.sp(6), x1 - st.sp(6), y, st.ink, st.muted, gap=st.sp(22), leading=1.08)
    y += st.sp(6)
    y = product_table(c, doc, st, x0, x1, y, face=regular, bold=bold, size=15, grid=True,
                      zebra=True, header_fill=True, pad=st.sp(5))
    y += st.sp(8)
    total_font = c.font(bold, st.px(18))
    lab = c.font(regular, st.px(14))
    x = float(x0)
    share = (x1 - x0) / 3
    for name in ("total_cases", "total_units", "total_layers"):
        c.text(x + st.sp(6), y, doc.label(name).upper(), lab, st.muted)
        c.text(x + share - st.sp(8), y + c.line_height(lab) - c.line_height(total_font) + st.sp(2),
               doc.target[name], total_font, st.ink, field=name, align="right")
        x += share
    y += c.line_height(lab) + st.sp(6)
    top = footer(c, doc, st, x0, x1, c.height - m, face=regular, size=14)
    c.check_bottom(y, top)
