"""`vlmocr eval --compare A.jsonl B.jsonl`: two prediction sets on one gold, side by side.

Both sets are scored exactly like `evaluate` does; the report puts every summary score,
every field and every image of A (before) beside B (after), with B − A. Images are
listed regressions first (largest drop in nTED accuracy), then the worst after B.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmocr.eval.confidence import FLAG_AT, ConfidenceSummary
from vlmocr.eval.evaluate import EvalConfig, EvalResult, ImageResult, evaluate
from vlmocr.eval.html import bar, esc, highlight, page, pct, picture, score_chips
from vlmocr.eval.report import LABELS, check_out, field_sort_key, write_report_files
from vlmocr.fileio import provenance
from vlmocr.records import answer_confidence_map


@dataclass(frozen=True)
class CompareResult:
    """Two evaluations on the same gold and their image-by-image pairing."""

    a: EvalResult
    b: EvalResult
    labels: tuple[str, str]
    images: list[tuple[ImageResult, ImageResult]]  # (a, b) per gold image, report order
    files: dict[str, Path] = field(default_factory=dict)

    def deltas(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for key in LABELS:
            va, vb = getattr(self.a.summary, key), getattr(self.b.summary, key)
            out[key] = None if va is None or vb is None else vb - va
        return out


def _signed(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:+.1f} pts"


def _field_rows(result: CompareResult) -> list[tuple[str, Any, Any]]:
    fa = {f.path: f for f in result.a.summary.fields}
    fb = {f.path: f for f in result.b.summary.fields}
    paths = list(fb) + [p for p in fa if p not in fb]
    rows = [(p, fa.get(p), fb.get(p)) for p in paths]
    rows.sort(key=lambda r: (field_sort_key(r[2]) if r[2] else (-1.0, r[0])))
    return rows


def _acc(f: Any) -> float | None:
    return f.accuracy if f is not None else None


def _threshold(c: ConfidenceSummary, key: str) -> float | None:
    row = next((t for t in c.thresholds if t["threshold"] == FLAG_AT), None)
    return None if row is None else row[key]


#: The confidence summary's headline rows beside each other: (label, how to read one summary, format).
_CONFIDENCE_ROWS: list[tuple[str, Any, str]] = [
    ("fields with a confidence", lambda c: c.fields, "count"),
    ("of them wrong or hallucinated", lambda c: c.errors, "count"),
    ("AUROC (0.5 = chance)", lambda c: c.auroc, "num"),
    ("calibration gap (ECE)", lambda c: c.ece, "num"),
    (f"fields below {FLAG_AT}", lambda c: _threshold(c, "flagged_share"), "pct"),
    (f"errors caught below {FLAG_AT}", lambda c: _threshold(c, "error_recall"), "pct"),
    (f"accuracy of the fields at or above {FLAG_AT}", lambda c: _threshold(c, "accuracy_unflagged"), "pct"),
]


def confidence_rows(result: CompareResult) -> list[tuple[str, str, str]]:
    """(row label, A, B) of both sides' field-confidence summaries; empty when neither carries one."""
    sides = (result.a.confidence, result.b.confidence)
    if sides == (None, None):
        return []

    def show(c: ConfidenceSummary | None, read: Any, kind: str) -> str:
        if c is None:
            return "—"
        value = read(c)
        if value is None:
            return "n/a"
        return str(value) if kind == "count" else f"{value:.3f}" if kind == "num" else pct(value)

    return [(label, show(sides[0], read, kind), show(sides[1], read, kind)) for label, read, kind in _CONFIDENCE_ROWS]


def report_dict(result: CompareResult) -> dict[str, Any]:
    la, lb = result.labels
    return {
        "kind": "vlmocr.compare",
        "labels": [la, lb],
        "predictions": {la: str(result.a.predictions), lb: str(result.b.predictions)},
        "gold": str(result.a.gold),
        "config": result.a.config.to_dict(),
        "summary": {la: result.a.summary.to_dict(), lb: result.b.summary.to_dict(),
                    "delta": {k: (None if v is None else round(v, 6)) for k, v in result.deltas().items()}},
        "fields": [{"path": p, la: _acc(fa), lb: _acc(fb),
                    "delta": None if fa is None or fb is None else round(fb.accuracy - fa.accuracy, 6)}
                   for p, fa, fb in _field_rows(result)],
        "images": [{"image": ia.key, la: ia.to_dict(), lb: ib.to_dict(),
                    "delta_ted_accuracy": round(ib.score.ted_accuracy - ia.score.ted_accuracy, 6)}
                   for ia, ib in result.images],
        "matching": {la: result.a.match.to_dict(), lb: result.b.match.to_dict()},
        "confidence": {la: result.a.confidence.to_dict() if result.a.confidence is not None else None,
                       lb: result.b.confidence.to_dict() if result.b.confidence is not None else None},
        "provenance": provenance(),
    }


