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
