"""Answer tokens are split into each JSON field's value and the structure around them."""

from __future__ import annotations

import json

from vlmocr.train.image_use import STRUCTURE, field_of, value_spans


def test_value_spans_cover_each_value_escapes_and_numbers_included() -> None:
    target = {"route": "A1-B", "salesman": 'ANN "Q" LEE', "products": [{"description": "12 - BOX\\X", "cases": 3}],
              "ok": None}
    for answer in (json.dumps(target, separators=(",", ":"), ensure_ascii=False), json.dumps(target)):
        spans = value_spans(answer)
        assert [key for _, _, key in spans] == ["route", "salesman", "description", "cases", "ok"]
        strings = [json.loads(f'"{answer[s:e]}"') for s, e, _ in spans[:3]]
        assert strings == ["A1-B", 'ANN "Q" LEE', "12 - BOX\\X"]
        assert [answer[s:e] for s, e, _ in spans[3:]] == ["3", "null"]


def test_field_of_marks_keys_and_punctuation_as_structure() -> None:
    answer = '{"dock":"D12","load":"4"}'
    spans = value_spans(answer)
    at = {answer.index("D12"): "dock", answer.index('"4"') + 1: "load", 0: STRUCTURE, 2: STRUCTURE}
    for start, field in at.items():
        assert field_of(start, start + 1, spans) == field
    # a token that straddles a quote and the value's first character belongs to the value
    assert field_of(answer.index("D12") - 1, answer.index("D12") + 1, spans) == "dock"
    assert field_of(answer.index("load"), answer.index("load") + 4, spans) == STRUCTURE  # a key is structure


def test_value_spans_name_array_items_by_their_key() -> None:
    # the reading task's answer: every line is a value of "lines" (the old pattern saw only the first)
    answer = json.dumps({"lines": ["ACME CORP", "Route #: 12", "7"], "n": [3, 4]})
    spans = value_spans(answer)
    assert [(answer[s:e], key) for s, e, key in spans] == [
        ("ACME CORP", "lines"), ("Route #: 12", "lines"), ("7", "lines"), ("3", "n"), ("4", "n")]
    assert [key for _, _, key in value_spans('["a", 1]')] == ["", ""]


def test_offset_fields_can_name_each_values_first_token_apart() -> None:
    from vlmocr.train.image_use import offset_fields

    answer = '{"salesman":"QXOTB MJEWS","dock":"D12"}'
    q, d = answer.index("QXOTB"), answer.index("D12")
    offsets = [(0, 12), (q, q + 3), (q + 3, q + 9), (q + 9, q + 12), (d, d + 3), (d + 3, d + 5)]  # WS" spans the end
    assert offset_fields(offsets, answer) == ["structure", "salesman", "salesman", "salesman", "dock", "structure"]
    assert offset_fields(offsets, answer, first_apart=True) == [
        "structure", "salesman (first)", "salesman", "salesman", "dock (first)", "structure"]


def test_offset_fields_can_split_value_tokens_by_their_characters() -> None:
    from vlmocr.train.image_use import offset_fields

    answer = '{"salesman":"QX OTB","dock":"D1"}'
    q, d = answer.index("QX"), answer.index("D1")
    # "Q" | "X" | " OTB" (a leading space is not a character of the piece) | "D" | "1" | '"}'
    offsets = [(0, 12), (q, q + 1), (q + 1, q + 2), (q + 2, q + 6), (d, d + 1), (d + 1, d + 2), (d + 2, d + 4)]
    assert offset_fields(offsets, answer, first_apart=True, by_length=True) == [
        "structure", "salesman (first) [1 char]", "salesman [1 char]", "salesman [2+ chars]",
        "dock (first) [1 char]", "dock [1 char]", "structure"]
    assert offset_fields(offsets, answer, by_length=True)[3] == "salesman [2+ chars]"