def render_markdown(result: CompareResult) -> str:
    la, lb = result.labels
    deltas = result.deltas()
    lines = ["# Comparison report", "",
             (f"{la}: `{result.a.predictions}` · {lb}: `{result.b.predictions}` · gold: `{result.a.gold}` "
             f"· {result.a.summary.n} images"), "",
             "## Summary", "", f"| score | {la} | {lb} | Δ |", "|---|---:|---:|---:|"]
    for key, label in LABELS.items():
        lines.append(f"| {label} | {pct(getattr(result.a.summary, key))} | "
                     f"{pct(getattr(result.b.summary, key))} | {_signed(deltas[key])} |")
    lines += ["", "## Per field", "", f"| field | {la} | {lb} | Δ |", "|---|---:|---:|---:|"]
    for path, fa, fb in _field_rows(result):
        delta = None if fa is None or fb is None else fb.accuracy - fa.accuracy
        lines.append(f"| `{path}` | {pct(_acc(fa))} | {pct(_acc(fb))} | {_signed(delta)} |")
    confidence = confidence_rows(result)
    if confidence:
        lines += ["", "## Field confidence", "", "(`vlmocr extract --confidence`; — where a side has none)", "",
                  f"| | {la} | {lb} |", "|---|---:|---:|"]
        lines += [f"| {label} | {va} | {vb} |" for label, va, vb in confidence]
    shown = result.images[: result.a.config.max_images]
    lines += ["", f"## Images ({len(shown)} of {len(result.images)}, regressions first)", "",
              f"| image | {la} nTED | {lb} nTED | Δ | {la} F1 | {lb} F1 |", "|---|---:|---:|---:|---:|---:|"]
    for ia, ib in shown:
        lines.append(f"| `{ia.key}` | {pct(ia.score.ted_accuracy)} | {pct(ib.score.ted_accuracy)} | "
                     f"{_signed(ib.score.ted_accuracy - ia.score.ted_accuracy)} | "
                     f"{pct(ia.score.field_f1)} | {pct(ib.score.field_f1)} |")
    return "\n".join(lines) + "\n"


def _delta_html(value: float | None) -> str:
    if value is None:
        return "n/a"
    cls = "delta-up" if value > 1e-12 else "delta-down" if value < -1e-12 else ""
    return f'<span class="{cls}">{esc(_signed(value))}</span>'


def _cell(gold: str | None, f: Any, confidence: dict[str, float] | None) -> str:
    if f is None:
        return '<span class="none">—</span>'
    _, pred = highlight(gold, f.pred)
    note = "" if f.status == "correct" else f'<br><small class="s-{f.status}">{f.status}</small>'
    prob = confidence.get(f.pred_where) if confidence is not None and f.pred_where is not None else None
    if prob is not None:
        note += f' <small title="the probability the model gave this value">p {prob:.3f}</small>'
    return pred + note


def _confidence_of(image: ImageResult) -> dict[str, float] | None:
    return answer_confidence_map(image.prediction.extra) if image.prediction is not None else None


def _side_by_side(ia: ImageResult, ib: ImageResult, labels: tuple[str, str]) -> str:
    """Fields where either side is not correct, then the rest folded away."""
    fa = {f.where: f for f in ia.score.fields}
    fb = {f.where: f for f in ib.score.fields}
    ca, cb = _confidence_of(ia), _confidence_of(ib)
    order = list(fa) + [w for w in fb if w not in fa]
    differing, same = [], []
    for where in order:
        a, b = fa.get(where), fb.get(where)
        gold = (a or b).gold  # type: ignore[union-attr]
        both_correct = (a is None or a.status == "correct") and (b is None or b.status == "correct")
        row = (f'<tr class="{"correct" if both_correct else "diff"}"><td>{esc(where or "(root)")}</td>'
               f'<td>{esc(gold) if gold is not None else "<span class=none>—</span>"}</td>'
               f"<td>{_cell(gold, a, ca)}</td><td>{_cell(gold, b, cb)}</td></tr>")
        (same if both_correct else differing).append(row)
    head = f"<tr><th>field</th><th>gold</th><th>{esc(labels[0])}</th><th>{esc(labels[1])}</th></tr>"
    html_out = ""
    if differing:
        html_out += '<table class="fields">' + head + "".join(differing) + "</table>"
    if same:
        html_out += (f"<details><summary>{len(same)} fields correct in both</summary>"
                     f'<table class="fields">{head}{"".join(same)}</table></details>')
    return html_out


