"""Write an evaluation's report.json, report.md and report.html (each atomically).

report.json holds everything (summary, per-field table, every image with its
non-correct fields, matching and skipped lines, config, provenance); report.md and
report.html show the summary, per-field table and the worst images first.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from vlmocr.errors import ConfigError
from vlmocr.eval.confidence import ConfidenceSummary, count
from vlmocr.eval.evaluate import EvalResult
from vlmocr.eval.metrics import EvalSummary, FieldSummary
from vlmocr.fileio import atomic_write_json, atomic_write_text, provenance

REPORT_FILES = ("report.json", "report.md", "report.html")

#: Display names of the summary scores, in order.
LABELS: dict[str, str] = {
    "json_valid": "JSON valid",
    "schema_valid": "Schema valid",
    "exact_match": "Document exact match",
    "field_f1": "Field F1 (micro, Donut)",
    "field_f1_macro": "Field F1 (macro)",
    "ted_accuracy": "nTED accuracy (Donut)",
    "field_accuracy": "Field accuracy",
    "row_precision": "Row precision",
    "row_recall": "Row recall",
    "row_f1": "Row F1 (Hungarian)",
    "row_exact": "Rows entirely correct",
    "arithmetic_consistent": "Totals = sum of rows",
}


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def summary_rows(summary: EvalSummary) -> list[tuple[str, str, float | None, str]]:
    """(key, label, value, interval text) for each summary score."""
    rows = []
    for key, label in LABELS.items():
        value = getattr(summary, key)
        interval = summary.intervals.get(key)
        ci = f"{pct(interval[0])} – {pct(interval[1])}" if interval else ""
        rows.append((key, label, value, ci))
    return rows


def field_sort_key(f: FieldSummary) -> tuple[float, str]:
    return (f.accuracy, f.path)


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse to replace an earlier report unless asked (nothing written is lost)."""
    existing = [name for name in REPORT_FILES if (out / name).exists()]
    if existing and not overwrite:
        raise ConfigError(f"{out} already holds {', '.join(existing)}; pass --overwrite to replace them")


