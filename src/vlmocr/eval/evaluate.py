"""`vlmocr eval`: score predictions.jsonl against a Roboflow gold folder and write reports.

Reading is validated at the edge: prediction lines that are not JSON objects with a
string `file` become line-numbered skips, gold lines are read with the data stage's
reader. Predictions are matched to gold images by resolved absolute path, then by the
path relative to the split folder (or dataset folder), then by a unique basename.
Gold images without a prediction are scored as missing predictions; predictions without
gold are reported, not scored; a second prediction for the same image is reported as
a duplicate and ignored.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmocr.errors import DatasetError, EvaluationError
from vlmocr.eval.confidence import ConfidenceSummary, summarize_confidence
from vlmocr.eval.metrics import EvalSummary, PairScore, ScoreConfig, score_pair, summarize_scores
from vlmocr.eval.normalize import NormalizeConfig
from vlmocr.records import Prediction, Record, Skip, row_extra
from vlmocr.schema import manifest_schema

log = logging.getLogger(__name__)

# Answers nested deeper than this are scored as unusable ("too_deep") before any recursive walk: a
# manifest is 3 levels deep, and the result must not depend on the process's recursion limit (torch's
# inductor raises it for the whole process once something is compiled).
MAX_ANSWER_DEPTH = 100


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether lists/objects in `value` nest more than `limit` levels (iterative, stops early)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


@dataclass(frozen=True)
class EvalConfig:
    """Everything `evaluate` needs besides the files.

    `schema` defaults to the pallet manifest schema; None skips schema validity.
    """

    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    schema: dict[str, Any] | None = field(default_factory=manifest_schema)
    row_threshold: float = 0.5
    bootstrap: int = 0
    seed: int = 0
    max_images: int = 50  # per-image sections in report.html / report.md (report.json has all)
    thumbnail_px: int = 320
    pred_root: Path | None = None  # base of relative prediction paths (default: the cwd)
    overwrite: bool = False

    def score_config(self) -> ScoreConfig:
        return ScoreConfig(normalize=self.normalize, schema=self.schema, row_threshold=self.row_threshold)

    def to_dict(self) -> dict[str, Any]:
        return {
            "normalize": self.normalize.to_dict(), "schema": self.schema is not None,
            "row_threshold": self.row_threshold, "bootstrap": self.bootstrap, "seed": self.seed,
            "max_images": self.max_images,
        }


@dataclass(frozen=True)
class ImageResult:
    """One gold image: its record, the matched prediction (None if missing) and its scores."""

    record: Record
    prediction: Prediction | None
    score: PairScore

    @property
    def key(self) -> str:
        return f"{self.record.split}/{self.record.image}"

    def to_dict(self) -> dict[str, Any]:
        s = self.score.to_dict()
        s["fields"] = [f for f in s["fields"] if f["status"] != "correct"]  # differences only
        p = self.prediction
        return {
            "image": self.key, "path": str(self.record.image_path),
            "prediction_file": p.file if p else None,
            "raw": p.raw if p is not None and not self.score.json_valid else None,
            **s,
        }


@dataclass
class MatchReport:
    """How predictions met gold images."""

    pairs: list[tuple[Record, Prediction]] = field(default_factory=list)
    missing: list[Record] = field(default_factory=list)
    unmatched: list[Prediction] = field(default_factory=list)
    duplicates: list[Prediction] = field(default_factory=list)
    how: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {
            "matched": len(self.pairs), "by": dict(self.how),
            "missing_predictions": [f"{r.split}/{r.image}" for r in self.missing],
            "predictions_without_gold": [p.file for p in self.unmatched],
            "duplicate_predictions": [p.file for p in self.duplicates],
        }


@dataclass(frozen=True)
class EvalResult:
    """The scored evaluation: summary, per-image results (worst first), inputs' problems."""

    predictions: Path
    gold: Path
    summary: EvalSummary
    images: list[ImageResult]
    match: MatchReport
    skips: list[Skip]
    config: EvalConfig
    files: dict[str, Path] = field(default_factory=dict)
    #: How field confidence (`vlmocr extract --confidence`) lines up with being right; None without it.
    confidence: ConfidenceSummary | None = None


