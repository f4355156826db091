"""Layouts made of lines of text: `receipt` (a narrow printed slip) and `dense` (a packed list).

See layouts.py for the contract (no randomness except `st.rng`, every string through the
canvas).
"""

from __future__ import annotations

from vlmocr.data.synth.canvas import Canvas
from vlmocr.data.synth.content import Document
from vlmocr.data.synth.layouts import Style, footer, product_table


def draw_receipt(c: Canvas, doc: Document, st: Style) -> None:
    """A narrow monospaced slip on a desk: one field a line, each product on two lines."""
    rng = st.rng
    strip_w = int(c.width * rng.uniform(0.52, 0.64))
    left = int((c.width - strip_w) / 2 + rng.uniform(-0.12, 0.12) * (c.width - strip_w))
    top, bottom = st.sp(rng.uniform(6, 16)), c.height - st.sp(rng.uniform(6, 16))
    c.rect((0, 0, c.width, c.height), fill=st.desk)
    c.rect((left, top, left + strip_w, bottom), fill=st.paper)
    c.paper = (left, top, left + strip_w, bottom)
    pad = st.sp(14)
    x0, x1 = left + pad, left + strip_w - pad
    cx = (x0 + x1) / 2
    font, bold = c.font("mono", st.px(17)), c.font("mono-bold", st.px(17))
    lh = c.line_height(font)
    y = top + st.sp(10)
    for line in c.wrap(doc.company.upper(), bold, x1 - x0):
        c.text(cx, y, line, bold, st.ink, align="center")
        y += lh
    c.text(cx, y, doc.title, font, st.ink, align="center")
    y += lh
    dash = max(2, st.sp(4))

    def rule() -> None:
        nonlocal y
        c.hline(x0, x1, y + lh // 2, st.ink, dash=dash)
        y += lh

    rule()
    upper = rng.random() < 0.6

    def lab(name: str) -> str:
        text = doc.label(name) + ":"
        return text.upper() if upper else text

    pairs = [("route",), ("pallet_number", "load"), ("delivery_date",), ("dock",),
             ("shipment_id",), ("asn_number",), ("salesman",), ("destination",)]
    for group in pairs:
        items = [(lab(n) + " ", doc.target[n], n) for n in group]
        width = sum(c.measure(a + b, font) for a, b, _ in items) + c.measure("   ", font) * (len(items) - 1)
        if len(items) > 1 and width > x1 - x0:
            items_lines = [[item] for item in items]
        else:
            items_lines = [items]
        for line_items in items_lines:
            x = x0
            for label, value, name in line_items:
                c.text(x, y, label, font, st.ink)
                x += c.measure(label, font)
                lines = c.wrap(value, font, x1 - x)
                for k, part in enumerate(lines):
                    c.text(x, y, part, font, st.ink, field=name)
                    if k < len(lines) - 1:
                        y += lh
                x += c.measure(lines[-1] + "   ", font)
            y += lh
    rule()
    short = {"cases": "CS" if upper else "Cs", "sales_units": "SU", "layers": "LYR" if upper else "Lyr"}
    for i, row in enumerate(doc.products):
        for part in c.wrap(row["description"], font, x1 - x0):
            c.text(x0, y, part, font, st.ink, field=f"products.{i}.description")
            y += lh
        x = x0 + c.measure("  ", font)
        for name in ("cases", "sales_units", "layers"):
            label = short[name] + " "
            c.text(x, y, label, font, st.ink)
            x += c.measure(label, font)
            c.text(x, y, row[name], font, st.ink, field=f"products.{i}.{name}")
            x += c.measure(row[name] + "   ", font)
        y += lh
    rule()
    for name in ("total_cases", "total_units", "total_layers"):
        c.text(x0, y, lab(name), bold, st.ink)
        c.text(x1, y, doc.target[name], bold, st.ink, field=name, align="right")
        y += lh
    rule()
    c.text(x0, y, lab("printed_date") + " ", font, st.ink)
    c.text(x0 + c.measure(lab("printed_date") + " ", font), y, doc.target["printed_date"], font,
           st.ink, field="printed_date")
    y += lh
    c.text(x0, y, lab("page_number") + " ", font, st.ink)
    c.text(x0 + c.measure(lab("page_number") + " ", font), y, doc.target["page_number"], font,
           st.ink, field="page_number")
    y += lh
    c.check_bottom(y, bottom - st.sp(4))


def draw_dense(c: Canvas, doc: Document, st: Style) -> None:
    """A packed office printout: header fields flowing inline, zebra table, notes, footer."""
    family = st.rng.choice(("sans", "mono", "serif", "sans"))
    regular, bold = family, f"{family}-bold"
    m = st.sp(st.rng.uniform(16, 24))
    x0, x1 = m, c.width - m
    y = m
    head = c.font(bold, st.px(18))
    c.text(x0, y, doc.company, head, st.ink)
    small = c.font(regular, st.px(15))
    if c.measure(doc.company, head) + c.measure(doc.title, small) + st.sp(16) <= x1 - x0:
        c.text(x1, y + c.line_height(head) - c.line_height(small), doc.title, small, st.muted, align="right")
        y += c.line_height(head)
    else:
        y += c.line_height(head)
        c.text(x0, y, doc.title, small, st.muted)
        y += c.line_height(small)
    c.hline(x0, x1, y + st.sp(3), st.ink)
    y += st.sp(9)

    label_font, value_font = c.font(bold, st.px(15)), c.font(regular, st.px(15))
    order = ["route", "pallet_number", "delivery_date", "load", "dock", "shipment_id",
             "asn_number", "salesman", "destination"]
    if st.rng.random() < 0.5:
        st.rng.shuffle(order)
    items = [(doc.label(n) + ":", label_font, doc.target[n], value_font, n) for n in order]
    y = c.flow(items, x0, x1, y, st.ink, st.ink, gap=st.sp(20), leading=1.1)
    y += st.sp(6)
    y = product_table(c, doc, st, x0, x1, y, face=regular, bold=bold, size=15, grid=False,
                      zebra=True, header_fill=True, pad=st.sp(5))
    y += st.sp(6)
    totals = [(doc.label(n) + ":", label_font, doc.target[n], value_font, n)
              for n in ("total_cases", "total_units", "total_layers")]
    y = c.flow(totals, x0, x1, y, st.ink, st.ink, gap=st.sp(26), leading=1.1)
    notes = c.font(regular, st.px(14))
    top = footer(c, doc, st, x0, x1, c.height - m, face=regular, size=14)
    lines = [doc.note, "Received by: ______________   Date: ________"]
    ny = top - st.sp(6) - len(lines) * c.line_height(notes)
    if ny >= y + st.sp(4):
        for line in lines:
            if c.measure(line, notes) <= x1 - x0:
                c.text(x0, ny, line, notes, st.muted)
            ny += c.line_height(notes)
    c.check_bottom(y, top)
