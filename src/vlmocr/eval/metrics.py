"""Scores for one (prediction, gold) pair and for a whole set: pure Python, no files, no torch.

`score_pair` gives one document's verdicts: JSON validity, schema validity, exact match,
Donut's field F1 and nTED accuracy, per-field results (rows matched by the Hungarian
algorithm, see `align`) and arithmetic consistency (totals = sums of the rows).
`summarize` aggregates pairs; `summarize_scores` aggregates already-scored pairs (the
file-based evaluation keeps per-image scores for the report).

Definitions (all rates in [0, 1], over the n gold documents; a missing or invalid
prediction scores as an empty document):
- json_valid: the answer parsed as JSON. schema_valid: it also satisfies the schema.
- exact_match: equal to gold after normalization (Donut's form: empty values dropped).
- field_f1: Donut's micro F1 over flattened (path, value) pairs of all documents;
  field_f1_macro: the mean of each document's F1.
- ted_accuracy: the mean of Donut's nTED accuracy (`ted.ted_accuracy`).
- field_accuracy: correct fields / all field slots (correct+wrong+missing+hallucinated).
- per field, near_misses: the wrong values within NEAR_MISS_EDITS (2) character edits of gold, a
  misread character or two; the other wrong values are a different value (a guess, a neighbour's).

Values are normalized first (`NormalizeConfig`: NFC and whitespace by default). With
`NormalizeConfig.none()` field_f1 and ted_accuracy equal Donut's evaluator exactly; the
default changes only values with decomposed Unicode or repeated/odd whitespace.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from vlmocr.eval.align import CORRECT, STATUSES, WRONG, FieldResult, RowMatch, align_fields, leaf_text
from vlmocr.eval.normalize import (
    NormalizeConfig,
    canonical_number,
    donut_flatten,
    donut_normalize,
    levenshtein,
    normalize_values,
)
from vlmocr.eval.ted import gold_size, tree_edit_distance


@dataclass(frozen=True)
class ArithmeticRule:
    """`total` (a top-level field) must equal the sum of `item` over the rows in `rows`."""

    total: str
    rows: str
    item: str


#: The pallet manifest's totals.
MANIFEST_RULES: tuple[ArithmeticRule, ...] = (
    ArithmeticRule("total_cases", "products", "cases"),
    ArithmeticRule("total_units", "products", "sales_units"),
    ArithmeticRule("total_layers", "products", "layers"),
)


@dataclass(frozen=True)
class ScoreConfig:
    """How pairs are scored. `schema=None` skips schema validation."""

    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    schema: dict[str, Any] | None = None
    row_threshold: float = 0.5
    arithmetic: tuple[ArithmeticRule, ...] = MANIFEST_RULES


@dataclass(frozen=True)
class PairScore:
    """Every score of one document."""

    json_valid: bool
    schema_valid: bool | None
    exact_match: bool
    ted_accuracy: float
    f1_tp: int
    f1_pred: int
    f1_gold: int
    fields: tuple[FieldResult, ...]
    rows: tuple[RowMatch, ...]
    arithmetic: dict[str, bool]  # rule total -> prediction consistent (rules gold has)
    gold_arithmetic: dict[str, bool]  # rule total -> gold itself consistent
    error: str | None = None  # the prediction's error kind, "missing" if there was none

    @property
    def field_f1(self) -> float:
        denominator = self.f1_pred + self.f1_gold
        return 2 * self.f1_tp / denominator if denominator else 1.0

    @property
    def counts(self) -> dict[str, int]:
        found = Counter(f.status for f in self.fields)
        return {status: found.get(status, 0) for status in STATUSES}

    def to_dict(self) -> dict[str, Any]:
        return {
            "json_valid": self.json_valid, "schema_valid": self.schema_valid,
            "exact_match": self.exact_match, "ted_accuracy": round(self.ted_accuracy, 6),
            "field_f1": round(self.field_f1, 6), "counts": self.counts, "error": self.error,
            "arithmetic": self.arithmetic, "gold_arithmetic": self.gold_arithmetic,
            "rows": [r.to_dict() for r in self.rows],
            "fields": [f.to_dict() for f in self.fields],
        }


_VALIDATORS: dict[int, tuple[Any, Any]] = {}


def _schema_valid(doc: Any, schema: dict[str, Any]) -> bool:
    cached = _VALIDATORS.get(id(schema))
    if cached is None or cached[0] is not schema:
        import jsonschema

        cls = jsonschema.validators.validator_for(schema)
        cached = (schema, cls(schema))
        _VALIDATORS[id(schema)] = cached
    return bool(cached[1].is_valid(doc))


def _number(value: Any) -> Decimal | None:
    text = leaf_text(value)
    if text is None:
        return None
    canonical = canonical_number(text.strip())
    return Decimal(canonical) if canonical is not None else None


def arithmetic_checks(doc: Any, rules: Sequence[ArithmeticRule]) -> dict[str, bool | None]:
    """Per rule: True/False if the document's total equals the sum of its rows, None if
    the rule does not apply (no such total and rows in the document)."""
    result: dict[str, bool | None] = {}
    for rule in rules:
        if not isinstance(doc, dict) or rule.total not in doc or not isinstance(doc.get(rule.rows), list):
            result[rule.total] = None
            continue
        total = _number(doc[rule.total])
        items = [_number(row.get(rule.item)) if isinstance(row, dict) else None for row in doc[rule.rows]]
        result[rule.total] = total is not None and None not in items and sum(items, Decimal(0)) == total
    return result


def score_pair(
    pred: Any | None,
    gold: Any,
    *,
    raw_valid: bool = True,
    config: ScoreConfig | None = None,
    error: str | None = None,
) -> PairScore:
    """Score one prediction (parsed JSON, or None if there was no valid answer) against gold.

    `raw_valid=False` says the answer was not valid JSON even if `pred` holds something
    (e.g. a repaired parse); `error` is recorded as given (e.g. "length", "missing").
    """
    config = config or ScoreConfig()
    json_valid = raw_valid and pred is not None
    norm_gold = normalize_values(gold, config.normalize)
    norm_pred = normalize_values(pred, config.normalize) if json_valid else None
    donut_gold = donut_normalize(norm_gold)
    donut_pred = donut_normalize(norm_pred) if json_valid else {}

    exact = json_valid and donut_pred == donut_gold
    denominator = gold_size(donut_gold)
    if denominator == 0:
        ted = 1.0 if not donut_pred else 0.0
    elif exact:
        ted = 1.0
    else:
        ted = max(0.0, 1.0 - tree_edit_distance(donut_pred, donut_gold) / denominator)

    gold_pairs = Counter(donut_flatten(donut_gold))
    pred_pairs = Counter(donut_flatten(donut_pred))
    tp = sum((gold_pairs & pred_pairs).values())

    schema_valid = None
    if config.schema is not None:
        schema_valid = json_valid and _schema_valid(pred, config.schema)

    alignment = align_fields(norm_pred, norm_gold, row_threshold=config.row_threshold)
    gold_arith = {k: v for k, v in arithmetic_checks(norm_gold, config.arithmetic).items() if v is not None}
    pred_arith_all = arithmetic_checks(norm_pred, config.arithmetic)
    pred_arith = {k: bool(pred_arith_all.get(k)) for k in gold_arith}
    return PairScore(
        json_valid=json_valid,
        schema_valid=schema_valid,
        exact_match=exact,
        ted_accuracy=ted,
        f1_tp=tp,
        f1_pred=sum(pred_pairs.values()),
        f1_gold=sum(gold_pairs.values()),
        fields=tuple(alignment.fields),
        rows=tuple(alignment.rows),
        arithmetic=pred_arith,
        gold_arithmetic=gold_arith,
        error=error,
    )


#: A wrong value this many character edits (insert, delete, replace) from gold, or fewer, is a near miss.
NEAR_MISS_EDITS = 2


@dataclass(frozen=True)
class FieldSummary:
    """Aggregate of one generic field path over all documents."""

    path: str
    correct: int
    wrong: int
    missing: int
    hallucinated: int
    similarity: float  # mean similarity over slots (0 for missing/hallucinated)
    #: Wrong values at most NEAR_MISS_EDITS character edits from the gold value: a misread character
    #: or two, where the rest of the wrong ones are another value (a guess, a neighbouring field).
    near_misses: int = 0

    @property
    def total(self) -> int:
        return self.correct + self.wrong + self.missing + self.hallucinated

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def precision(self) -> float:
        predicted = self.correct + self.wrong + self.hallucinated
        return self.correct / predicted if predicted else 0.0

    @property
    def recall(self) -> float:
        expected = self.correct + self.wrong + self.missing
        return self.correct / expected if expected else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "correct": self.correct, "wrong": self.wrong,
            "missing": self.missing, "hallucinated": self.hallucinated,
            "near_misses": self.near_misses,
            "accuracy": round(self.accuracy, 6), "similarity": round(self.similarity, 6),
            "precision": round(self.precision, 6), "recall": round(self.recall, 6),
            "f1": round(self.f1, 6),
        }


@dataclass(frozen=True)
class EvalSummary:
    """Aggregate scores of a set of documents (see the module docstring for definitions)."""

    n: int
    json_valid: float
    schema_valid: float | None
    exact_match: float
    field_f1: float
    field_f1_macro: float
    ted_accuracy: float
    field_accuracy: float
    row_precision: float | None
    row_recall: float | None
    row_f1: float | None
    row_exact: float | None  # matched rows that are entirely correct / gold rows
    arithmetic_consistent: float | None  # predictions consistent / checks where gold is
    gold_arithmetic_consistent: float | None
    failures: dict[str, int]  # field outcomes (valid answers), lost fields, bad documents, errors
    fields: tuple[FieldSummary, ...]
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)

    #: The headline scores, in display order.
    HEADLINE = (
        "json_valid", "schema_valid", "exact_match", "field_f1", "field_f1_macro",
        "ted_accuracy", "field_accuracy", "row_f1", "arithmetic_consistent",
    )

    def headline(self) -> dict[str, float | None]:
        return {name: getattr(self, name) for name in self.HEADLINE}

    def to_dict(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 6)

        return {
            "n": self.n,
            **{name: r(getattr(self, name)) for name in (
                "json_valid", "schema_valid", "exact_match", "field_f1", "field_f1_macro",
                "ted_accuracy", "field_accuracy", "row_precision", "row_recall", "row_f1",
                "row_exact", "arithmetic_consistent", "gold_arithmetic_consistent")},
            "failures": dict(self.failures),
            "fields": [f.to_dict() for f in self.fields],
            "intervals": {k: [round(lo, 6), round(hi, 6)] for k, (lo, hi) in self.intervals.items()},
        }


_FAILURE_ORDER = ("fields correct", "fields wrong", "fields missing", "fields hallucinated",
                  "fields lost to invalid JSON", "documents with invalid JSON", "documents without prediction")


def _failure_order(key: str) -> tuple[int, str]:
    return (_FAILURE_ORDER.index(key) if key in _FAILURE_ORDER else len(_FAILURE_ORDER), key)


def _rate(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def summarize_scores(
    scores: Sequence[PairScore], *, bootstrap: int = 0, seed: int = 0, confidence: float = 0.95
) -> EvalSummary:
    """Aggregate scored pairs; `bootstrap` > 0 adds percentile confidence intervals."""
    n = len(scores)
    tp = sum(s.f1_tp for s in scores)
    f1_den = sum(s.f1_pred + s.f1_gold for s in scores)
    by_path: dict[str, list[float]] = {}
    status_by_path: dict[str, Counter[str]] = {}
    near_by_path: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    rows_gold = rows_pred = rows_matched = rows_exact = 0
    arith_checks = arith_ok = gold_checks = gold_ok = 0
    failures: Counter[str] = Counter()
    for s in scores:
        for f in s.fields:
            by_path.setdefault(f.path, []).append(f.similarity)
            status_by_path.setdefault(f.path, Counter())[f.status] += 1
            if f.status == WRONG and f.pred is not None and f.gold is not None and \
                    levenshtein(f.pred, f.gold) <= NEAR_MISS_EDITS:
                near_by_path[f.path] += 1
            totals[f.status] += 1
            failures[f"fields {f.status}" if s.json_valid else "fields lost to invalid JSON"] += 1
        for row in s.rows:
            rows_gold += row.n_gold
            rows_pred += row.n_pred
            rows_matched += row.matched
            rows_exact += row.exact
        for name, ok in s.gold_arithmetic.items():
            gold_checks += 1
            gold_ok += ok
            if ok:
                arith_checks += 1
                arith_ok += s.arithmetic.get(name, False)
        if s.error == "missing":
            failures["documents without prediction"] += 1
        elif not s.json_valid:
            failures["documents with invalid JSON"] += 1
        if s.error and s.error != "missing":
            failures["error: " + s.error.split(":", 1)[0].strip()] += 1
    fields = tuple(
        FieldSummary(path, c[CORRECT], c["wrong"], c["missing"], c["hallucinated"],
                     sum(by_path[path]) / len(by_path[path]), near_misses=near_by_path[path])
        for path, c in status_by_path.items()
    )
    slots = sum(totals[s] for s in STATUSES)
    row_p = _rate(rows_matched, rows_pred)
    row_r = _rate(rows_matched, rows_gold)
    row_f1 = None
    if rows_gold or rows_pred:
        row_f1 = 2 * rows_matched / (rows_gold + rows_pred)
    schema = [s.schema_valid for s in scores if s.schema_valid is not None]
    summary = EvalSummary(
        n=n,
        json_valid=_rate(sum(s.json_valid for s in scores), n) or 0.0,
        schema_valid=_rate(sum(schema), len(schema)) if schema else None,
        exact_match=_rate(sum(s.exact_match for s in scores), n) or 0.0,
        field_f1=2 * tp / f1_den if f1_den else (1.0 if n else 0.0),
        field_f1_macro=_rate(sum(s.field_f1 for s in scores), n) or 0.0,
        ted_accuracy=_rate(sum(s.ted_accuracy for s in scores), n) or 0.0,
        field_accuracy=_rate(totals[CORRECT], slots) or 0.0,
        row_precision=row_p,
        row_recall=row_r,
        row_f1=row_f1,
        row_exact=_rate(rows_exact, rows_gold),
        arithmetic_consistent=_rate(arith_ok, arith_checks),
        gold_arithmetic_consistent=_rate(gold_ok, gold_checks),
        failures={k: failures[k] for k in sorted(failures, key=_failure_order)},
        fields=fields,
    )
    if bootstrap > 0 and n:
        from dataclasses import replace

        from vlmocr.eval.bootstrap import bootstrap_intervals

        summary = replace(summary, intervals=bootstrap_intervals(scores, bootstrap, seed, confidence))
    return summary


def summarize(
    pairs: Iterable[tuple[Any | None, Any]],
    *,
    config: ScoreConfig | None = None,
    bootstrap: int = 0,
    seed: int = 0,
) -> EvalSummary:
    """Score (prediction, gold) pairs and aggregate them. A None prediction is invalid JSON."""
    config = config or ScoreConfig()
    scores = [score_pair(pred, gold, config=config) for pred, gold in pairs]
    return summarize_scores(scores, bootstrap=bootstrap, seed=seed)
