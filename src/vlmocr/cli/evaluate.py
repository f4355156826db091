"""`vlmocr eval`: score predictions against gold, or compare two prediction sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from vlmocr.cli._common import handle_errors, out


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate_command)


def _schema(schema: Optional[Path], no_schema: bool) -> dict | None:
    from vlmocr.errors import ConfigError
    from vlmocr.schema import manifest_schema

    if no_schema:
        return None
    if schema is None:
        return manifest_schema()
    try:
        return json.loads(schema.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--schema {schema}: cannot read a JSON schema ({exc})") from exc


@handle_errors
def evaluate_command(
    gold: Path = typer.Option(..., "--gold", help="Roboflow dataset folder (all splits) or one split folder."),
    pred: Optional[Path] = typer.Option(None, "--pred", help="predictions.jsonl to score."),
    compare: Optional[tuple[Path, Path]] = typer.Option(
        None, "--compare", help="Two predictions.jsonl (before, after) to compare side by side."),
    out_dir: Optional[Path] = typer.Option(
        None, "--out", help="Report folder (default: beside the predictions)."),
    labels: Optional[tuple[str, str]] = typer.Option(
        None, "--labels", help="Names of the two compared sets (default: before after)."),
    schema: Optional[Path] = typer.Option(
        None, "--schema", help="JSON schema for schema validity (default: the pallet manifest schema)."),
    no_schema: bool = typer.Option(False, "--no-schema", help="Do not score schema validity."),
    casefold: bool = typer.Option(False, "--casefold", help="Compare values case-insensitively."),
    numbers: bool = typer.Option(False, "--numbers", help='Compare numbers by value ("1,200.0" = "1200").'),
    no_nfc: bool = typer.Option(False, "--no-nfc", help="Do not apply Unicode NFC to values."),
    keep_whitespace: bool = typer.Option(False, "--keep-whitespace", help="Do not collapse whitespace."),
    row_threshold: float = typer.Option(0.5, "--row-threshold", help="Least similarity for two rows to match."),
    bootstrap: int = typer.Option(0, "--bootstrap", help="Bootstrap resamples for 95% intervals (0: none)."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    max_images: int = typer.Option(50, "--max-images", help="Images shown in report.html/md (all in report.json)."),
    pred_root: Optional[Path] = typer.Option(
        None, "--pred-root", help="Folder that relative prediction paths start from (default: current)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing report in --out."),
) -> None:
    """Score predictions.jsonl against gold (JSON validity, field F1, Donut nTED, rows, totals)."""
    from vlmocr.errors import ConfigError
    from vlmocr.eval.evaluate import EvalConfig
    from vlmocr.eval.normalize import NormalizeConfig

    if (pred is None) == (compare is None):
        raise ConfigError("give either --pred FILE or --compare BEFORE AFTER")
    if not 0.0 <= row_threshold <= 1.0:
        raise ConfigError(f"--row-threshold must be in [0, 1], got {row_threshold}")
    if bootstrap < 0 or max_images < 0:
        raise ConfigError("--bootstrap and --max-images must be >= 0")
    config = EvalConfig(
        normalize=NormalizeConfig(unicode_nfc=not no_nfc, whitespace=not keep_whitespace,
                                  casefold=casefold, numbers=numbers),
        schema=_schema(schema, no_schema), row_threshold=row_threshold, bootstrap=bootstrap,
        seed=seed, max_images=max_images, pred_root=pred_root, overwrite=overwrite,
    )
    if compare is not None:
        _compare(compare, gold, out_dir, config, labels or ("before", "after"))
        return
    from vlmocr.eval.evaluate import evaluate
    from vlmocr.eval.report import LABELS, pct

    assert pred is not None
    target = out_dir or pred.parent / f"{pred.stem}.eval"
    result = evaluate(pred, gold, target, config)
    table = Table(title=f"{pred} vs {gold} ({result.summary.n} images)")
    table.add_column("score")
    table.add_column("value", justify="right")
    for key, label in LABELS.items():
        table.add_row(label, pct(getattr(result.summary, key)))
    out.print(table)
    m = result.match
    out.print(f"failures: {result.summary.failures}")
    c = result.confidence
    if c is not None and c.fields:
        at = next(t for t in c.thresholds if t["threshold"] == 0.9)
        auroc = "n/a" if c.auroc is None else f"{c.auroc:.3f}"
        out.print(f"field confidence: AUROC {auroc}; flagging fields below 0.9 flags {at['flagged']} of {c.fields} "
                  f"and catches {at['errors_caught']} of {c.errors} wrong or hallucinated values")
    if m.missing or m.unmatched or m.duplicates or result.skips:
        out.print(f"[yellow]{len(m.missing)} gold images without prediction, {len(m.unmatched)} "
                  f"predictions without gold, {len(m.duplicates)} duplicates, "
                  f"{len(result.skips)} skipped lines[/]")
    out.print(f"[green]wrote[/] {target}/report.{{json,md,html}}")


def _compare(files: tuple[Path, Path], gold: Path, out_dir: Optional[Path], config, labels) -> None:
    from vlmocr.eval.compare import compare, confidence_rows
    from vlmocr.eval.report import LABELS, pct

    a, b = files
    target = out_dir or b.parent / f"{a.stem}_vs_{b.stem}.compare"
    result = compare(a, b, gold, target, config, labels=tuple(labels))
    deltas = result.deltas()
    table = Table(title=f"{labels[0]} vs {labels[1]} on {gold} ({result.a.summary.n} images)")
    for col in ("score", labels[0], labels[1], "Δ"):
        table.add_column(col, justify="left" if col == "score" else "right")
    for key, label in LABELS.items():
        d = deltas[key]
        table.add_row(label, pct(getattr(result.a.summary, key)), pct(getattr(result.b.summary, key)),
                      "n/a" if d is None else f"{100 * d:+.1f}")
    out.print(table)
    confidence = confidence_rows(result)
    if confidence:  # either side from `extract --confidence`
        side = Table(title="field confidence (— where a side has none)")
        for col in ("", labels[0], labels[1]):
            side.add_column(col, justify="left" if not col else "right")
        for label, va, vb in confidence:
            side.add_row(label, va, vb)
        out.print(side)
    out.print(f"[green]wrote[/] {target}/report.{{json,md,html}}")
