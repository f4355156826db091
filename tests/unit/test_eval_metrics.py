"""score_pair / summarize on hand-computed examples: validity, fields, rows, totals, options."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from tests.unit.conftest import SEED_SUFFIX
from vlmocr.eval.align import align_fields
from vlmocr.eval.metrics import ScoreConfig, arithmetic_checks, score_pair, summarize
from vlmocr.eval.normalize import NormalizeConfig, canonical_number, normalize_text
from vlmocr.schema import manifest_schema

SEED = json.loads(SEED_SUFFIX)


def _statuses(score) -> dict[str, str]:
    return {f.where: f.status for f in score.fields}


def test_exact_prediction_scores_perfectly():
    s = score_pair(copy.deepcopy(SEED), SEED, config=ScoreConfig(schema=manifest_schema()))
    assert s.json_valid and s.schema_valid and s.exact_match
    assert s.ted_accuracy == 1.0 and s.field_f1 == 1.0
    assert s.counts == {"correct": 15 - 1 + 6 * 4, "wrong": 0, "missing": 0, "hallucinated": 0}
    assert s.arithmetic == {"total_cases": True, "total_units": True, "total_layers": True}
    assert s.rows[0].matched == 6 and s.rows[0].exact == 6


@pytest.mark.parametrize("pred", [None, {}])
def test_invalid_or_empty_prediction(pred):
    s = score_pair(pred, SEED, config=ScoreConfig(schema=manifest_schema()))
    assert s.json_valid is (pred is not None)
    assert s.schema_valid is False
    assert not s.exact_match and s.ted_accuracy == 0.0 and s.field_f1 == 0.0
    assert s.counts["missing"] == 38 and s.counts["correct"] == 0
    assert s.rows[0].n_gold == 6 and s.rows[0].matched == 0


def test_raw_valid_false_overrides_a_parsed_value():
    s = score_pair(copy.deepcopy(SEED), SEED, raw_valid=False)
    assert not s.json_valid and s.ted_accuracy == 0.0


def test_wrong_missing_hallucinated_fields():
    pred = copy.deepcopy(SEED)
    pred["route"] = "D452-SU-276"  # one character off
    del pred["dock"]
    pred["carrier"] = "ACME"
    s = score_pair(pred, SEED)
    st = _statuses(s)
    assert st["route"] == "wrong" and st["dock"] == "missing" and st["carrier"] == "hallucinated"
    route = next(f for f in s.fields if f.where == "route")
    assert route.similarity == pytest.approx(1 - 1 / 11)
    assert s.counts == {"correct": 36, "wrong": 1, "missing": 1, "hallucinated": 1}
    # Donut F1: 38 gold pairs, 38 predicted pairs, 36 shared → 72 / 76
    assert s.field_f1 == pytest.approx(72 / 76)


def test_reordered_rows_are_matched_by_hungarian():
    pred = copy.deepcopy(SEED)
    pred["products"] = [pred["products"][i] for i in (3, 0, 5, 1, 4, 2)]
    s = score_pair(pred, SEED)
    assert s.counts["correct"] == 38 and s.counts["wrong"] == 0
    assert sorted(s.rows[0].pairs, key=lambda p: p[1]) == [(1, 0), (3, 1), (5, 2), (0, 3), (4, 4), (2, 5)]
    assert s.rows[0].exact == 6
    assert not s.exact_match and s.ted_accuracy < 1.0  # Donut's tree keeps list order
    assert s.field_f1 == 1.0  # Donut's flattened pairs ignore order


def test_missing_and_extra_rows():
    pred = copy.deepcopy(SEED)
    pred["products"].pop(1)  # BOX OF STAIN REMOVERS
    pred["products"][0]["cases"] = "5"
    pred["products"].append({"description": "999999 - GHOST", "cases": "1", "sales_units": "1", "layers": "1"})
    s = score_pair(pred, SEED)
    st = _statuses(s)
    assert all(st[f"products[1].{k}"] == "missing" for k in ("description", "cases", "sales_units", "layers"))
    assert st["products[0].cases"] == "wrong"
    assert all(st[f"products[pred 5].{k}"] == "hallucinated" for k in ("description", "cases"))
    row = s.rows[0]
    assert (row.n_gold, row.n_pred, row.matched, row.exact) == (6, 6, 5, 4)
    summary = summarize([(pred, SEED)])
    assert summary.row_precision == pytest.approx(5 / 6) and summary.row_recall == pytest.approx(5 / 6)
    assert summary.row_exact == pytest.approx(4 / 6)


def test_row_threshold_controls_matching():
    gold = {"rows": [{"a": "abcd", "b": "1"}]}
    pred = {"rows": [{"a": "abxx", "b": "2"}]}  # similarity (0.5 + 0) / 2 = 0.25
    assert align_fields(pred, gold, row_threshold=0.5).rows[0].matched == 0
    assert align_fields(pred, gold, row_threshold=0.2).rows[0].matched == 1


def test_type_mismatch_counts_both_sides():
    s = score_pair({"products": "none"}, {"products": [{"a": "1"}]})
    assert {(f.where, f.status) for f in s.fields} == {("products[0].a", "missing"), ("products", "hallucinated")}


def test_arithmetic_consistency():
    assert arithmetic_checks(SEED, ScoreConfig().arithmetic) == {
        "total_cases": True, "total_units": True, "total_layers": True}
    pred = copy.deepcopy(SEED)
    pred["total_cases"] = "121"
    pred["products"][0]["layers"] = "many"
    s = score_pair(pred, SEED)
    assert s.arithmetic == {"total_cases": False, "total_units": True, "total_layers": False}
    assert s.gold_arithmetic == {"total_cases": True, "total_units": True, "total_layers": True}
    summary = summarize([(pred, SEED), (SEED, SEED)])
    assert summary.arithmetic_consistent == pytest.approx(4 / 6)
    assert summary.gold_arithmetic_consistent == 1.0
    # rules that do not apply to a document are not counted
    assert summarize([({"x": "1"}, {"x": "1"})]).arithmetic_consistent is None


def test_normalization_options():
    assert canonical_number("1,200.50") == "1200.5" and canonical_number("007") == "7"
    assert canonical_number("12a") is None
    assert normalize_text("Cafe\u0301  de\n Paris", NormalizeConfig()) == "Café de Paris"
    gold, pred = {"n": "1,200", "s": "ACME Corp"}, {"n": "1200.0", "s": "acme  corp"}
    plain = score_pair(pred, gold)
    assert plain.counts["wrong"] == 2
    loose = score_pair(pred, gold, config=ScoreConfig(normalize=NormalizeConfig(casefold=True, numbers=True)))
    assert loose.counts["correct"] == 2 and loose.exact_match and loose.ted_accuracy == 1.0
    raw = score_pair({"s": "a  b"}, {"s": "a b"}, config=ScoreConfig(normalize=NormalizeConfig.none()))
    assert raw.counts["wrong"] == 1


def test_schema_validity_is_separate_from_json_validity():
    pred = copy.deepcopy(SEED)
    pred["pallet_number"] = 15  # a number where the schema wants a string
    s = score_pair(pred, SEED, config=ScoreConfig(schema=manifest_schema()))
    assert s.json_valid and s.schema_valid is False
    assert _statuses(s)["pallet_number"] == "correct"  # 15 compares as "15"
    assert score_pair(pred, SEED).schema_valid is None  # no schema given


def test_summarize_rates_and_failure_breakdown():
    wrong = copy.deepcopy(SEED)
    wrong["route"] = "X"
    summary = summarize([(SEED, SEED), (wrong, SEED), (None, SEED), ({}, SEED)])
    assert summary.n == 4
    assert summary.json_valid == 0.75 and summary.exact_match == 0.25
    assert summary.failures["fields wrong"] == 1
    assert summary.failures["fields missing"] == 38  # the empty answer
    assert summary.failures["fields lost to invalid JSON"] == 38
    assert summary.failures["documents with invalid JSON"] == 1
    route = next(f for f in summary.fields if f.path == "route")
    assert (route.correct, route.wrong, route.missing) == (1, 1, 2)
    assert route.accuracy == 0.25 and route.precision == 0.5 and route.recall == 0.25


def test_near_misses_count_wrong_values_a_character_or_two_off():
    docs = []
    for route, salesman in (("D452-SU-275", "RAVEN BURKE"),  # route right, one letter off
                            ("D452-SV-275", "RAVEN BURNE"),  # both one character off
                            ("D452-SU-2", "RACHEL BURNETT"),  # two characters short; a different name
                            ("D452-SU-275", "")):  # blank: wrong, but no characters in common to speak of
        doc = copy.deepcopy(SEED)
        doc["route"], doc["salesman"] = route, salesman
        docs.append(doc)
    gold = copy.deepcopy(SEED)
    gold["route"], gold["salesman"] = "D452-SU-275", "RAVEN BURKE"
    summary = summarize([(doc, gold) for doc in docs])
    fields = {f.path: f for f in summary.fields}
    assert (fields["route"].wrong, fields["route"].near_misses) == (2, 2)
    assert (fields["salesman"].wrong, fields["salesman"].near_misses) == (2, 1)
    assert fields["salesman"].missing == 1  # the blank answer is missing, not near
    assert fields["route"].to_dict()["near_misses"] == 2
    assert all(f.near_misses == 0 for f in summary.fields if f.path not in ("route", "salesman"))


def test_bootstrap_intervals_bracket_the_estimate():
    pairs = [(SEED if i % 3 else None, SEED) for i in range(30)]
    summary = summarize(pairs, bootstrap=300, seed=1)
    lo, hi = summary.intervals["json_valid"]
    assert lo <= summary.json_valid <= hi and lo < hi
    assert set(summary.intervals) == {"json_valid", "exact_match", "field_f1", "field_f1_macro", "ted_accuracy"}
    assert summarize(pairs, bootstrap=300, seed=1).intervals == summary.intervals  # seeded


def test_eval_imports_without_torch():
    code = ("import sys, vlmocr.eval.metrics, vlmocr.eval.evaluate, vlmocr.eval.compare, "
            "vlmocr.eval.report, vlmocr.cli.evaluate; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