def render_html(result: CompareResult) -> str:
    la, lb = result.labels
    a, b = result.a.summary, result.b.summary
    deltas = result.deltas()
    summary = "".join(
        f"<tr><td>{esc(label)}</td><td class=num>{pct(getattr(a, key))}</td><td>{bar(getattr(a, key))}</td>"
        f"<td class=num>{pct(getattr(b, key))}</td><td>{bar(getattr(b, key))}</td>"
        f"<td class=num>{_delta_html(deltas[key])}</td></tr>"
        for key, label in LABELS.items())
    fields = "".join(
        f"<tr><td><code>{esc(p)}</code></td><td class=num>{pct(_acc(fa))}</td><td class=num>{pct(_acc(fb))}</td>"
        f"<td class=num>{_delta_html(None if fa is None or fb is None else fb.accuracy - fa.accuracy)}</td></tr>"
        for p, fa, fb in _field_rows(result))
    confidence = "".join(f"<tr><td>{esc(label)}</td><td class=num>{esc(va)}</td><td class=num>{esc(vb)}</td></tr>"
                         for label, va, vb in confidence_rows(result))
    if confidence:
        confidence = (f"<h2>Field confidence</h2><table><tr><th></th><th class=num>{esc(la)}</th>"
                      f"<th class=num>{esc(lb)}</th></tr>{confidence}</table>")
    config = result.a.config
    shown = result.images[: config.max_images]
    cards = "".join(
        f'<div class="card"><div class="pic">{picture(ia.record.image_path, config.thumbnail_px)}</div>'
        f'<div class="body"><h3>{esc(ia.key)} · nTED {_delta_html(ib.score.ted_accuracy - ia.score.ted_accuracy)}</h3>'
        f"<div><b>{esc(la)}</b> {score_chips(ia)}</div><div><b>{esc(lb)}</b> {score_chips(ib)}</div>"
        f"{_side_by_side(ia, ib, result.labels)}</div></div>"
        for ia, ib in shown)
    body = (
        "<h1>Comparison report</h1>"
        f'<div class="meta">{esc(la)}: <code>{esc(result.a.predictions)}</code> · {esc(lb)}: '
        f"<code>{esc(result.b.predictions)}</code> · gold <code>{esc(result.a.gold)}</code> · {a.n} images</div>"
        f"<h2>Summary</h2><table><tr><th>score</th><th class=num>{esc(la)}</th><th></th>"
        f"<th class=num>{esc(lb)}</th><th></th><th class=num>Δ</th></tr>{summary}</table>"
        f"<h2>Per field (worst after first)</h2><table><tr><th>field</th><th class=num>{esc(la)}</th>"
        f"<th class=num>{esc(lb)}</th><th class=num>Δ</th></tr>{fields}</table>{confidence}"
        f"<h2>Images, regressions first ({len(shown)} of {len(result.images)})</h2>{cards}"
    )
    return page("vlmocr comparison report", body)


def compare(
    pred_a: Path,
    pred_b: Path,
    gold: Path,
    out: Path | None = None,
    config: EvalConfig | None = None,
    *,
    labels: tuple[str, str] = ("before", "after"),
) -> CompareResult:
    """Score both prediction sets on `gold`; write the side-by-side reports to `out` if given."""
    config = config or EvalConfig()
    if out is not None:
        check_out(Path(out), config.overwrite)
    a = evaluate(pred_a, gold, None, config)
    b = evaluate(pred_b, gold, None, config)
    by_key = {image.key: image for image in a.images}
    pairs = [(by_key[image.key], image) for image in b.images if image.key in by_key]
    pairs.sort(key=lambda p: (p[1].score.ted_accuracy - p[0].score.ted_accuracy,
                              p[1].score.ted_accuracy, p[1].key))
    result = CompareResult(a, b, labels, pairs)
    if out is None:
        return result
    files = write_report_files(Path(out), report_dict(result), render_markdown(result), render_html(result))
    return dataclasses.replace(result, files=files)