def load_predictions(path: Path) -> tuple[list[Prediction], list[Skip]]:
    """Read predictions.jsonl; bad lines become skips. Raises if none is usable."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"{path}: predictions file not found")
    predictions: list[Prediction] = []
    skips: list[Skip] = []
    with path.open("rb") as fh:
        for number, raw_line in enumerate(fh, start=1):
            if not raw_line.strip():
                continue
            try:
                obj = json.loads(raw_line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
                skips.append(Skip(path.name, number, f"not valid JSON ({str(exc)[:200]})"))
                continue
            if not isinstance(obj, dict) or not isinstance(obj.get("file"), str) or not obj["file"]:
                skips.append(Skip(path.name, number, "expected an object with a string 'file'"))
                continue
            error = obj.get("error")
            predictions.append(Prediction(
                file=obj["file"], json=obj.get("json"),
                error=str(error) if error is not None else None,
                raw=obj.get("raw") if isinstance(obj.get("raw"), str) else None,
                attempts=int(obj.get("attempts") or 0) if isinstance(obj.get("attempts"), int) else 0,
                prompt_tokens=obj.get("prompt_tokens") if isinstance(obj.get("prompt_tokens"), int) else None,
                completion_tokens=obj.get("completion_tokens")
                if isinstance(obj.get("completion_tokens"), int) else None,
                latency_s=float(obj["latency_s"]) if isinstance(obj.get("latency_s"), (int, float)) else None,
                finish_reason=obj.get("finish_reason") if isinstance(obj.get("finish_reason"), str) else None,
                extra=row_extra(obj),
            ))
    if not predictions:
        first = f" (first problem: {skips[0]})" if skips else ""
        raise EvaluationError(f"{path}: no usable prediction lines{first}")
    return predictions, skips


def load_gold(path: Path) -> tuple[list[Record], list[Skip]]:
    """Gold records of a dataset folder (all splits present) or of one split folder."""
    from vlmocr.data.roboflow import ANNOTATIONS, check_dataset, read_split

    path = Path(path)
    try:
        if (path / ANNOTATIONS).is_file():
            report = read_split(path.parent, path.name, verify_images=False)
            records, skips = report.records, report.skips
        else:
            dataset = check_dataset(path, verify_images=False)
            records, skips = dataset.records, dataset.skips
    except DatasetError as exc:
        raise EvaluationError(f"gold: {exc}") from exc
    if not records:
        first = f" (first problem: {skips[0]})" if skips else ""
        raise EvaluationError(f"{path}: no usable gold records{first}")
    return records, skips


def _posix(name: str) -> str:
    name = name.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def match_predictions(
    predictions: Sequence[Prediction], records: Sequence[Record], *, base: Path | None = None
) -> MatchReport:
    """Pair predictions with gold records (absolute path → relative path → unique basename)."""
    base = Path(base).resolve() if base is not None else Path.cwd()
    by_abs = {str(r.image_path): r for r in records}  # the reader resolved them already
    by_rel: dict[str, list[Record]] = {}
    by_name: dict[str, list[Record]] = {}
    for r in records:
        by_rel.setdefault(_posix(r.image), []).append(r)
        by_rel.setdefault(f"{r.split}/{_posix(r.image)}", []).append(r)
        by_name.setdefault(os.path.basename(_posix(r.image)), []).append(r)
    report = MatchReport()
    taken: dict[int, Prediction] = {}
    for p in predictions:
        name = _posix(p.file)
        record, how = None, ""
        candidate = p.file if os.path.isabs(p.file) else os.path.join(base, p.file)
        record, how = by_abs.get(os.path.normpath(candidate)), "absolute path"
        if record is None:  # symlinks or ".." through links: ask the file system
            try:
                record = by_abs.get(str(Path(candidate).resolve()))
            except (OSError, RuntimeError, ValueError):
                record = None
        if record is None and len(by_rel.get(name, ())) == 1:
            record, how = by_rel[name][0], "relative path"
        if record is None and len(by_name.get(os.path.basename(name), ())) == 1:
            record, how = by_name[os.path.basename(name)][0], "basename"
        if record is None:
            report.unmatched.append(p)
        elif id(record) in taken:
            report.duplicates.append(p)
        else:
            taken[id(record)] = p
            report.pairs.append((record, p))
            report.how[how] += 1
    report.missing = [r for r in records if id(r) not in taken]
    return report


def _error_kind(prediction: Prediction | None) -> str | None:
    if prediction is None:
        return "missing"
    if prediction.error:
        return prediction.error.split(":", 1)[0].strip() or "error"
    return None


def score_images(match: MatchReport, config: EvalConfig) -> list[ImageResult]:
    """Score every gold image (missing predictions as empty answers), worst first."""
    score_config = config.score_config()
    results = []
    for record, prediction in [*match.pairs, *((r, None) for r in match.missing)]:
        pred_json = prediction.json if prediction is not None else None
        if _deeper_than(pred_json, MAX_ANSWER_DEPTH):
            log.warning("%s: answer nested more than %d levels deep; counted as invalid", record.image,
                        MAX_ANSWER_DEPTH)
            score = score_pair(None, record.target, config=score_config, error="too_deep")
        else:
            score = score_pair(pred_json, record.target, raw_valid=pred_json is not None,
                               config=score_config, error=_error_kind(prediction))
        results.append(ImageResult(record, prediction, score))
    results.sort(key=lambda r: (r.score.ted_accuracy, r.score.field_f1, r.key))
    return results


def evaluate(
    predictions: Path, gold: Path, out: Path | None = None, config: EvalConfig | None = None
) -> EvalResult:
    """Score `predictions` against `gold`; write report.json/md/html to `out` if given."""
    config = config or EvalConfig()
    preds, pred_skips = load_predictions(predictions)
    records, gold_skips = load_gold(gold)
    match = match_predictions(preds, records, base=config.pred_root)
    if not match.pairs:
        raise EvaluationError(
            f"none of the {len(preds)} predictions in {predictions} matches a gold image in {gold} "
            f"(first prediction: {preds[0].file!r}; first gold image: {records[0].image!r}). "
            "Are they from the same dataset? Relative paths are resolved from --pred-root "
            "(default: the current folder)."
        )
    for what, items in (("gold images without a prediction", match.missing),
                        ("predictions without gold", match.unmatched),
                        ("duplicate predictions", match.duplicates)):
        if items:
            log.warning("%d %s", len(items), what)
    images = score_images(match, config)
    summary = summarize_scores([i.score for i in images], bootstrap=config.bootstrap, seed=config.seed)
    result = EvalResult(Path(predictions), Path(gold), summary, images, match,
                        [*pred_skips, *gold_skips], config, confidence=summarize_confidence(images))
    if out is not None:
        from vlmocr.eval.report import write_report

        result = write_report(result, Path(out))
    return result
