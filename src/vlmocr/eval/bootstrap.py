"""Percentile bootstrap confidence intervals over documents (resampled with replacement)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vlmocr.eval.metrics import PairScore


def bootstrap_intervals(
    scores: Sequence[PairScore], resamples: int, seed: int = 0, confidence: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Intervals for json_valid, exact_match, field_f1 (micro), field_f1_macro, ted_accuracy."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = len(scores)
    per_doc = {
        "json_valid": np.array([s.json_valid for s in scores], dtype=float),
        "exact_match": np.array([s.exact_match for s in scores], dtype=float),
        "field_f1_macro": np.array([s.field_f1 for s in scores], dtype=float),
        "ted_accuracy": np.array([s.ted_accuracy for s in scores], dtype=float),
    }
    tp = np.array([s.f1_tp for s in scores], dtype=float)
    den = np.array([s.f1_pred + s.f1_gold for s in scores], dtype=float)
    index = rng.integers(0, n, size=(resamples, n))
    alpha = (1.0 - confidence) / 2
    out: dict[str, tuple[float, float]] = {}
    for name, values in per_doc.items():
        means = values[index].mean(axis=1)
        out[name] = (float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha)))
    tps, dens = tp[index].sum(axis=1), den[index].sum(axis=1)
    micro = np.divide(2 * tps, dens, out=np.ones_like(tps), where=dens > 0)
    out["field_f1"] = (float(np.quantile(micro, alpha)), float(np.quantile(micro, 1 - alpha)))
    return out
