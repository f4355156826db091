"""The field-error profile tells a misread letter from a value written out of nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import benchmark_module


@pytest.fixture(scope="module")
def errors():
    return benchmark_module("field_errors")


def _write_split(folder: Path, golds: list[dict]) -> Path:
    folder.mkdir(parents=True)
    lines = []
    for i, gold in enumerate(golds):
        (folder / f"{i}.jpg").write_bytes(b"not read")  # the gold reader does not open images here
        lines.append(json.dumps({"image": f"{i}.jpg", "prefix": "<JSON>", "suffix": json.dumps(gold)}))
    (folder / "annotations.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def _write_pred(path: Path, answers: list[dict | None]) -> Path:
    rows = [{"file": f"{i}.jpg", "json": a, "error": None if a is not None else "invalid_json: x"}
            for i, a in enumerate(answers)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_profile_of_one_field(errors) -> None:
    pairs = {
        "a": ({"salesman": "RAVEN BURKE"}, {"salesman": "RAVEN BURKE"}),  # exact
        "b": ({"salesman": "RAVEN BURKE"}, {"salesman": "RAVEN BURNE"}),  # one letter: K -> N
        "c": ({"salesman": "ANNA LEE"}, {"salesman": "JOHN SMITH"}),  # a guess
        "d": ({"salesman": "ANNA LEE"}, None),  # no answer
        "e": ({"salesman": ""}, {"salesman": "X"}),  # blank gold: not counted
    }
    profile = errors.field_errors(pairs, "salesman")
    assert profile["n"] == 4 and profile["wrong"] == 3
    assert profile["exact"] == 0.25
    assert profile["wrong_by_edit_distance"] == {"1": 1, "2": 0, "3-5": 0, "6+": 2}
    assert profile["top_substitutions"]["K->N"] == 1
    # words in place: 2 + 1 (RAVEN) + 0 + 0 of 2 + 2 + 2 + 2
    assert profile["word_accuracy"] == pytest.approx(3 / 8, abs=1e-4)
    # initials in place: RAVEN BURKE twice (4), ANNA/JOHN no, LEE/SMITH no, none for the missing answer
    assert profile["word_initial_accuracy"] == pytest.approx(4 / 8, abs=1e-4)
    assert profile["cer_mean"] == pytest.approx((0 + 1 / 11 + 1.0 + 1.0) / 4, abs=1e-4)


def test_two_prediction_files_side_by_side(errors, tmp_path: Path) -> None:
    golds = [{"route": "G141-LN-154", "dock": "W1"}, {"route": "A9-QX-2", "dock": "W2"},
             {"route": "B7-ZZ-8", "dock": "W3"}]
    gold = _write_split(tmp_path / "test", golds)
    base = _write_pred(tmp_path / "base.jsonl", [
        {"route": "G141-LN-154"}, {"route": "A9-QY-2"}, None])
    new = _write_pred(tmp_path / "new.jsonl", [
        {"route": "G141-LM-154"}, {"route": "A9-QX-2"}, {"route": "B7-ZZ-8"}])
    out = tmp_path / "out.json"
    result = errors.main(["--gold", str(gold), "--pred", f"base={base}", "--pred", f"new={new}",
                          "--fields", "route", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    assert result["fields"]["route"]["base"]["exact"] == pytest.approx(1 / 3, abs=1e-4)
    assert result["fields"]["route"]["new"]["exact"] == pytest.approx(2 / 3, abs=1e-4)
    assert result["paired"]["base->new"]["route"] == {"fixed": 2, "broken": 1}
    assert result["fields"]["route"]["base"]["top_substitutions"] == {"X->Y": 1}


def test_common_keeps_the_images_every_file_answered(errors, tmp_path: Path) -> None:
    golds = [{"route": f"R{i}"} for i in range(4)]
    gold = _write_split(tmp_path / "test", golds)
    full = _write_pred(tmp_path / "full.jsonl", [{"route": "R0"}, {"route": "R1"}, None, {"route": "R3"}])
    partial = tmp_path / "partial.jsonl"  # stopped after three images; its third answer was no JSON
    partial.write_text("\n".join(full.read_text().splitlines()[:3]) + "\n")
    every = errors.main(["--gold", str(gold), "--pred", f"a={full}", "--pred", f"b={partial}", "--fields", "route"])
    assert every["images"] == 4 and every["fields"]["route"]["b"]["wrong"] == 2  # image 3 missing counts wrong
    common = errors.main(["--gold", str(gold), "--pred", f"a={full}", "--pred", f"b={partial}", "--fields",
                          "route", "--common"])
    assert common["images"] == 3  # the unparsed answer stays: it is a line, and wrong
    assert common["fields"]["route"]["a"] == common["fields"]["route"]["b"]
    assert common["fields"]["route"]["b"]["wrong"] == 1


def test_records_the_generator_settings_of_a_synth_split(errors, tmp_path: Path) -> None:
    gold = _write_split(tmp_path / "data" / "test", [{"route": "R1"}])
    pred = _write_pred(tmp_path / "p.jsonl", [{"route": "R1"}])
    args = ["--gold", str(gold), "--pred", f"a={pred}", "--fields", "route"]
    assert errors.main(args)["gold_synth"] is None  # a plain split: nothing to record
    spec = {"generator": "vlmocr.data.synth", "config": {"seed": 777, "layouts": ["form"]},
            "images": {"test": 1}, "documents": {"test": 1}}
    (tmp_path / "data" / "synth.json").write_text(json.dumps(spec))
    assert errors.main(args)["gold_synth"] == {key: spec[key] for key in ("generator", "config", "images")}
    (tmp_path / "data" / "synth.json").write_text("{half")
    assert errors.main(args)["gold_synth"] is None  # unreadable: no settings, no crash
