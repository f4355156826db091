"""Layouts: every field drawn exactly once as its value, inside the paper, nothing overlapping."""

from __future__ import annotations

import gc
import random
import weakref
from dataclasses import replace
from itertools import combinations, pairwise

import pytest

from vlmocr.data.synth import LAYOUTS, SynthConfig
from vlmocr.data.synth.content import ITEMS, Document, make_document
from vlmocr.data.synth.generate import render_document
from vlmocr.data.synth.layouts import SCALES, flatten_target, layout_fields, render_page
from vlmocr.errors import ConfigError

#: Smallest type (px) a value may get at 768x768: readable at ~28 px a visual token.
MIN_VALUE_PX = 12


def longest_document() -> Document:
    """A worst case: the longest values the generator can produce, 8 two-digit rows."""
    doc = make_document(random.Random(1), 8, 1)
    items = sorted(ITEMS, key=len)[-8:]
    rows = [
        {"description": f"99999{i} - CARTON OF {item}", "cases": "64", "sales_units": "64", "layers": "6"}
        for i, item in enumerate(items)
    ]
    target = dict(doc.target)
    target.update(
        route="W999-WW-999", destination="55267 Dominguez Extension Suite 234, Lake Kristopherside, AK 19523",
        salesman="CHRISTOPHER WASHINGTON", shipment_id="W99999999999", products=rows,
        total_cases="512", total_units="512", total_layers="48", printed_date="12/28/2026 23:59",
    )
    labels = {name: max(options, key=len) for name, options in doc.labels.items()} if doc.labels else {}
    return replace(doc, target=target, company="Christensen, Hernandez and Martinez",
                   title="PALLET LOAD MANIFEST", labels=labels or doc.labels)


def assert_page_is_sound(page, target: dict, size: tuple[int, int], min_px: int | None) -> None:
    width, height = size
    assert layout_fields(page) == flatten_target(target)
    px0, py0, px1, py1 = page.paper
    assert 0 <= px0 < px1 <= width and 0 <= py0 < py1 <= height
    for box in page.boxes:
        x0, y0, x1, y1 = box.box
        assert px0 <= x0 < x1 <= px1 and py0 <= y0 < y1 <= py1, box
        if min_px is not None and box.field is not None:
            assert box.size >= min_px, box
    for a, b in combinations(page.boxes, 2):
        overlap = min(a.box[2], b.box[2]) > max(a.box[0], b.box[0]) and min(a.box[3], b.box[3]) > max(a.box[1], b.box[1])
        assert not overlap, (a, b)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layout_draws_every_field_inside_without_overlap(layout: str) -> None:
    for index in range(12):
        config = SynthConfig(seed=index, layouts=(layout,), min_products=1 + index % 8)
        doc, page = render_document(config, "train", index)
        assert page.layout == layout and page.image.size == (768, 768) and page.image.mode == "L"
        assert_page_is_sound(page, doc.target, (768, 768), MIN_VALUE_PX)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_worst_case_document_fits_readably(layout: str) -> None:
    doc = longest_document()
    page = render_page(doc, layout, 3, (768, 768))
    assert_page_is_sound(page, doc.target, (768, 768), MIN_VALUE_PX)


@pytest.mark.parametrize("size", [(1024, 640), (512, 704), (1280, 1280)])
def test_other_sizes_render_every_field(size: tuple[int, int]) -> None:
    for i, layout in enumerate(LAYOUTS):
        doc, page = render_document(SynthConfig(size=size, layouts=(layout,), min_products=8), "t", i)
        assert page.image.size == size
        assert_page_is_sound(page, doc.target, size, None)


def test_value_boxes_hold_ink() -> None:
    """The boxes are where the text really is: each value box is darker than bare paper."""
    for layout in LAYOUTS:
        _, page = render_document(SynthConfig(layouts=(layout,)), "train", 2)
        for box in page.boxes:
            if box.field is not None:
                low, _ = page.image.crop(box.box).getextrema()
                assert low < 100, box


