"""The per-field loss benchmark finds each field's value tokens in a compact JSON answer."""

from __future__ import annotations

import pytest

from vlmocr.schema import dumps_target

from .conftest import benchmark_module


@pytest.fixture(scope="module")
def names():
    return benchmark_module("name_reading_loss")


def test_value_spans_cover_exactly_the_values(names) -> None:
    target = {"route": "G141-LN-154", "salesman": "QXOTB MJEWS", "destination": "", "dock": "W34",
              "note": 'say "hi"'}
    answer = dumps_target(target)
    spans = names.value_spans(answer, target, ["route", "salesman", "destination", "note", "absent"])
    assert set(spans) == {"route", "salesman", "note"}  # blank and absent fields have no span
    assert answer[slice(*spans["route"])] == "G141-LN-154"
    assert answer[slice(*spans["salesman"])] == "QXOTB MJEWS"
    assert answer[slice(*spans["note"])] == 'say \\"hi\\"'  # the value as JSON writes it


def test_token_groups_mark_the_first_token_of_each_value(names) -> None:
    spans = {"salesman": (10, 21), "route": (30, 41)}
    offsets = [(0, 9), (9, 12), (12, 15), (15, 21), (21, 23), (30, 33), (33, 41), (41, 42)]
    assert names.token_groups(offsets, spans) == [
        None, "salesman first", "salesman rest", "salesman rest", None, "route first", "route rest", None]
