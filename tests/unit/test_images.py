"""The resolution contract's arithmetic matches the Qwen2-VL processor's."""

from __future__ import annotations

import pytest

from vlmocr.errors import ConfigError, ImageError
from vlmocr.images import Resolution, resize_for_model, smart_resize, to_data_url


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((768, 768), (756, 756)),  # the real data: 27x27 = 729 visual tokens
        ((4032, 3024), (1148, 840)),  # a phone photo, capped at max_pixels
        ((100, 50), (644, 336)),  # small image scaled up to min_pixels
    ],
)
def test_smart_resize_default_contract(size: tuple[int, int], expected: tuple[int, int]) -> None:
    h, w = smart_resize(size[0], size[1], Resolution())
    assert (h, w) == expected
    assert h % 28 == 0 and w % 28 == 0
    assert Resolution().min_pixels <= h * w <= Resolution().max_pixels


def test_visual_tokens_and_validation() -> None:
    res = Resolution(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 64)
    assert res.max_visual_tokens == 64
    assert res.visual_tokens(768, 768) == 49  # floor to multiples of 28 keeps it under the cap
    with pytest.raises(ConfigError):
        Resolution(min_pixels=1000, max_pixels=10)
    with pytest.raises(ImageError, match="aspect ratio"):
        smart_resize(10, 5000, res)


def test_resize_for_model_and_data_url() -> None:
    from PIL import Image

    img = Image.new("RGB", (768, 768), "white")
    small = resize_for_model(img, Resolution(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 100))
    assert small.size == (280, 280)
    url = to_data_url(small)
    assert url.startswith("data:image/jpeg;base64,")


def test_smart_resize_matches_transformers() -> None:
    tf = pytest.importorskip("transformers.models.qwen2_vl.image_processing_qwen2_vl")
    res = Resolution()
    for h, w in [(768, 768), (3024, 4032), (50, 100), (1000, 333), (29, 2000)]:
        assert smart_resize(h, w, res) == tf.smart_resize(h, w, 28, res.min_pixels, res.max_pixels)