def test_a_page_that_had_to_shrink_is_freed_by_reference_counting() -> None:
    """Retrying smaller type after an Overflow leaves no reference cycle behind.

    A kept exception's traceback holds the renderer's frame and, through f_back, its callers'
    frames; in a data-loader worker those hold the batch being built, which then lived until
    the cyclic GC got to it (worker RSS ratcheted up by GBs: benchmarks/data_worker_memory.py).
    """
    gc.collect()
    gc.disable()
    try:
        page = render_page(longest_document(), "form", 0, (768, 768))
        assert page.scale < SCALES[0]  # at least one Overflow was raised and caught
        image = weakref.ref(page.image)
        del page
        assert image() is None
    finally:
        gc.enable()


def test_same_seed_same_pixels_and_unknown_layout_is_an_error() -> None:
    config = SynthConfig(seed=9)
    a, b = render_document(config, "train", 4)[1], render_document(config, "train", 4)[1]
    assert a.image.tobytes() == b.image.tobytes() and a.boxes == b.boxes
    with pytest.raises(ConfigError, match="unknown layout 'poster'"):
        render_page(longest_document(), "poster", 0, (768, 768))


def test_cached_text_masks_draw_the_same_pixels_as_imagedraw() -> None:
    from PIL import Image, ImageDraw

    from vlmocr.data.synth.canvas import Canvas

    strings = ["Route No.:", "223606 - CASE OF MICROFIBER SPONGES", "64", "12/05/2024 11:29", "Qy,|j"]
    for face in ("sans", "serif-bold", "mono", "times"):
        for size in (13, 17, 38):
            font = Canvas.font(face, size)
            cached = Image.new("L", (1000, 70), 240)
            canvas = Canvas((1000, 70), (0, 0, 1000, 70), cached)
            direct = Image.new("L", (1000, 70), 240)
            for text in strings:
                for _ in range(2):  # the second call uses the cached mask
                    cached.paste(240, (0, 0, 1000, 70))
                    box = canvas.text(5, 3, text, font, 20)
                direct.paste(240, (0, 0, 1000, 70))
                ImageDraw.Draw(direct).text(box[:2], text, font=font, fill=20)
                assert cached.tobytes() == direct.tobytes(), (face, size, text)


def test_type_scale_one_tries_the_usual_sizes() -> None:
    from vlmocr.data.synth.layouts import type_scales

    assert type_scales(1.0) == SCALES
    for factor in (1.5, 2.0, 4.0):
        larger = type_scales(factor)
        assert factor * SCALES[0] * 0.92 < larger[0] <= factor * SCALES[0] and larger[-len(SCALES):] == SCALES
        assert list(larger) == sorted(larger, reverse=True)
        steps = [b / a for a, b in pairwise(larger)]
        assert min(steps) > 0.9  # no gap: every size in between is tried


@pytest.mark.parametrize("layout", LAYOUTS)
def test_larger_type_on_sparse_pages_is_larger_and_sound(layout: str) -> None:
    """A curriculum's first pages: one row, few values, type up to 2x, still inside and unbroken."""
    plain = SynthConfig(layouts=(layout,), max_products=1, min_filled=0, max_filled=2, augment="none")
    large, largest = replace(plain, type_scale=2.0), replace(plain, type_scale=4.0)
    grew = 0
    for index in range(8):
        doc, page = render_document(large, "train", index)
        _, usual = render_document(plain, "train", index)
        _, most = render_document(largest, "train", index)
        assert_page_is_sound(page, doc.target, (768, 768), MIN_VALUE_PX)
        assert most.scale >= page.scale >= usual.scale
        grew += page.scale > usual.scale
    assert grew >= 2, f"type grew on {grew} of 8 pages"  # two_column: its label column limits it most


def test_config_checks_type_scale() -> None:
    assert SynthConfig(type_scale=2).type_scale == 2.0
    for bad in (0.5, 4.5, True, "2"):
        with pytest.raises(ConfigError, match="type_scale"):
            SynthConfig(type_scale=bad)  # type: ignore[arg-type]
