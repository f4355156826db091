"""predictions.jsonl: written as results arrive, resumed, compacted, flattened to CSV.

One row per image with the keys of `vlmocr.records.Prediction` (file, json, error, raw,
attempts, prompt_tokens, completion_tokens, latency_s, finish_reason, extra). Each row is
appended and flushed as soon as its result is known, so an interrupted run keeps
everything it finished. A rerun reads the file and skips images whose row is *final*:
a valid result, or a failure that asking again would repeat (a content error, an
unreadable image, a request the server rejected as invalid). Transient failures (server
down, timeouts, 429/5xx after all retries) and auth errors are tried again.

After a run that added rows for images already in the file, or that found lines cut
off by an interruption, the file is compacted (atomically): the last row per image wins.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from vlmocr.client.answers import CONTENT_ERRORS, error_kind
from vlmocr.errors import ConfigError
from vlmocr.fileio import atomic_write_text
from vlmocr.records import Prediction

#: Failures that would repeat if asked again: a rerun skips them.
FINAL_ERRORS = CONTENT_ERRORS | {"image_error", "request_rejected", "bad_response"}
#: Columns of the CSV before the flattened JSON fields.
CSV_COLUMNS = ("file", "error", "attempts", "latency_s", "prompt_tokens", "completion_tokens", "finish_reason")
#: With --confidence, after those: the probability of the answer's least likely field, and which one it is.
CONFIDENCE_COLUMNS = ("min_confidence", "min_confidence_field")


def file_key(file: str) -> str:
    """The identity of an image across runs: its absolute path."""
    return os.path.abspath(file)


def is_final(row: dict[str, Any]) -> bool:
    """True if rerunning this image would not change its row."""
    if row.get("error") is None:
        return row.get("json") is not None
    return error_kind(row["error"]) in FINAL_ERRORS


@dataclass
class ExistingOutput:
    """What an earlier run left in the output file."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    bad_lines: list[int] = field(default_factory=list)
    total_lines: int = 0
    ends_without_newline: bool = False

    def final_keys(self) -> set[str]:
        return {key for key, row in self.rows.items() if is_final(row)}


def read_output(path: Path) -> ExistingOutput:
    """Rows of an existing predictions.jsonl (last row per image wins); bad lines by number."""
    found = ExistingOutput()
    if not path.exists():
        return found
    data = path.read_bytes()
    found.ends_without_newline = bool(data) and not data.endswith(b"\n")
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        if not line.strip():
            continue
        found.total_lines += 1
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("file"), str):
                raise ValueError("not a prediction row")
        except ValueError:
            found.bad_lines.append(number)
            continue
        found.rows[file_key(row["file"])] = row
    return found


def prediction_row(prediction: Prediction) -> dict[str, Any]:
    return asdict(prediction)


class PredictionWriter:
    """Appends one JSON line per prediction and flushes it at once."""

    def __init__(self, path: Path, *, ends_without_newline: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        if ends_without_newline:  # an interrupted write: keep it on its own (bad) line
            self._fh.write("\n")
        self.written = 0

    def write(self, prediction: Prediction) -> None:
        row = prediction_row(prediction)
        line = json.dumps(row, ensure_ascii=False)
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate slipped through: escape rather than crash
            line = json.dumps(row, ensure_ascii=True)
        self._fh.write(line + "\n")
        self._fh.flush()
        self.written += 1

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def compact(path: Path) -> int:
    """Rewrite `path` with the last row per image (first-seen order); return lines dropped."""
    found = read_output(path)
    if found.total_lines == len(found.rows) and not found.bad_lines:
        return 0
    order: dict[str, None] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            order.setdefault(file_key(json.loads(line)["file"]), None)
        except (ValueError, KeyError, TypeError):
            continue
    text = "".join(json.dumps(found.rows[key], ensure_ascii=False) + "\n" for key in order)
    atomic_write_text(path, text)
    return found.total_lines - len(found.rows)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested JSON → {"a.b.0.c": leaf}; a top-level scalar or list goes under 'json'."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}{key}."))
        return flat
    if isinstance(value, list):
        flat = {}
        for index, item in enumerate(value):
            flat.update(flatten(item, f"{prefix}{index}."))
        return flat if value else {prefix.rstrip(".") or "json": ""}
    return {prefix.rstrip(".") or "json": "" if value is None else value}


def write_csv(jsonl: Path, csv_path: Path, rows: Iterable[dict[str, Any]] | None = None) -> int:
    """Flatten every row of `jsonl` into `csv_path` (atomically); return the rows written.
    `rows`: those rows already read (`read_output(jsonl).rows.values()`), so the file is not read again."""
    if csv_path.resolve() == jsonl.resolve():
        raise ConfigError("--csv must differ from --out")
    flat_rows = []
    columns: dict[str, None] = {}
    confidence = False
    for row in read_output(jsonl).rows.values() if rows is None else rows:
        flat = {name: row.get(name) for name in CSV_COLUMNS}
        extra = row.get("extra") if isinstance(row.get("extra"), dict) else {}
        for name in CONFIDENCE_COLUMNS:  # written by --confidence: the weakest field, for review queues
            if name in extra:
                confidence = True
                flat[name] = extra[name]
        if row.get("json") is not None:
            for key, value in flatten(row["json"]).items():
                key = f"json.{key}" if key in CSV_COLUMNS or key in CONFIDENCE_COLUMNS else key
                columns.setdefault(key, None)
                flat[key] = value
        flat_rows.append(flat)
    buf = io.StringIO()
    fieldnames = [*CSV_COLUMNS, *(CONFIDENCE_COLUMNS if confidence else ()), *columns]
    writer = csv.DictWriter(buf, fieldnames=fieldnames, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat_rows)
    atomic_write_text(csv_path, buf.getvalue())
    return len(flat_rows)
