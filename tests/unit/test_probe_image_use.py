"""The image-use probe assigns every answer token to the JSON field its characters fall in."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _probe():
    spec = importlib.util.spec_from_file_location("probe_image_use", ROOT / "benchmarks" / "probe_image_use.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_value_spans_cover_each_string_value_escapes_included() -> None:
    probe = _probe()
    target = {"route": "A1-B", "salesman": 'ANN "Q" LEE', "products": [{"description": "12 - BOX\\X", "cases": "3"}]}
    answer = json.dumps(target, separators=(",", ":"), ensure_ascii=False)
    spans = probe.value_spans(answer)
    assert [key for _, _, key in spans] == ["route", "salesman", "description", "cases"]
    assert [json.loads(f'"{answer[s:e]}"') for s, e, _ in spans] == ["A1-B", 'ANN "Q" LEE', "12 - BOX\\X", "3"]


def test_field_of_marks_keys_and_punctuation_as_structure() -> None:
    probe = _probe()
    answer = '{"dock":"D12","load":"4"}'
    spans = probe.value_spans(answer)
    at = {answer.index("D12"): "dock", answer.index('"4"') + 1: "load", 0: "structure", 2: "structure"}
    for start, field in at.items():
        assert probe.field_of(start, start + 1, spans) == field
    # a token that straddles a quote and the value's first character belongs to the value
    assert probe.field_of(answer.index("D12") - 1, answer.index("D12") + 1, spans) == "dock"
