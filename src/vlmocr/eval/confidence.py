"""Does the model know when it is wrong? Scoring `vlmocr extract --confidence` against gold.

Every predicted field of a scored answer (correct, wrong, or hallucinated where gold has
none) is looked up in its answer's `confidence` map by where it sits in the prediction
(`FieldResult.pred_where`). The question a user asks of it is how to route fields to a
person: flag every field below a threshold, or review the least confident share. So the
summary gives, per threshold, how many fields are flagged and how many of the wrong ones
they catch; per review share, the errors caught; the ranking quality as AUROC (the chance
that a wrong field has lower confidence than a right one; 0.5 is no better than chance);
and calibration (accuracy against mean confidence in bins, and their weighted gap, ECE).

Fields the answer left out (missing) have no confidence, so no threshold can flag them;
they are counted apart.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vlmocr.eval.align import CORRECT, HALLUCINATED, MISSING, WRONG
from vlmocr.records import answer_confidence_map

THRESHOLDS: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95, 0.99)
REVIEW_SHARES: tuple[float, ...] = (0.05, 0.1, 0.2)
BIN_EDGES: tuple[float, ...] = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99, 1.0)
#: The threshold the per-field table and the summaries single out (one of THRESHOLDS).
FLAG_AT = 0.9


def auroc(scores_wrong: Sequence[float], scores_right: Sequence[float]) -> float | None:
    """P(a wrong field's confidence < a right one's), ties counted half (Mann-Whitney U / n1 n2)."""
    if not scores_wrong or not scores_right:
        return None
    from scipy.stats import rankdata

    ranks = rankdata([*scores_wrong, *scores_right])
    n_wrong, n_right = len(scores_wrong), len(scores_right)
    u_right = float(sum(ranks[n_wrong:])) - n_right * (n_right + 1) / 2  # right fields ranked above wrong ones
    return u_right / (n_wrong * n_right)


@dataclass(frozen=True)
class ConfidenceSummary:
    """How the confidence of predicted fields lines up with their being right."""

    answers: int  # scored answers that carry a confidence map
    answers_without: int  # scored, accepted answers without one (e.g. a confidence_error)
    fields: int  # predicted fields with a confidence
    errors: int  # of them wrong or hallucinated
    without_confidence: int  # predicted fields of those answers not in their map
    missing: int  # gold fields those answers left out (cannot be flagged)
    auroc: float | None
    ece: float | None
    thresholds: list[dict[str, Any]] = field(default_factory=list)
    review: list[dict[str, Any]] = field(default_factory=list)
    bins: list[dict[str, Any]] = field(default_factory=list)
    per_field: list[dict[str, Any]] = field(default_factory=list)
    errors_by_reason: dict[str, int] = field(default_factory=dict)
    #: Share of all errors among the least confident 1 %, 2 % ... 100 % of the fields (a review curve).
    curve: list[float] = field(default_factory=list)

    @property
    def accuracy(self) -> float | None:
        return (self.fields - self.errors) / self.fields if self.fields else None

    def to_dict(self) -> dict[str, Any]:
        def r(value: float | None) -> float | None:
            return None if value is None else round(value, 4)

        return {
            "answers": self.answers, "answers_without_confidence": self.answers_without,
            "fields": self.fields, "errors": self.errors, "accuracy": r(self.accuracy),
            "fields_without_confidence": self.without_confidence, "missing_fields": self.missing,
            "auroc": r(self.auroc), "ece": r(self.ece),
            "thresholds": self.thresholds, "review": self.review, "bins": self.bins,
            "per_field": self.per_field, "confidence_errors": self.errors_by_reason,
            "review_curve": {"shares": [round(i / 100, 2) for i in range(1, len(self.curve) + 1)],
                             "error_recall": self.curve},
        }


def count(value: float) -> str:
    """A count for a report: whole numbers as such, shares of tied fields (review rows) to one decimal."""
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _share(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def summarize_confidence(images: Iterable[Any]) -> ConfidenceSummary | None:
    """Summary over `ImageResult`s whose predictions carry confidence; None when none does."""
    points: list[tuple[float, bool, str]] = []  # (confidence, wrong?, generic path)
    answers = without = unscored = missing = 0
    reasons: dict[str, int] = defaultdict(int)
    for image in images:
        prediction = image.prediction
        if prediction is None or not image.score.json_valid:
            continue
        confidence = answer_confidence_map(prediction.extra)
        if confidence is None:
            if "confidence_error" in prediction.extra:
                without += 1
                reasons[str(prediction.extra["confidence_error"]).split(":", 1)[0]] += 1
            continue
        answers += 1
        for result in image.score.fields:
            if result.status == MISSING:
                missing += 1
                continue
            if result.status not in (CORRECT, WRONG, HALLUCINATED):
                continue
            prob = confidence.get(result.pred_where or "")
            if prob is None:
                unscored += 1
                continue
            points.append((prob, result.status != CORRECT, result.path))
    if not answers and not without:
        return None
    return _summary(points, answers, without, unscored, missing, dict(reasons))


def _threshold_rows(points: Sequence[tuple[float, bool, str]], errors: int) -> list[dict[str, Any]]:
    rows = []
    for threshold in THRESHOLDS:
        flagged = [p for p in points if p[0] < threshold]
        caught = sum(1 for p in flagged if p[1])
        kept = len(points) - len(flagged)
        kept_right = (len(points) - errors) - (len(flagged) - caught)
        rows.append({
            "threshold": threshold, "flagged": len(flagged), "flagged_share": _share(len(flagged), len(points)),
            "errors_caught": caught, "error_recall": _share(caught, errors),
            "flagged_precision": _share(caught, len(flagged)), "accuracy_unflagged": _share(kept_right, kept),
        })
    return rows


def _review_rows(points: Sequence[tuple[float, bool, str]], errors: int) -> tuple[list[dict[str, Any]], list[float]]:
    """Errors among the least confident shares of the fields: the REVIEW_SHARES rows, and every 1 %.

    Where the cut falls among fields of equal confidence, those fields' errors are counted in
    proportion to how many of them are taken (what a random order among them would find on average).
    """
    ordered = sorted(points, key=lambda p: p[0])
    caught_before = list(itertools.accumulate((1 if p[1] else 0 for p in ordered), initial=0))
    first_of = {}  # confidence -> (first index, end index) of its tie group
    for i, p in enumerate(ordered):
        lo, _ = first_of.get(p[0], (i, i))
        first_of[p[0]] = (lo, i + 1)

    def caught(share: float) -> tuple[int, float]:
        k = math.ceil(round(share * len(ordered), 9))
        if k == 0:
            return 0, 0.0
        lo, hi = first_of[ordered[k - 1][0]]
        tied = caught_before[hi] - caught_before[lo]
        return k, caught_before[lo] + tied * (k - lo) / (hi - lo)

    def rate(n: float) -> float | None:
        return round(n / errors, 4) if errors else None

    rows = []
    for share in REVIEW_SHARES:
        k, n = caught(share)
        rows.append({"share": share, "fields": k, "errors_caught": round(n, 2), "error_recall": rate(n)})
    curve = [rate(caught(i / 100)[1]) or 0.0 for i in range(1, 101)] if errors else []
    return rows, curve


def _bin_rows(points: Sequence[tuple[float, bool, str]]) -> tuple[list[dict[str, Any]], float | None]:
    rows, gap = [], 0.0
    for i, (lo, hi) in enumerate(itertools.pairwise(BIN_EDGES)):
        last = i == len(BIN_EDGES) - 2
        inside = [p for p in points if lo <= p[0] < hi or (last and p[0] == hi)]
        if not inside:
            rows.append({"lo": lo, "hi": hi, "fields": 0, "accuracy": None, "mean_confidence": None})
            continue
        accuracy = sum(1 for p in inside if not p[1]) / len(inside)
        mean = sum(p[0] for p in inside) / len(inside)
        gap += abs(accuracy - mean) * len(inside)
        rows.append({"lo": lo, "hi": hi, "fields": len(inside), "accuracy": round(accuracy, 4),
                     "mean_confidence": round(mean, 4)})
    return rows, (gap / len(points) if points else None)


def _summary(
    points: list[tuple[float, bool, str]], answers: int, without: int, unscored: int, missing: int,
    reasons: dict[str, int],
) -> ConfidenceSummary:
    errors = sum(1 for p in points if p[1])
    wrong = [p[0] for p in points if p[1]]
    right = [p[0] for p in points if not p[1]]
    bins, ece = _bin_rows(points)
    review, curve = _review_rows(points, errors)
    by_path: dict[str, list[tuple[float, bool, str]]] = defaultdict(list)
    for point in points:
        by_path[point[2]].append(point)
    per_field = []
    for path, items in sorted(by_path.items()):
        w = [p[0] for p in items if p[1]]
        c = [p[0] for p in items if not p[1]]
        at = _threshold_rows(items, len(w))[THRESHOLDS.index(FLAG_AT)]
        score = auroc(w, c)
        per_field.append({
            "path": path, "fields": len(items), "errors": len(w),
            "mean_confidence_right": round(sum(c) / len(c), 4) if c else None,
            "mean_confidence_wrong": round(sum(w) / len(w), 4) if w else None,
            "auroc": None if score is None else round(score, 4),
            "flagged_below_0.9": at["flagged"], "errors_caught_below_0.9": at["errors_caught"],
        })
    return ConfidenceSummary(
        answers=answers, answers_without=without, fields=len(points), errors=errors,
        without_confidence=unscored, missing=missing, auroc=auroc(wrong, right), ece=ece,
        thresholds=_threshold_rows(points, errors), review=review, bins=bins,
        per_field=per_field, errors_by_reason=reasons, curve=curve,
    )
