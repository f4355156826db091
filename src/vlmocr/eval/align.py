"""Field-by-field comparison of a prediction with its gold target.

Every gold leaf and every predicted leaf ends up in exactly one `FieldResult`:
``correct`` (equal after normalization), ``wrong`` (both present, different),
``missing`` (gold has a value, the prediction none) or ``hallucinated`` (the prediction
has a value where gold has none). Empty strings and nulls count as "no value".

Lists (product rows) are matched one-to-one with the Hungarian algorithm
(`scipy.optimize.linear_sum_assignment`) on row similarity — the mean normalized
Levenshtein similarity over the row's fields — so a reordered row is still compared
with its counterpart. Pairs below `row_threshold` (0.5, as ANLS*) are not matched: the
gold row's fields become missing and the predicted row's hallucinated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from vlmocr.eval.normalize import similarity
from vlmocr.fields import field_path, item_path

CORRECT, WRONG, MISSING, HALLUCINATED = "correct", "wrong", "missing", "hallucinated"
STATUSES: tuple[str, ...] = (CORRECT, WRONG, MISSING, HALLUCINATED)

try:
    from rapidfuzz.distance import Levenshtein as _RF_LEV
    from rapidfuzz.process import cdist as _cdist
except ImportError:  # pragma: no cover - rapidfuzz is a core dependency
    _cdist = None


@dataclass(frozen=True)
class FieldResult:
    """One field of one document: its generic path, where it sits, both values, verdict."""

    path: str  # generic: "products[].cases"
    where: str  # concrete: "products[2].cases" (gold row) or "products[pred 3].cases"
    gold: str | None
    pred: str | None
    status: str
    similarity: float
    #: Where the predicted value sits in the prediction's own order ("products[3].cases"); None without one.
    pred_where: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "path": self.path, "where": self.where, "gold": self.gold, "pred": self.pred,
            "status": self.status, "similarity": round(self.similarity, 4),
        }
        if self.pred_where is not None and self.pred_where != self.where:
            out["pred_where"] = self.pred_where
        return out


@dataclass(frozen=True)
class RowMatch:
    """How the rows of one list were matched: pairs of (pred index, gold index)."""

    path: str
    n_gold: int
    n_pred: int
    pairs: tuple[tuple[int, int], ...]
    exact: int  # matched pairs whose fields are all correct

    @property
    def matched(self) -> int:
        return len(self.pairs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "n_gold": self.n_gold, "n_pred": self.n_pred,
            "matched": self.matched, "exact": self.exact,
            "pairs": [list(p) for p in self.pairs],
        }


@dataclass
class Alignment:
    """All field verdicts and row matches of one document."""

    fields: list[FieldResult] = field(default_factory=list)
    rows: list[RowMatch] = field(default_factory=list)


def leaf_text(value: Any) -> str | None:
    """A scalar as comparable text; None for null, empty strings and containers."""
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, str):
        return value if value else None
    return json.dumps(value)


def _leaf(out: Alignment, path: str, where: str, pwhere: str, pred: Any, gold: Any) -> None:
    p, g = leaf_text(pred), leaf_text(gold)
    if p is None and g is None:
        return
    if g is None:
        out.fields.append(FieldResult(path, where, None, p, HALLUCINATED, 0.0, pwhere))
    elif p is None:
        out.fields.append(FieldResult(path, where, g, None, MISSING, 0.0))
    elif p == g:
        out.fields.append(FieldResult(path, where, g, p, CORRECT, 1.0, pwhere))
    else:
        out.fields.append(FieldResult(path, where, g, p, WRONG, similarity(p, g), pwhere))


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "dict"
    if isinstance(value, list):
        return "list"
    return "none" if leaf_text(value) is None else "leaf"


def _align(out: Alignment, pred: Any, gold: Any, path: str, where: str, pwhere: str, threshold: float) -> None:
    """`where` names the place in gold's order, `pwhere` the same place in the prediction's."""
    kp, kg = _kind(pred), _kind(gold)
    if kp == "none" and kg == "none":
        return
    if kp != kg and kp != "none" and kg != "none":  # a type mismatch: compare each with nothing
        _align(out, None, gold, path, where, pwhere, threshold)
        _align(out, pred, None, path, where, pwhere, threshold)
        return
    kind = kg if kg != "none" else kp
    if kind == "leaf":
        _leaf(out, path, where, pwhere, pred, gold)
    elif kind == "dict":
        p = pred if isinstance(pred, dict) else {}
        g = gold if isinstance(gold, dict) else {}
        for key in list(g) + [k for k in p if k not in g]:
            _align(out, p.get(key), g.get(key), field_path(path, key), field_path(where, key), field_path(pwhere, key), threshold)
    else:
        _align_lists(out, pred or [], gold or [], path, where, pwhere, threshold)


def _flat_row(row: Any) -> dict[str, str]:
    """A row as {sub-path: text}, nested values flattened, for similarity only."""
    if not isinstance(row, (dict, list)):
        text = leaf_text(row)
        return {"": text} if text is not None else {}
    flat: dict[str, str] = {}

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, field_path(key, k))
        elif isinstance(value, list):
            for v in value:
                walk(v, key + "[]")
        else:
            text = leaf_text(value)
            if text is not None:
                flat[key] = f"{flat[key]} | {text}" if key in flat else text

    walk(row, "")
    return flat


def row_similarity(pred_rows: list[Any], gold_rows: list[Any]) -> Any:
    """Matrix (pred × gold) of mean field similarity over the union of fields present."""
    import numpy as np

    fp = [_flat_row(r) for r in pred_rows]
    fg = [_flat_row(r) for r in gold_rows]
    keys = sorted({k for row in fp + fg for k in row})
    total = np.zeros((len(fp), len(fg)))
    union = np.zeros((len(fp), len(fg)))
    for key in keys:
        tp = [row.get(key, "") for row in fp]
        tg = [row.get(key, "") for row in fg]
        has_p = np.array([bool(t) for t in tp])
        has_g = np.array([bool(t) for t in tg])
        either = has_p[:, None] | has_g[None, :]
        if _cdist is not None:
            sims = _cdist(tp, tg, scorer=_RF_LEV.normalized_similarity, dtype=np.float64, workers=1)
        else:  # pragma: no cover
            sims = np.array([[similarity(a, b) for b in tg] for a in tp])
        total += np.where(either, sims, 0.0)
        union += either
    return np.divide(total, union, out=np.zeros_like(total), where=union > 0)


def _align_lists(
    out: Alignment, pred: list[Any], gold: list[Any], path: str, where: str, pwhere: str, threshold: float
) -> None:
    generic = path + "[]"
    pairs: list[tuple[int, int]] = []
    if pred and gold:
        if len(pred) == len(gold) and pred == gold:
            pairs = [(i, i) for i in range(len(gold))]
        else:
            from scipy.optimize import linear_sum_assignment

            sims = row_similarity(pred, gold)
            rows, cols = linear_sum_assignment(sims, maximize=True)
            pairs = [(int(r), int(c)) for r, c in zip(rows, cols) if sims[r, c] >= threshold]
    matched_pred = {p for p, _ in pairs}
    matched_gold = {g: p for p, g in pairs}
    exact = 0
    for g_index, g_item in enumerate(gold):
        p_index = matched_gold.get(g_index)
        before = len(out.fields)
        _align(out, pred[p_index] if p_index is not None else None, g_item, generic,
               item_path(where, g_index), item_path(pwhere, p_index), threshold)
        if p_index is not None and all(f.status == CORRECT for f in out.fields[before:]):
            exact += 1
    for p_index, p_item in enumerate(pred):
        if p_index not in matched_pred:
            _align(out, p_item, None, generic, item_path(where, f"pred {p_index}"), item_path(pwhere, p_index),
                   threshold)
    out.rows.append(RowMatch(path, len(gold), len(pred), tuple(sorted(pairs, key=lambda x: x[1])), exact))


def align_fields(pred: Any, gold: Any, *, row_threshold: float = 0.5) -> Alignment:
    """Compare two (value-normalized) JSON values field by field; lists row by row."""
    out = Alignment()
    _align(out, pred, gold, "", "", "", row_threshold)
    return out
