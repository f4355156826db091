"""The read-task gain benchmark splits an answer's characters into values, labels and structure."""

from __future__ import annotations

import json

import pytest

from vlmocr.data.synth import SynthConfig, sample_at
from vlmocr.data.synth.generate import reading_line_boxes
from vlmocr.schema import dumps_target

from .conftest import benchmark_module


@pytest.fixture(scope="module")
def gain():
    return benchmark_module("read_task_gain")


def test_every_value_and_label_character_is_classed_as_drawn(gain) -> None:
    config = SynthConfig(task="read", type_scale=2, max_products=1, min_filled=0, max_filled=2)
    for i in range(8):
        sample = sample_at(config, "valid", i)
        answer = dumps_target(sample.target)
        lines = reading_line_boxes(sample.boxes)
        classes = gain.char_classes(answer, lines)
        assert classes is not None and len(classes) == len(answer)
        values = "".join(ch for ch, kind in zip(answer, classes) if kind == "value")
        labels = "".join(ch for ch, kind in zip(answer, classes) if kind == "label")
        drawn = [b for line in lines for b in line]
        assert values == "".join(b.text.strip() for b in drawn if b.field)
        assert labels == "".join(b.text.strip() for b in drawn if not b.field)
        # what is left is JSON punctuation, the key and the spaces that join a line's strings
        rest = "".join(ch for ch, kind in zip(answer, classes) if kind == "structure")
        assert set(rest) <= set('{}[]":, lines')


def test_a_line_json_escapes_is_not_classed(gain) -> None:
    from vlmocr.data.synth.canvas import TextBox

    boxes = [[TextBox('say "hi"', (0, 0, 50, 10), None, 10)]]
    assert gain.char_classes(json.dumps({"lines": ['say "hi"']}), boxes) is None


def test_value_tokens_are_split_into_letters_and_digits(gain) -> None:
    transformers = pytest.importorskip("transformers")
    from vlmocr.models.builtin import BUILTIN_DIR

    tokenizer = transformers.AutoTokenizer.from_pretrained(BUILTIN_DIR)
    config = SynthConfig(task="read", crop=[1536, 448], size=(1536, 1536), augment="none")
    seen = {"value letters": 0, "value digits": 0}
    for i in range(6):
        sample = sample_at(config, "valid", i)
        answer = dumps_target(sample.target)
        classes = gain.char_classes(answer, reading_line_boxes(sample.boxes))
        kinds = gain.value_kinds(tokenizer, answer, classes)
        offsets = tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        assert len(kinds) == len(offsets) + 1 and kinds[-1] is None
        for (s, e), kind, coarse in zip(offsets, kinds, gain.token_classes(tokenizer, answer, classes)):
            values = [ch for ch, k in zip(answer[s:e], classes[s:e]) if k == "value"]
            if kind is not None:
                seen[kind] += 1
                assert coarse == "value"  # a refinement of the value tokens only
            if kind == "value letters":
                assert any(ch.isalpha() for ch in values)
            elif kind == "value digits":
                assert values and not any(ch.isalpha() for ch in values) and any(ch.isdigit() for ch in values)
            else:
                assert not any(ch.isalnum() for ch in values)
    assert seen["value letters"] > 0 and seen["value digits"] > 0


def test_records_are_replaced_by_label_then_by_model_path(gain) -> None:
    old = [{"model": "runs/a", "label": "run a, random names", "x": 1},
           {"model": "runs/a", "label": "run a, Faker names", "x": 2},
           {"model": "runs/b", "x": 3}]
    new = [{"model": "runs/a", "label": "run a, Faker names", "x": 4}, {"model": "runs/b", "x": 5}]
    merged = gain.merge_records(old, new)
    assert [(r.get("label"), r["x"]) for r in merged] == [("run a, random names", 1), ("run a, Faker names", 4),
                                                         (None, 5)]
