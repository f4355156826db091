"""Frozen records shared by every stage (the only thing stages pass to each other)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Record:
    """One validated Roboflow annotation: an image and its JSON target.

    `suffix` is kept verbatim (the exact string in the file) so converters can
    reproduce it byte for byte; `target` is its parsed JSON.
    """

    split: str
    line: int
    image: str
    image_path: Path
    prefix: str
    suffix: str
    target: Any
    doc_id: str | None = None


@dataclass(frozen=True)
class Skip:
    """A line or file that was not used, with where and why."""

    file: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class Prediction:
    """One model answer for one image, as written to predictions.jsonl."""

    file: str
    json: Any = None
    error: str | None = None
    raw: str | None = None
    attempts: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    finish_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and self.json is not None


#: The keys of a predictions.jsonl row that are `Prediction` fields of their own (besides `file`, `extra`).
PREDICTION_KEYS = ("json", "error", "raw", "attempts", "prompt_tokens", "completion_tokens", "latency_s",
                   "finish_reason")


def row_extra(obj: dict[str, Any]) -> dict[str, Any]:
    """A predictions row's `extra` object (what `vlmocr extract` writes there) and any keys of other writers."""
    nested = obj.get("extra")
    out = {k: v for k, v in obj.items()
           if k not in PREDICTION_KEYS and k != "file" and not (k == "extra" and isinstance(v, dict))}
    if isinstance(nested, dict):
        out.update({k: v for k, v in nested.items() if k not in out})
    return out


def answer_confidence_map(extra: dict[str, Any]) -> dict[str, float] | None:
    """The `confidence` map of a prediction's extra (`extract --confidence`), None if absent or malformed;
    entries that are not a probability (a number in [0, 1]: not a bool, not NaN) are left out."""
    value = extra.get("confidence")
    if not isinstance(value, dict):
        return None
    out = {}
    for key, prob in value.items():
        if isinstance(prob, (int, float)) and not isinstance(prob, bool) and 0.0 <= prob <= 1.0:
            out[str(key)] = float(prob)
    return out
