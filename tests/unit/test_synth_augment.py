"""Augmentation: the document stays inside the frame, 'light' stays mild, seeds reproduce pixels."""

from __future__ import annotations

import math
import random

import pytest
from PIL import Image, ImageDraw

from vlmocr.data.synth import LAYOUTS, SynthConfig
from vlmocr.data.synth.augment import Tint, _colorize, _paste_desk, apply_matrix, photograph
from vlmocr.data.synth.generate import render_document
from vlmocr.errors import ConfigError


@pytest.fixture(scope="module")
def pages() -> list:
    return [render_document(SynthConfig(layouts=(layout,), min_products=8), "train", i)[1]
            for i, layout in enumerate(LAYOUTS)]


@pytest.mark.parametrize("level", ["none", "light", "photo"])
def test_document_and_every_text_box_stay_inside_the_frame(pages: list, level: str) -> None:
    for seed in range(30):
        page = pages[seed % len(pages)]
        width, height = page.image.size
        photo = photograph(page.image, page.paper, page.tint, level, random.Random(seed))
        assert photo.image.size == (width, height) and photo.image.mode == "RGB"
        for x, y in photo.quad:
            assert 0 <= x <= width and 0 <= y <= height, (level, seed, photo.quad)
        for box in page.boxes:
            x0, y0, x1, y1 = box.box
            for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1)):
                u, v = apply_matrix(photo.matrix, x, y)
                assert 0 <= u <= width and 0 <= v <= height, (level, seed, box)


def _scale_and_angle(photo, size: tuple[int, int]) -> tuple[float, float]:
    """Linear scale (from the quad's area) and the angle of its top edge, in degrees."""
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = photo.quad
    area = 0.5 * abs((x0 * y1 - x1 * y0) + (x1 * y2 - x2 * y1) + (x2 * y3 - x3 * y2) + (x3 * y0 - x0 * y3))
    return math.sqrt(area / (size[0] * size[1])), math.degrees(math.atan2(y1 - y0, x1 - x0))


def test_light_is_mild_and_photo_is_stronger(pages: list) -> None:
    page = pages[0]
    size = page.image.size
    light = [_scale_and_angle(photograph(page.image, page.paper, page.tint, "light", random.Random(s)), size)
             for s in range(40)]
    photo = [_scale_and_angle(photograph(page.image, page.paper, page.tint, "photo", random.Random(s)), size)
             for s in range(40)]
    assert all(0.94 <= scale <= 1.0 and abs(angle) <= 0.81 for scale, angle in light)
    straight = sum(scale == 1.0 and angle == 0.0 for scale, angle in light)
    assert 8 <= straight <= 32  # about half are straight full-frame scans
    assert all(0.6 <= scale <= 0.95 and abs(angle) <= 8 for scale, angle in photo)
    assert max(abs(angle) for _, angle in photo) > 2 * max(abs(angle) for _, angle in light)


def test_none_is_the_tinted_page_and_light_keeps_the_ink(pages: list) -> None:
    page = pages[1]
    clean = photograph(page.image, page.paper, page.tint, "none", random.Random(0))
    assert clean.matrix == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    assert clean.image.tobytes() == _colorize(page.image, page.tint).tobytes()
    for seed in range(6):
        light = photograph(page.image, page.paper, page.tint, "light", random.Random(seed))
        # mild: dark ink survives at full contrast; a placed copy shows the desk at the corner
        assert min(light.image.convert("L").getextrema()) <= min(clean.image.convert("L").getextrema()) + 10
        if light.matrix != clean.matrix:
            assert light.image.getpixel((0, 0)) == page.tint.desk


def test_same_seed_same_pixels_other_seed_other_pixels(pages: list) -> None:
    page = pages[2]
    for level in ("light", "photo"):
        a = photograph(page.image, page.paper, page.tint, level, random.Random(7)).image.tobytes()
        b = photograph(page.image, page.paper, page.tint, level, random.Random(7)).image.tobytes()
        c = photograph(page.image, page.paper, page.tint, level, random.Random(8)).image.tobytes()
        assert a == b and a != c


def test_desk_strips_equal_a_full_masked_paste() -> None:
    tint = Tint(ink=(0, 0, 0), paper=(250, 250, 250), desk=(90, 80, 70))
    rng = random.Random(3)
    for _ in range(20):
        quad = ((rng.uniform(2, 80), rng.uniform(2, 80)), (rng.uniform(500, 760), rng.uniform(2, 80)),
                (rng.uniform(500, 760), rng.uniform(500, 760)), (rng.uniform(2, 80), rng.uniform(500, 760)))
        fast = Image.new("RGB", (768, 768), tint.paper)
        _paste_desk(fast, quad, tint.desk)
        slow = Image.new("RGB", (768, 768), tint.paper)
        mask = Image.new("L", (768, 768), 255)
        ImageDraw.Draw(mask).polygon(quad, fill=0)
        slow.paste(tint.desk, (0, 0, 768, 768), mask)
        assert fast.tobytes() == slow.tobytes()


def test_bad_level_and_colour_page_are_errors(pages: list) -> None:
    page = pages[0]
    with pytest.raises(ConfigError, match="augment must be one of"):
        photograph(page.image, page.paper, page.tint, "heavy", random.Random(0))
    with pytest.raises(ConfigError, match="grayscale"):
        photograph(page.image.convert("RGB"), page.paper, page.tint, "light", random.Random(0))
