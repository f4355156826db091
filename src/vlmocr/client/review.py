"""A review queue from `extract --confidence`: the values a person should check, one CSV row each.

`vlmocr extract ... --confidence --review review.csv [--review-below 0.9]` writes, after the run,
every value whose confidence is below the threshold (file, field, value, confidence), every value
the answer's confidence map lacks or holds no probability for, and every answer to check whole:
one that failed (no JSON), or one without a confidence (the server sent no log-probabilities, the
tokens could not be matched to the answer). It is rebuilt from the whole predictions file each
time, so a resumed run's queue covers the images of earlier runs too. On the built-in model's
trained layouts, values below 0.9 were 9.5 % of all and held 97.1 % of the wrong ones (README,
"Field confidence").
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmocr.client.output import file_key, read_output
from vlmocr.errors import ConfigError, ExtractionError
from vlmocr.fields import leaves
from vlmocr.fileio import atomic_write_text
from vlmocr.pdf import parse_page_ref
from vlmocr.records import answer_confidence_map, row_extra

REVIEW_COLUMNS = ("file", "field", "value", "confidence", "reason")
DEFAULT_REVIEW_BELOW = 0.9
#: The `field` of an answer that is a single value (`--no-schema`), whose name in the confidence map is ''.
ROOT = "(root)"

BELOW, UNSCORED, WHOLE = "below", "unscored", "whole"


@dataclass(frozen=True)
class ReviewSummary:
    """What the review queue holds."""

    path: Path
    below: float
    answers: int  # answers read from the predictions file
    fields: int  # values below the threshold
    unscored: int  # values of answers with a confidence map that hold no probability for them
    answers_with_fields: int  # answers with at least one value below the threshold or unscored
    whole: int  # answers to check whole: failed, or without a confidence


def check_below(below: float) -> None:
    if not (isinstance(below, (int, float)) and 0.0 < below <= 1.0):
        raise ConfigError(f"--review-below must be in (0, 1], got {below}")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _kinded_rows(row: dict[str, Any], below: float) -> list[tuple[str, dict[str, Any]]]:
    file = row.get("file", "")
    if row.get("json") is None:
        return [(WHOLE, {"file": file, "field": "", "value": "", "confidence": "",
                         "reason": f"no answer: {row.get('error') or 'not answered'}"})]
    extra = row_extra(row)  # read as `vlmocr eval` reads it: `extract` writes under `extra`, other tools may not
    confidence = answer_confidence_map(extra)
    if confidence is None:
        why = extra.get("confidence_error") or "extracted without --confidence"
        return [(WHOLE, {"file": file, "field": "", "value": "", "confidence": "", "reason": f"no confidence: {why}"})]
    out = []
    for path, value in leaves(row["json"]):
        shown = {"file": file, "field": path or ROOT, "value": _text(value)}
        prob = confidence.get(path)
        if prob is None:
            out.append((UNSCORED, shown | {"confidence": "", "reason": "value without a confidence"}))
        elif prob < below:
            out.append((BELOW, shown | {"confidence": round(prob, 4), "reason": f"below {below:g}"}))
    return out


def review_rows(row: dict[str, Any], below: float = DEFAULT_REVIEW_BELOW) -> list[dict[str, Any]]:
    """The review rows of one predictions row (none when every value is at or above `below`)."""
    return [shown for _, shown in _kinded_rows(row, below)]


def _order(row: dict[str, Any]) -> tuple[str, int]:
    """Files by absolute path, a PDF's pages by number (page 2 before page 10)."""
    name = str(row.get("file", ""))
    page = parse_page_ref(name)
    return (file_key(str(page[0])), page[1]) if page is not None else (file_key(name), 0)


def write_review(jsonl: Path, review_path: Path, below: float = DEFAULT_REVIEW_BELOW,
                 rows: Iterable[dict[str, Any]] | None = None) -> ReviewSummary:
    """Write the review queue of every row of `jsonl` to `review_path` (atomically); files in path order.
    `rows`: those rows already read (`read_output(jsonl).rows.values()`), so the file is not read again."""
    check_below(below)
    jsonl, review_path = Path(jsonl), Path(review_path)
    if os.path.abspath(review_path) == os.path.abspath(jsonl) or (
            review_path.exists() and jsonl.exists() and os.path.samefile(review_path, jsonl)):
        raise ConfigError("the review file must differ from the predictions file")
    rows = sorted(read_output(jsonl).rows.values() if rows is None else rows, key=_order)
    queue: list[dict[str, Any]] = []
    counts = {BELOW: 0, UNSCORED: 0}
    with_fields = whole = 0
    for row in rows:
        found = _kinded_rows(row, below)
        queue += [shown for _, shown in found]
        kinds = [kind for kind, _ in found]
        for kind in (BELOW, UNSCORED):
            counts[kind] += kinds.count(kind)
        with_fields += any(kind != WHOLE for kind in kinds)
        whole += WHOLE in kinds
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=REVIEW_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(queue)
    try:
        atomic_write_text(review_path, buf.getvalue())
    except OSError as exc:
        raise ExtractionError(f"cannot write the review queue {review_path}: {exc} "
                              f"(the predictions in {jsonl} are kept)") from exc
    return ReviewSummary(review_path, below, len(rows), counts[BELOW], counts[UNSCORED], with_fields, whole)
