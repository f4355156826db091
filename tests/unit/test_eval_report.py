"""File-based evaluation: reading, path matching, reports, compare mode and the CLI."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.unit.conftest import SEED_SUFFIX, annotation, write_image, write_lines
from vlmocr.cli.app import app
from vlmocr.errors import ConfigError, EvaluationError
from vlmocr.eval.compare import compare
from vlmocr.eval.evaluate import MAX_ANSWER_DEPTH, EvalConfig, evaluate, load_predictions
from vlmocr.schema import manifest_schema

SEED = json.loads(SEED_SUFFIX)


def _target(i: int) -> dict:
    doc = copy.deepcopy(SEED)
    doc["pallet_number"] = str(i)
    return doc


@pytest.fixture
def gold(tmp_path: Path) -> Path:
    """A dataset with test/ (4 images) and valid/ (1 image)."""
    root = tmp_path / "gold"
    lines = []
    for i in range(4):
        write_image(root / "test" / f"img{i}.jpg", size=(120, 160))
        lines.append(annotation(f"img{i}.jpg", suffix=json.dumps(_target(i))))
    write_lines(root / "test" / "annotations.jsonl", lines)
    write_image(root / "valid" / "v0.jpg")
    write_lines(root / "valid" / "annotations.jsonl", [annotation("v0.jpg", suffix=json.dumps(_target(9)))])
    return root


def _row(file: str, doc, error=None, raw=None) -> str:
    return json.dumps({"file": file, "json": doc, "error": error, "raw": raw, "latency_s": 0.1})


@pytest.fixture
def predictions(tmp_path: Path, gold: Path) -> Path:
    wrong = _target(1)
    wrong["route"] = "D452-SU-999"
    del wrong["dock"]
    lines = [
        _row(str(gold / "test" / "img0.jpg"), _target(0)),  # absolute path, exact
        _row("test/img1.jpg", wrong),  # relative to the dataset folder
        _row("elsewhere/img2.jpg", None, "invalid_json: Expecting ',' delimiter", '{"route": "D4'),  # basename
        _row("img2.jpg", _target(2)),  # a second answer for img2: duplicate
        _row("unknown.jpg", {}),  # no gold
        "this is not json",
        json.dumps({"json": {}}),  # no file
    ]  # img3 and valid/v0 have no prediction
    return write_lines(tmp_path / "preds.jsonl", lines)


def test_evaluate_matches_scores_and_writes_reports(tmp_path, gold, predictions):
    out = tmp_path / "report"
    result = evaluate(predictions, gold, out, EvalConfig(schema=manifest_schema(), pred_root=tmp_path))
    m = result.match
    assert m.how == {"absolute path": 1, "relative path": 1, "basename": 1}
    assert [p.file for p in m.duplicates] == ["img2.jpg"]
    assert [p.file for p in m.unmatched] == ["unknown.jpg"]
    assert sorted(f"{r.split}/{r.image}" for r in m.missing) == ["test/img3.jpg", "valid/v0.jpg"]
    assert [s.line for s in result.skips] == [6, 7]
    s = result.summary
    assert s.n == 5 and s.json_valid == pytest.approx(2 / 5) and s.exact_match == pytest.approx(1 / 5)
    assert s.failures["documents without prediction"] == 2
    assert s.failures["documents with invalid JSON"] == 1 and s.failures["error: invalid_json"] == 1
    # worst first: the three empty answers, then the wrong one, then the exact one
    assert [i.key for i in result.images][-2:] == ["test/img1.jpg", "test/img0.jpg"]
    assert result.images[0].score.ted_accuracy == 0.0

    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["n"] == 5 and report["summary"]["exact_match"] == pytest.approx(0.2)
    assert report["matching"]["predictions_without_gold"] == ["unknown.jpg"]
    assert report["matching"]["duplicate_predictions"] == ["img2.jpg"]
    assert len(report["images"]) == 5 and len(report["skipped_lines"]) == 2
    img1 = next(i for i in report["images"] if i["image"] == "test/img1.jpg")
    assert {(f["where"], f["status"]) for f in img1["fields"]} == {("route", "wrong"), ("dock", "missing")}
    img2 = next(i for i in report["images"] if i["image"] == "test/img2.jpg")
    assert img2["raw"] == '{"route": "D4' and img2["error"] == "invalid_json"

    md = (out / "report.md").read_text()
    assert "| JSON valid | 40.0% |" in md and "`test/img1.jpg`" in md
    html = (out / "report.html").read_text()
    assert html.count('src="data:image/jpeg;base64,') == 5  # a thumbnail for every image shown
    assert "<ins>999</ins>" in html and "<del>275</del>" in html  # the wrong route, highlighted
    assert "no prediction" in html and "unknown.jpg" in html
    assert html.index("test/img2.jpg") < html.index("test/img1.jpg") < html.index("test/img0.jpg")


def test_existing_report_is_not_overwritten(tmp_path, gold, predictions):
    out = tmp_path / "report"
    config = EvalConfig(pred_root=tmp_path)
    evaluate(predictions, gold, out, config)
    before = (out / "report.json").read_text()
    with pytest.raises(ConfigError, match="--overwrite"):
        evaluate(predictions, gold, out, config)
    assert (out / "report.json").read_text() == before
    evaluate(predictions, gold, out, EvalConfig(pred_root=tmp_path, overwrite=True, max_images=1))
    assert (out / "report.html").read_text().count("data:image/jpeg") == 1


def test_one_split_folder_as_gold(tmp_path, gold, predictions):
    result = evaluate(predictions, gold / "test", None, EvalConfig(pred_root=tmp_path))
    assert result.summary.n == 4 and not result.files


def test_unreadable_image_still_reports(tmp_path, gold, predictions):
    (gold / "test" / "img0.jpg").write_bytes(b"not an image")
    result = evaluate(predictions, gold, tmp_path / "r", EvalConfig(pred_root=tmp_path))
    assert "image unavailable" in (tmp_path / "r" / "report.html").read_text()
    assert result.summary.n == 5


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([], "no usable prediction lines"),
        (["[1, 2]", "nope"], "no usable prediction lines"),
        ([_row("nothing/like/it.png", {})], "same dataset"),
    ],
)
def test_bad_predictions_raise_clear_errors(tmp_path, gold, lines, message):
    path = write_lines(tmp_path / "p.jsonl", lines)
    with pytest.raises(EvaluationError, match=message):
        evaluate(path, gold, None, EvalConfig(pred_root=tmp_path))


def test_missing_inputs_raise(tmp_path, gold, predictions):
    with pytest.raises(EvaluationError, match="not found"):
        load_predictions(tmp_path / "absent.jsonl")
    with pytest.raises(EvaluationError, match="gold"):
        evaluate(predictions, tmp_path / "no_dataset", None)


def test_compare_before_after(tmp_path, gold, predictions):
    after = write_lines(tmp_path / "after.jsonl", [
        _row(str(gold / "test" / f"img{i}.jpg"), _target(i)) for i in range(4)
    ] + [_row(str(gold / "valid" / "v0.jpg"), _target(8))])
    out = tmp_path / "cmp"
    result = compare(predictions, after, gold, out, EvalConfig(pred_root=tmp_path))
    deltas = result.deltas()
    assert deltas["json_valid"] == pytest.approx(1.0 - 0.4)
    assert result.b.summary.exact_match == pytest.approx(4 / 5)
    assert len(result.images) == 5
    report = json.loads((out / "report.json").read_text())
    assert report["labels"] == ["before", "after"]
    assert report["summary"]["delta"]["json_valid"] == pytest.approx(0.6)
    assert report["images"][0]["delta_ted_accuracy"] <= report["images"][-1]["delta_ted_accuracy"]
    v0 = next(i for i in report["images"] if i["image"] == "valid/v0.jpg")
    assert v0["after"]["fields"] == [{"path": "pallet_number", "where": "pallet_number", "gold": "9",
                                     "pred": "8", "status": "wrong", "similarity": 0.0}]
    html = (out / "report.html").read_text()
    assert "Comparison report" in html and "delta-up" in html and html.count("data:image/jpeg") == 5
    assert "| JSON valid | 40.0% | 100.0% | +60.0 pts |" in (out / "report.md").read_text()


def test_cli_eval_and_compare(tmp_path, gold, predictions, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["eval", "--pred", str(predictions), "--gold", str(gold), "--bootstrap", "50"])
    assert res.exit_code == 0, res.output
    assert "JSON valid" in res.output and "40.0%" in res.output
    report = json.loads((tmp_path / "preds.eval" / "report.json").read_text())
    assert report["summary"]["schema_valid"] is not None and "json_valid" in report["summary"]["intervals"]

    res = runner.invoke(app, ["eval", "--compare", str(predictions), str(predictions), "--gold", str(gold),
                              "--out", str(tmp_path / "c"), "--labels", "base", "tuned", "--no-schema"])
    assert res.exit_code == 0, res.output
    compared = json.loads((tmp_path / "c" / "report.json").read_text())
    assert compared["labels"] == ["base", "tuned"]
    assert compared["summary"]["base"]["schema_valid"] is None  # --no-schema
    assert compared["summary"]["delta"]["ted_accuracy"] == 0.0  # the same file twice

    res = runner.invoke(app, ["eval", "--gold", str(gold)])
    assert res.exit_code == 2 and "--pred" in res.output
    res = runner.invoke(app, ["eval", "--pred", str(tmp_path / "absent.jsonl"), "--gold", str(gold)])
    assert res.exit_code == 1 and "not found" in res.output


@pytest.mark.parametrize("recursion_limit", [1000, 5000])
@pytest.mark.parametrize("depth", [MAX_ANSWER_DEPTH, MAX_ANSWER_DEPTH + 1, 900, 3000])
def test_absurdly_nested_answer_is_reported_not_crashing(tmp_path, gold, depth, recursion_limit):
    # the outcome must not depend on the process's recursion limit (torch's inductor raises it once
    # something compiles); written by hand: json.dumps itself refuses such depths
    import sys

    before = sys.getrecursionlimit()
    sys.setrecursionlimit(recursion_limit)
    try:
        _check_deep_answer(tmp_path, gold, depth)
    finally:
        sys.setrecursionlimit(before)


def _check_deep_answer(tmp_path, gold, depth):
    text = '{"file": "img0.jpg", "json": ' + "[" * depth + '"x"' + "]" * depth + ', "error": null}'
    path = write_lines(tmp_path / "deep.jsonl", [text, _row("img1.jpg", _target(1))])
    # the report files too: they hold each image's answer
    result = evaluate(path, gold / "test", tmp_path / "report", EvalConfig(pred_root=tmp_path))
    kinds = {i.key: i.score.error for i in result.images}
    assert kinds["test/img1.jpg"] is None
    if depth <= MAX_ANSWER_DEPTH:  # deep but within it: scored like any wrong answer
        assert kinds["test/img0.jpg"] is None
    elif depth < 1000:  # read by the JSON reader at any limit, refused before scoring
        assert kinds["test/img0.jpg"] == "too_deep"
    else:  # beyond the JSON reader (a skipped line) unless the limit lets it read it
        assert kinds["test/img0.jpg"] == "too_deep" or (kinds["test/img0.jpg"] == "missing" and result.skips)