def report_dict(result: EvalResult) -> dict[str, Any]:
    return {
        "kind": "vlmocr.eval",
        "predictions": str(result.predictions),
        "gold": str(result.gold),
        "config": result.config.to_dict(),
        "summary": result.summary.to_dict(),
        "confidence": result.confidence.to_dict() if result.confidence is not None else None,
        "matching": result.match.to_dict(),
        "skipped_lines": [{"file": s.file, "line": s.line, "reason": s.reason} for s in result.skips],
        "images": [image.to_dict() for image in result.images],
        "provenance": provenance(),
    }


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(result: EvalResult) -> str:
    s = result.summary
    m = result.match
    lines = [
        "# Evaluation report", "",
        f"Predictions: `{result.predictions}` · Gold: `{result.gold}` · {s.n} images "
        f"({len(m.missing)} without prediction, {len(m.unmatched)} predictions without gold, "
        f"{len(m.duplicates)} duplicates, {len(result.skips)} skipped lines)", "",
        "## Summary", "", "| score | value | 95% CI |", "|---|---:|---|",
    ]
    lines += [f"| {label} | {pct(value)} | {ci} |" for _, label, value, ci in summary_rows(s)]
    lines += ["", "## Failure breakdown", "", "| outcome | count |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in s.failures.items()]
    lines += ["", "## Per field (worst first)", "",
              "| field | accuracy | similarity | F1 | correct | wrong | of them ≤ 2 chars off | missing | hallucinated |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for f in sorted(s.fields, key=field_sort_key):
        lines.append(f"| `{f.path}` | {pct(f.accuracy)} | {pct(f.similarity)} | {pct(f.f1)} | "
                     f"{f.correct} | {f.wrong} | {f.near_misses} | {f.missing} | {f.hallucinated} |")
    lines += ["", ("(≤ 2 chars off: wrong values within two character edits of the gold value, a misread "
                   "character or two; the other wrong values are a different value.)")]
    lines += confidence_markdown(result.confidence)
    shown = result.images[: result.config.max_images]
    lines += ["", f"## Worst images ({len(shown)} of {len(result.images)})", "",
              "| image | nTED acc. | field F1 | error | wrong | missing | hallucinated |",
              "|---|---:|---:|---|---:|---:|---:|"]
    for image in shown:
        c = image.score.counts
        lines.append(f"| `{_md_escape(image.key)}` | {pct(image.score.ted_accuracy)} | "
                     f"{pct(image.score.field_f1)} | {image.score.error or ''} | {c['wrong']} | "
                     f"{c['missing']} | {c['hallucinated']} |")
    lines += ["", "report.json holds every image and field; report.html shows each picture "
              "beside predicted vs gold.", ""]
    return "\n".join(lines)


def confidence_markdown(c: ConfidenceSummary | None) -> list[str]:
    """The report's confidence section (empty when the predictions carry none)."""
    if c is None:
        return []
    intro = (f"{c.fields} predicted fields of {c.answers} answers carry a confidence ({c.errors} of them wrong or "
             f"hallucinated); AUROC {_num(c.auroc)} (0.5 = no better than chance), calibration gap (ECE) "
             f"{_num(c.ece)}; {c.missing} gold fields the answers left out cannot be flagged.")
    lines = ["", "## Field confidence", "", intro]
    if c.answers_without:
        lines.append(f"{c.answers_without} accepted answers have no confidence: "
                     + ", ".join(f"{k} ({v})" for k, v in c.errors_by_reason.items()) + ".")
    head = "| flag fields below | flagged | of all fields | errors caught | of all errors | accuracy of the rest |"
    lines += ["", head, "|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {t['threshold']} | {t['flagged']} | {pct(t['flagged_share'])} | {t['errors_caught']} | "
              f"{pct(t['error_recall'])} | {pct(t['accuracy_unflagged'])} |" for t in c.thresholds]
    lines += ["", "| review the least confident | fields | errors caught | of all errors |", "|---:|---:|---:|---:|"]
    lines += [f"| {pct(r['share'])} | {r['fields']} | {count(r['errors_caught'])} | {pct(r['error_recall'])} |"
              for r in c.review]
    lines += ["", "| confidence | fields | accuracy | mean confidence |", "|---|---:|---:|---:|"]
    lines += [f"| [{b['lo']}, {b['hi']}{']' if b['hi'] == 1.0 else ')'} | {b['fields']} | {pct(b['accuracy'])} | "
              f"{_num(b['mean_confidence'])} |" for b in c.bins]
    head = ("| field | values | wrong | mean confidence, right | mean confidence, wrong | AUROC | below 0.9 | "
            "wrong ones below 0.9 |")
    lines += ["", head, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| `{f['path']}` | {f['fields']} | {f['errors']} | {_num(f['mean_confidence_right'])} | "
              f"{_num(f['mean_confidence_wrong'])} | {_num(f['auroc'])} | {f['flagged_below_0.9']} | "
              f"{f['errors_caught_below_0.9']} |" for f in c.per_field]
    return lines


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def write_report(result: EvalResult, out: Path) -> EvalResult:
    """Write report.json, report.md and report.html into `out`; return the result with paths."""
    from vlmocr.eval.html import render_html

    check_out(Path(out), result.config.overwrite)
    files = write_report_files(Path(out), report_dict(result), render_markdown(result), render_html(result))
    return dataclasses.replace(result, files=files)


def write_report_files(out: Path, data: dict[str, Any], markdown: str, html: str) -> dict[str, Path]:
    """Write report.json/.md/.html into `out` (each atomically); return their paths by name."""
    out.mkdir(parents=True, exist_ok=True)
    files = {name: out / name for name in REPORT_FILES}
    atomic_write_json(files["report.json"], data)
    atomic_write_text(files["report.md"], markdown)
    atomic_write_text(files["report.html"], html)
    return files
