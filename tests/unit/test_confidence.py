"""Per-field confidence: token spans, JSON leaf spans, the client's rows, and the evaluation of it."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import math
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from tests.unit.test_client_fake_server import Action, FakeOpenAI, manifest
from vlmocr.client.confidence import (
    REPLACEMENT,
    AlignmentError,
    answer_confidence,
    field_confidence,
    from_openai,
    leaf_spans,
    token_spans,
)
from vlmocr.client.extract import ExtractConfig, extract
from vlmocr.eval.align import align_fields
from vlmocr.eval.confidence import auroc, summarize_confidence
from vlmocr.eval.evaluate import EvalConfig, evaluate
from vlmocr.eval.metrics import score_pair
from vlmocr.fields import leaves
from vlmocr.records import Prediction
from vlmocr.schema import dumps_target


def pieces(text: str, size: int = 3) -> list[str]:
    """`text` cut into tokens of `size` characters."""
    return [text[i : i + size] for i in range(0, len(text), size)]


# --- token spans -------------------------------------------------------------------------------------------


def test_token_spans_follow_the_text() -> None:
    assert token_spans(['{"', "a", '":', "1", "}"], '{"a":1}') == [(0, 2), (2, 3), (3, 5), (5, 6), (6, 7)]


def test_tokens_after_the_text_get_no_span_and_tokens_must_cover_it() -> None:
    assert token_spans(["{}", "<|im_end|>"], "{}") == [(0, 2), None]
    with pytest.raises(AlignmentError, match="end at character 4"):
        token_spans(['{"a"'], '{"a":1}')  # cut off: the rest would otherwise count as certain
    with pytest.raises(AlignmentError):
        token_spans([], "{}")


def test_reasoning_tokens_before_the_answer_get_no_span() -> None:
    tokens = ["<think>", "hm", "</think>", '{"a":', "1", "}", "<|im_end|>"]
    assert token_spans(tokens, '{"a":1}') == [None, None, None, (0, 5), (5, 6), (6, 7), None]


def _covers(spans: list, text: str) -> bool:
    """The spans follow each other and cover all of `text`."""
    placed = [s for s in spans if s is not None]
    return placed[0][0] == 0 and placed[-1][1] == len(text) and all(
        a[1] == b[0] for a, b in itertools.pairwise(placed))


def test_a_character_split_over_tokens_is_placed_on_one_of_its_pieces() -> None:
    # "é" is two bytes; decoded one token at a time each half is U+FFFD.
    spans = token_spans(['"', "h", REPLACEMENT, REPLACEMENT + "llo", '"'], '"héllo"')
    assert spans[:2] == [(0, 1), (1, 2)] and spans[3][1] == 6 and spans[-1] == (6, 7) and _covers(spans, '"héllo"')
    assert {spans[2], spans[3]} in ({(2, 2), (2, 6)}, {(2, 3), (3, 6)})
    # a token that ends in a split character, one that starts with one
    spans = token_spans(['"a' + REPLACEMENT, REPLACEMENT + 'b"'], '"aéb"')
    assert _covers(spans, '"aéb"') and spans[0][0] == 0 and spans[1][1] == 5


def test_several_split_characters_in_a_row() -> None:
    text = '{"k":"中文字"}'
    tokens = ['{"k":"', REPLACEMENT, REPLACEMENT, REPLACEMENT, REPLACEMENT, REPLACEMENT, '"}']
    spans = token_spans(tokens, text)
    assert spans[0] == (0, 6) and spans[-1] == (9, 11) and _covers(spans, text)
    assert all(6 <= s[0] <= s[1] <= 9 for s in spans[1:-1])


def test_split_characters_followed_by_the_same_whole_character() -> None:
    # The pieces of one character, then the next one twice as whole tokens: a greedy match would eat one.
    text = '{"a":"𠀋中中"}'
    spans = token_spans(['{"a":"', REPLACEMENT, REPLACEMENT, "中", "中", '"}'], text)
    assert spans[3:] == [(7, 8), (8, 9), (9, 11)] and _covers(spans, text)
    # pieces around an empty token
    text = '{"a":"éé"}'
    assert _covers(token_spans(['{"a":"', REPLACEMENT, REPLACEMENT, "", REPLACEMENT, REPLACEMENT, '"}'], text), text)


def test_tokens_that_do_not_spell_the_text_are_an_error() -> None:
    with pytest.raises(AlignmentError):
        token_spans(['{"', "b"], '{"a":1}')
    with pytest.raises(AlignmentError):
        token_spans(['"', REPLACEMENT, 'x"'], '"éy"')


# --- leaf spans --------------------------------------------------------------------------------------------


def test_leaf_spans_name_and_locate_every_value() -> None:
    text = ' {"a": "x\\"y", "b": [ -1.5e3, true, null ], "c": {"d": ""}, "e": [], "f": "\\u00e9"}\n'
    spans = {path: text[lo:hi] for path, lo, hi in leaf_spans(text)}
    assert spans == {"a": 'x\\"y', "b[0]": "-1.5e3", "b[1]": "true", "b[2]": "null",
                     "c.d": "", "f": "\\u00e9"}  # the empty string: the empty span at its closing quote


def test_leaf_paths_are_the_evaluations_names_for_predicted_fields() -> None:
    rng = random.Random(3)
    for _ in range(20):
        value = manifest(products=[{"description": f"d{rng.randint(0, 9)}", "cases": str(rng.randint(0, 99)),
                                    "sales_units": "1", "layers": "2"} for _ in range(rng.randint(1, 4))])
        text = dumps_target(value)
        paths = {path for path, _, _ in leaf_spans(text)}
        fields = align_fields(value, value).fields
        assert {f.pred_where for f in fields} == paths
        assert [path for path, _ in leaves(json.loads(text))] == [path for path, _, _ in leaf_spans(text)]
    text = ' {"a": "x\\"y", "b": [ -1.5e3, true, null ], "c": {"d": ""}, "e": [], "f": {}}'
    assert leaves(json.loads(text)) == [("a", 'x"y'), ("b[0]", -1500.0), ("b[1]", True), ("b[2]", None), ("c.d", "")]
    assert [path for path, _ in leaves(json.loads(text))] == [path for path, _, _ in leaf_spans(text)]


def test_field_confidence_is_the_joint_probability_of_the_value_and_its_end() -> None:
    text = '{"a":"xyz","b":"","c":7}'
    tokens = ['{"', "a", '":"', "xy", "z", '","', "b", '":"', '","', "c", '":', "7", "}"]
    probs = [0.9, 0.9, 0.9, 0.5, 0.8, 0.9, 0.9, 0.9, 0.6, 0.9, 0.9, 0.7, 0.8]
    confidence = field_confidence(tokens, [math.log(p) for p in probs], text)
    # "xy" · "z" · the closing quote's token; the empty string: its closing quote's; 7 · the "}" that ends it
    assert confidence == {"a": pytest.approx(0.5 * 0.8 * 0.9), "b": pytest.approx(0.6), "c": pytest.approx(0.7 * 0.8)}


def test_values_with_the_same_name_are_refused() -> None:
    text = '{"a.b":"x","a":{"b":"y"}}'
    extra = answer_confidence(text, ([text], [0.0]))
    assert extra == {"confidence_error": "ValueError: two values are both named 'a.b'"}


def test_a_token_spelling_quote_and_value_counts_for_the_value() -> None:
    confidence = field_confidence(['{"a":"', 'x"', "}"], [math.log(0.5), math.log(0.4), 0.0], '{"a":"x"}')
    assert confidence == {"a": pytest.approx(0.4)}


def test_answer_confidence_reports_what_it_cannot_do() -> None:
    assert answer_confidence('{"a":1}', None) == {"confidence_error": "the server returned no log-probabilities"}
    bad = answer_confidence('{"a":1}', (['{"b', '":1}'], [0.0, 0.0]))
    assert bad["confidence_error"].startswith("AlignmentError")
    assert answer_confidence('{"a":1}', (["{}"], [0.0, 0.0]))["confidence_error"].startswith("AlignmentError")
    assert answer_confidence('{"a":1,"b":2}', ([], []))["confidence_error"].startswith("AlignmentError")
    assert from_openai({"logprobs": [1]}) is None and from_openai({"logprobs": {"content": [{"t": 1}]}}) is None
    fenced = '```json\n{"a":"v"}\n```'
    ok = answer_confidence(fenced, (pieces(fenced, 2), [math.log(0.9)] * len(pieces(fenced, 2))), fenced=True)
    assert set(ok["confidence"]) == {"a"} and ok["min_confidence_field"] == "a"


# --- through the client ------------------------------------------------------------------------------------


def _logprob_items(text: str, weak: str) -> list[dict]:
    """Tokens of `text` (3 characters each); those inside the value `weak` get probability 0.2."""
    lo = text.index(weak)
    items = []
    for start, token in zip(itertools.count(0, 3), pieces(text)):
        p = 0.2 if lo <= start < lo + len(weak) else 0.99
        items.append({"token": token, "logprob": math.log(p), "bytes": list(token.encode())})
    return items


def test_the_client_asks_for_logprobs_and_writes_field_confidence(tmp_path: Path) -> None:
    image = tmp_path / "img" / "a.jpg"
    image.parent.mkdir()
    Image.new("RGB", (300, 200), "white").save(image)
    value = manifest(salesman="JOHN QUINCY SMITH")
    text = dumps_target(value)
    script = [Action(content=text, logprobs=_logprob_items(text, "JOHN QUINCY SMITH"))]
    with FakeOpenAI(script) as fake:
        result = extract([image], ExtractConfig(server=fake.base_url, out=tmp_path / "p.jsonl", confidence=True,
                                                csv=tmp_path / "p.csv", use_schema=False))
    assert result.ok == 1 and fake.requests[0]["logprobs"] is True
    row = json.loads((tmp_path / "p.jsonl").read_text())
    confidence = row["extra"]["confidence"]
    assert set(confidence) == {path for path, _, _ in leaf_spans(text)}
    assert row["extra"]["min_confidence_field"] == "salesman" and row["extra"]["min_confidence"] < 0.01
    assert confidence["route"] > 0.9
    with open(tmp_path / "p.csv", newline="") as fh:
        csv_row = next(csv.DictReader(fh))
    assert csv_row["min_confidence_field"] == "salesman"


def test_without_the_flag_no_logprobs_are_asked_and_a_server_without_them_is_reported(tmp_path: Path) -> None:
    image = tmp_path / "a.jpg"
    Image.new("RGB", (300, 200), "white").save(image)
    with FakeOpenAI() as fake:
        extract([image], ExtractConfig(server=fake.base_url, out=tmp_path / "plain.jsonl", use_schema=False))
        extract([image], ExtractConfig(server=fake.base_url, out=tmp_path / "asked.jsonl", use_schema=False,
                                       confidence=True))
    assert "logprobs" not in fake.requests[0] and fake.requests[1]["logprobs"] is True
    assert "confidence" not in json.loads((tmp_path / "plain.jsonl").read_text())["extra"]
    asked = json.loads((tmp_path / "asked.jsonl").read_text())
    assert asked["error"] is None and asked["extra"] == {"confidence_error": "the server returned no log-probabilities"}


# --- evaluation --------------------------------------------------------------------------------------------


def test_auroc_matches_counting_pairs() -> None:
    rng = random.Random(0)
    for _ in range(20):
        wrong = [round(rng.random(), 1) for _ in range(rng.randint(1, 8))]
        right = [round(rng.random(), 1) for _ in range(rng.randint(1, 8))]
        pairs = [1.0 if w < r else 0.5 if w == r else 0.0 for w in wrong for r in right]
        assert auroc(wrong, right) == pytest.approx(sum(pairs) / len(pairs))
    assert auroc([], [0.5]) is None


def _image(pred: dict, gold: dict, confidence: dict[str, float] | None) -> SimpleNamespace:
    extra = {"confidence": confidence} if confidence is not None else {}
    return SimpleNamespace(prediction=Prediction(file="x", json=pred, extra=extra), score=score_pair(pred, gold))


def test_summary_counts_flags_by_where_the_value_sits_in_the_prediction() -> None:
    gold = manifest(products=[{"description": "A", "cases": "1", "sales_units": "1", "layers": "1"},
                              {"description": "B", "cases": "2", "sales_units": "2", "layers": "2"}])
    # The rows come back swapped, the second gold row's cases misread and the route wrong.
    pred = manifest(route="WRONG", products=[{"description": "B", "cases": "9", "sales_units": "2", "layers": "2"},
                                              {"description": "A", "cases": "1", "sales_units": "1", "layers": "1"}])
    confidence = {path: 0.99 for path, _, _ in leaf_spans(dumps_target(pred))}
    confidence["route"] = 0.3
    confidence["products[0].cases"] = 0.6  # the misread value, first in the prediction's order
    summary = summarize_confidence([_image(pred, gold, confidence)])
    assert summary is not None and summary.fields == len(confidence) and summary.errors == 2
    assert summary.without_confidence == 0 and summary.missing == 0
    assert summary.auroc == 1.0
    by = {t["threshold"]: t for t in summary.thresholds}
    assert (by[0.5]["flagged"], by[0.5]["errors_caught"]) == (1, 1)
    assert (by[0.9]["flagged"], by[0.9]["errors_caught"], by[0.9]["accuracy_unflagged"]) == (2, 2, 1.0)
    fields = {f["path"]: f for f in summary.per_field}
    assert fields["products[].cases"]["errors"] == 1 and fields["products[].cases"]["mean_confidence_wrong"] == 0.6


def test_summary_is_none_without_confidence_and_counts_answers_that_lack_it() -> None:
    gold = manifest()
    assert summarize_confidence([_image(gold, gold, None)]) is None
    lacking = SimpleNamespace(prediction=Prediction(file="x", json=gold, extra={"confidence_error": "Alignment: x"}),
                              score=score_pair(gold, gold))
    summary = summarize_confidence([lacking])
    assert summary is not None and summary.answers == 0 and summary.answers_without == 1
    assert summary.errors_by_reason == {"Alignment": 1} and summary.auroc is None


def _confidence_case(tmp_path: Path) -> Path:
    """A gold folder of 4 manifests and p.jsonl beside it: two misread routes, flagged at 0.4."""
    data = tmp_path / "data" / "test"
    data.mkdir(parents=True)
    golds = [manifest(route=f"R{i}") for i in range(4)]
    lines, preds = [], []
    for i, gold in enumerate(golds):
        Image.new("RGB", (64, 64), "white").save(data / f"{i}.jpg")
        lines.append(json.dumps({"image": f"{i}.jpg", "prefix": "p", "suffix": dumps_target(gold)}))
        pred = manifest(route=f"R{i}" if i % 2 else "MISREAD")
        confidence = {path: 0.999 for path, _, _ in leaf_spans(dumps_target(pred))}
        confidence["route"] = 0.98 if i % 2 else 0.4
        preds.append(json.dumps({"file": str(data / f"{i}.jpg"), "json": pred, "error": None,
                                 "extra": {"confidence": confidence}}))
    (data / "annotations.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "p.jsonl").write_text("\n".join(preds) + "\n")
    return data


def test_eval_reports_confidence_from_a_predictions_file(tmp_path: Path) -> None:
    data = _confidence_case(tmp_path)
    result = evaluate(tmp_path / "p.jsonl", data, tmp_path / "report", EvalConfig(schema=None))
    assert result.confidence is not None and result.confidence.errors == 2 and result.confidence.auroc == 1.0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["confidence"]["thresholds"][0] == {
        "threshold": 0.5, "flagged": 2, "flagged_share": round(2 / result.confidence.fields, 4), "errors_caught": 2,
        "error_recall": 1.0, "flagged_precision": 1.0, "accuracy_unflagged": 1.0}
    assert "## Field confidence" in (tmp_path / "report" / "report.md").read_text()
    page = (tmp_path / "report" / "report.html").read_text()
    assert "<h2>Field confidence</h2>" in page and "<td class=\"num\">0.400</td>" in page


def test_compare_puts_both_sides_confidence_side_by_side(tmp_path: Path) -> None:
    from vlmocr.eval.compare import compare

    data = _confidence_case(tmp_path)
    plain = tmp_path / "plain.jsonl"  # the same answers without confidence
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    plain.write_text("".join(json.dumps({**row, "extra": {}}) + "\n" for row in rows))
    result = compare(plain, tmp_path / "p.jsonl", data, tmp_path / "cmp", EvalConfig(schema=None))
    assert result.a.confidence is None and result.b.confidence is not None
    report = json.loads((tmp_path / "cmp" / "report.json").read_text())
    assert report["confidence"]["before"] is None and report["confidence"]["after"]["auroc"] == 1.0
    md = (tmp_path / "cmp" / "report.md").read_text()
    assert "## Field confidence" in md and "| AUROC (0.5 = chance) | — | 1.000 |" in md
    assert "| errors caught below 0.9 | — | 100.0% |" in md
    page = (tmp_path / "cmp" / "report.html").read_text()
    assert "<h2>Field confidence</h2>" in page and "p 0.400" in page  # the misread route's cell
    # neither side with confidence: no section
    compare(plain, plain, data, tmp_path / "cmp2", EvalConfig(schema=None))
    assert "Field confidence" not in (tmp_path / "cmp2" / "report.md").read_text()
    # the console shows the same rows
    from typer.testing import CliRunner

    from vlmocr.cli.app import app

    res = CliRunner().invoke(app, ["eval", "--compare", str(plain), str(tmp_path / "p.jsonl"), "--gold", str(data),
                                   "--out", str(tmp_path / "cmp3"), "--no-schema"], terminal_width=200)
    assert res.exit_code == 0, res.output
    line = next(line for line in res.output.splitlines() if "AUROC" in line)
    assert "—" in line and "1.000" in line
    res = CliRunner().invoke(app, ["eval", "--compare", str(plain), str(plain), "--gold", str(data),
                                   "--out", str(tmp_path / "cmp4"), "--no-schema"], terminal_width=200)
    assert res.exit_code == 0 and "AUROC" not in res.output


def test_the_review_curve_counts_errors_among_the_least_confident_fields() -> None:
    gold = manifest()
    pred = manifest(route="X", dock="Y")
    confidence = {path: 0.5 + i / 100 for i, (path, _, _) in enumerate(leaf_spans(dumps_target(pred)))}
    confidence["route"], confidence["dock"] = 0.01, 0.99  # one error first in line, the other last
    summary = summarize_confidence([_image(pred, gold, confidence)])
    assert summary is not None and summary.fields == len(confidence)
    curve = summary.to_dict()["review_curve"]
    assert len(curve["shares"]) == len(curve["error_recall"]) == 100 and curve["shares"][-1] == 1.0
    first = math.ceil(len(confidence) / 100)  # 1 % of the fields, rounded up: the least confident one
    assert first == 1 and curve["error_recall"][0] == 0.5 and curve["error_recall"][-1] == 1.0
    assert curve["error_recall"] == sorted(curve["error_recall"])
    assert summary.review[0]["error_recall"] == 0.5


def test_ties_at_the_cut_count_their_errors_in_proportion() -> None:
    gold = manifest()
    pred = manifest(route="X")  # one error among 10 fields of equal confidence, the rest more confident
    paths = [path for path, _, _ in leaf_spans(dumps_target(pred))]
    tied = ["route", *[p for p in paths if p != "route"][:9]]
    confidence = {path: (0.5 if path in tied else 0.99) for path in paths}
    summary = summarize_confidence([_image(pred, gold, confidence)])
    assert summary is not None
    n = summary.fields
    for row in summary.review:  # the cut takes k of the 10 tied fields: k/10 of their one error, on average
        k = row["fields"]
        assert row["errors_caught"] == pytest.approx(min(k, 10) / 10, abs=0.005), (n, row)


def test_csv_puts_the_confidence_columns_first_whichever_row_comes_first(tmp_path: Path) -> None:
    from vlmocr.client.output import write_csv

    rows = [{"file": "a.jpg", "json": {"x": "1"}, "error": None, "extra": {"confidence_error": "no logprobs"}},
            {"file": "b.jpg", "json": {"x": "2"}, "error": None,
             "extra": {"confidence": {"x": 0.4}, "min_confidence": 0.4, "min_confidence_field": "x"}}]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_csv(tmp_path / "p.jsonl", tmp_path / "p.csv")
    with open(tmp_path / "p.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert header[-3:] == ["min_confidence", "min_confidence_field", "x"]


# --- the review queue --------------------------------------------------------------------------------------


def test_review_lists_the_values_below_the_threshold_and_the_answers_to_check_whole(tmp_path: Path) -> None:
    from vlmocr.client.review import REVIEW_COLUMNS

    folder = tmp_path / "img"
    folder.mkdir()
    images = [folder / f"{name}.jpg" for name in ("a", "b", "c", "d")]
    for image in images:
        Image.new("RGB", (300, 200), "white").save(image)
    weak = manifest(salesman="JOHN QUINCY SMITH")
    text = dumps_target(weak)
    sure = [{**item, "logprob": math.log(0.999)} for item in _logprob_items(text, "JOHN QUINCY SMITH")]
    script = [Action(content=text, logprobs=_logprob_items(text, "JOHN QUINCY SMITH")),  # salesman at 0.2^6
              Action(content=text, logprobs=sure),  # every value sure: nothing to review
              Action(content=text),  # no log-probabilities: the whole answer
              Action(content="not json at all")]  # no answer
    config = ExtractConfig(out=tmp_path / "p.jsonl", confidence=True, use_schema=False, concurrency=1,
                           max_retries=0, review=tmp_path / "review.csv")
    with FakeOpenAI(script) as fake:
        result = extract(images, dataclasses.replace(config, server=fake.base_url))
    assert result.review is not None and result.review.answers == 4
    with open(tmp_path / "review.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == REVIEW_COLUMNS
    by_file = {Path(r["file"]).name: r for r in rows}
    assert set(by_file) == {"a.jpg", "c.jpg", "d.jpg"}  # b.jpg: every value at or above 0.9
    assert by_file["a.jpg"]["field"] == "salesman" and by_file["a.jpg"]["value"] == "JOHN QUINCY SMITH"
    assert float(by_file["a.jpg"]["confidence"]) < 0.01 and by_file["a.jpg"]["reason"] == "below 0.9"
    assert by_file["c.jpg"]["field"] == "" and by_file["c.jpg"]["reason"].startswith("no confidence: the server")
    assert by_file["d.jpg"]["reason"].startswith("no answer: ")
    assert (result.review.fields, result.review.unscored, result.review.answers_with_fields,
            result.review.whole) == (1, 0, 1, 2)
    assert [Path(r["file"]).name for r in rows] == ["a.jpg", "c.jpg", "d.jpg"]  # in path order

    # a stricter threshold flags the sure answer's values too; rebuilt from the file, nothing asked again
    from vlmocr.client.review import write_review

    summary = write_review(tmp_path / "p.jsonl", tmp_path / "strict.csv", below=0.9999)
    assert summary.answers_with_fields == 2 and summary.fields > 1


def test_review_needs_confidence_and_its_own_file(tmp_path: Path) -> None:
    from vlmocr.errors import ConfigError

    with pytest.raises(ConfigError, match="needs --confidence"):
        ExtractConfig(out=tmp_path / "p.jsonl", review=tmp_path / "r.csv")
    with pytest.raises(ConfigError, match="review-below"):
        ExtractConfig(out=tmp_path / "p.jsonl", confidence=True, review=tmp_path / "r.csv", review_below=0.0)
    with pytest.raises(ConfigError, match="must differ"):
        ExtractConfig(out=tmp_path / "p.jsonl", confidence=True, review=tmp_path / "p.jsonl")
    with pytest.raises(ConfigError, match="must differ"):
        ExtractConfig(out=tmp_path / "p.jsonl", csv=tmp_path / "x.csv", confidence=True, review=tmp_path / "x.csv")
    with pytest.raises(ConfigError, match="is a folder"):
        ExtractConfig(out=tmp_path / "p.jsonl", confidence=True, review=tmp_path)
    from typer.testing import CliRunner

    from vlmocr.cli.app import app

    res = CliRunner().invoke(app, ["extract", str(tmp_path), "--server", "http://127.0.0.1:9", "--review-below", "0.8",
                                   "--out", str(tmp_path / "p.jsonl")])
    assert res.exit_code == 2 and "--review-below sets the threshold of --review" in res.output


def test_review_rows_read_probabilities_as_the_evaluation_does_and_name_a_bare_value_root(tmp_path: Path) -> None:
    from vlmocr.client.review import review_rows, write_review

    odd = {"file": "a.jpg", "json": {"a": "x", "b": "y", "c": "z", "d": "w", "e": 1},
           "extra": {"confidence": {"a": float("nan"), "b": True, "c": 7, "d": 0.95}}}  # e: absent
    rows = review_rows(odd, 0.9)
    assert [(r["field"], r["reason"]) for r in rows] == [
        ("a", "value without a confidence"), ("b", "value without a confidence"),
        ("c", "value without a confidence"), ("e", "value without a confidence")]
    assert rows[-1]["value"] == "1"
    bare = {"file": "b.jpg", "json": 5, "extra": {"confidence": {"": 0.2}}}
    assert review_rows(bare) == [{"file": "b.jpg", "field": "(root)", "value": "5", "confidence": 0.2,
                                  "reason": "below 0.9"}]
    top = {"file": "c.jpg", "json": {"a": "x"}, "confidence": {"a": 0.5}}  # another tool's row: map at the top
    assert review_rows(top)[0]["confidence"] == 0.5

    # the queue: PDF pages by number, counts by kind, the predictions file never overwritten
    pages = [{"file": f"/d/doc.pdf#page={n}", "json": {"a": "x"}, "extra": {"confidence": {"a": 0.1}}}
             for n in (10, 2, 1)]
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps(r) + "\n" for r in [odd, bare, *pages]))
    summary = write_review(preds, tmp_path / "r.csv")
    with open(tmp_path / "r.csv", newline="") as fh:
        files = [r["file"] for r in csv.DictReader(fh)]
    assert [f for f in files if "doc.pdf" in f] == ["/d/doc.pdf#page=1", "/d/doc.pdf#page=2", "/d/doc.pdf#page=10"]
    assert (summary.fields, summary.unscored, summary.answers_with_fields, summary.whole) == (4, 4, 5, 0)
    from vlmocr.errors import ConfigError

    before = preds.read_text()
    with pytest.raises(ConfigError, match="differ"):
        write_review(preds, tmp_path / "." / "p.jsonl")
    with pytest.raises(ConfigError, match="review-below"):
        write_review(preds, tmp_path / "r.csv", below=-5)
    assert preds.read_text() == before
