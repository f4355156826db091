"""Self-contained HTML for evaluation reports: tables, thumbnails (base64), highlighted diffs.

No external assets: CSS is inline and each picture is a downscaled JPEG data URL, so the
file can be mailed or opened from anywhere. Only the worst `max_images` images get a
section (report.json has all of them).
"""

from __future__ import annotations

import difflib
import html
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from vlmocr.errors import ImageError
from vlmocr.eval.confidence import count
from vlmocr.records import answer_confidence_map

if TYPE_CHECKING:
    from vlmocr.eval.align import FieldResult
    from vlmocr.eval.evaluate import EvalResult, ImageResult

log = logging.getLogger(__name__)

CSS = """
:root{--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--hal:#8250df;--mute:#6e7781;--line:#d0d7de}
*{box-sizing:border-box}
body{font:14px/1.45 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
main{max-width:1280px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 10px;border-bottom:1px solid var(--line);padding-bottom:4px}
.meta{color:var(--mute);margin-bottom:8px;word-break:break-all}
table{border-collapse:collapse;background:#fff;border:1px solid var(--line)}
th,td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#f0f3f6;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:inline-block;height:8px;background:#2da44e;border-radius:4px;vertical-align:middle;margin-right:6px}
.bar.bg{background:#e6e9ec;width:80px;position:relative}.bar.bg>span{position:absolute;left:0;top:0;height:8px;border-radius:4px;background:#2da44e}
.delta-up{color:var(--ok);font-weight:600}.delta-down{color:var(--bad);font-weight:600}
.chip{display:inline-block;padding:1px 8px;border-radius:10px;background:#eaeef2;margin:2px 4px 2px 0;font-size:12px}
.chip.bad{background:#ffebe9;color:var(--bad)}.chip.ok{background:#dafbe1;color:var(--ok)}
.card{background:#fff;border:1px solid var(--line);border-radius:6px;margin:14px 0;padding:12px;display:flex;gap:16px}
.card .pic{flex:0 0 auto;max-width:340px;position:sticky;top:8px;align-self:flex-start}.card .pic img{max-width:320px;border:1px solid var(--line)}
.card .body{flex:1 1 auto;min-width:0;overflow-x:auto}
.card h3{margin:0 0 6px;font-size:15px;word-break:break-all}
.fields{width:100%}.fields td:first-child,.fields td.st,.fields small{white-space:nowrap}
details>summary{cursor:pointer;color:var(--mute);margin:6px 0}
.fields td{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px;max-width:360px;word-break:break-word}
.fields tr.correct td{color:var(--mute)}
.fields tr.wrong td.st{color:var(--warn);font-weight:600}
.fields tr.missing td.st{color:var(--bad);font-weight:600}
.fields tr.hallucinated td.st{color:var(--hal);font-weight:600}
.s-wrong{color:var(--warn);font-weight:600}.s-missing{color:var(--bad);font-weight:600}.s-hallucinated{color:var(--hal);font-weight:600}
del{background:#ffcecb;text-decoration:none;border-radius:2px}
ins{background:#aceebb;text-decoration:none;border-radius:2px}
.none{color:#b0b7be;font-style:italic}
pre.raw{white-space:pre-wrap;word-break:break-all;background:#fff8c5;padding:8px;border:1px solid #eedd99;max-height:240px;overflow:auto;font-size:12px}
.noimg{width:200px;height:120px;display:flex;align-items:center;justify-content:center;background:#eaeef2;color:var(--mute)}
"""


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def bar(value: float | None) -> str:
    width = 0 if value is None else max(0.0, min(1.0, value)) * 80
    return f'<span class="bar bg"><span style="width:{width:.0f}px"></span></span>'


def page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head>"
            f"<body><main>{body}</main></body></html>\n")


def thumbnail(path: Path, px: int) -> str | None:
    """A downscaled JPEG data URL of the image, or None if it cannot be read safely."""
    from vlmocr.images import open_image, to_data_url

    try:
        image = open_image(path)
    except ImageError as exc:
        log.warning("no thumbnail for %s: %s", path, exc)
        return None
    image.thumbnail((px, px))
    return to_data_url(image, fmt="JPEG", quality=80)


def picture(path: Path, px: int) -> str:
    url = thumbnail(path, px)
    if url is None:
        return '<div class="noimg">image unavailable</div>'
    return f'<img src="{url}" alt="{esc(path.name)}">'


def highlight(gold: str | None, pred: str | None) -> tuple[str, str]:
    """HTML of both values with the characters that differ marked (del in gold, ins in pred)."""
    if gold is None or pred is None:
        none = '<span class="none">—</span>'
        return (esc(gold) if gold is not None else none, esc(pred) if pred is not None else none)
    if gold == pred:
        return esc(gold), esc(pred)
    g_out, p_out = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, gold, pred, autojunk=False).get_opcodes():
        g_part, p_part = esc(gold[i1:i2]), esc(pred[j1:j2])
        if op == "equal":
            g_out.append(g_part)
            p_out.append(p_part)
        else:
            if g_part:
                g_out.append(f"<del>{g_part}</del>")
            if p_part:
                p_out.append(f"<ins>{p_part}</ins>")
    return "".join(g_out), "".join(p_out)


def field_table(fields: Sequence[FieldResult], confidence: dict[str, float] | None = None) -> str:
    """Field rows; with an answer's confidence map, a column of each predicted value's probability."""
    rows = []
    for f in fields:
        g, p = highlight(f.gold, f.pred)
        conf = ""
        if confidence is not None:
            prob = confidence.get(f.pred_where) if f.pred_where is not None else None
            conf = f'<td class="num">{"" if prob is None else f"{prob:.3f}"}</td>'
        rows.append(f'<tr class="{f.status}"><td>{esc(f.where or "(root)")}</td><td>{g}</td>'
                    f'<td>{p}</td>{conf}<td class="st">{f.status}</td></tr>')
    head = "<th class=num title='the probability the model gave this value'>confidence</th>" if confidence is not None else ""
    return ('<table class="fields"><tr><th>field</th><th>gold</th><th>predicted</th>' + head + "<th>status</th></tr>"
            + "".join(rows) + "</table>")


def score_chips(image: ImageResult) -> str:
    s = image.score
    c = s.counts
    chips = [
        f'<span class="chip">nTED acc. {pct(s.ted_accuracy)}</span>',
        f'<span class="chip">field F1 {pct(s.field_f1)}</span>',
    ]
    if s.exact_match:
        chips.append('<span class="chip ok">exact match</span>')
    if s.error == "missing":
        chips.append('<span class="chip bad">no prediction</span>')
    elif not s.json_valid:
        chips.append('<span class="chip bad">no valid JSON</span>')
    if s.error and s.error != "missing":
        chips.append(f'<span class="chip bad">{esc(s.error)}</span>')
    for status in ("wrong", "missing", "hallucinated"):
        if c[status]:
            chips.append(f'<span class="chip">{c[status]} {status}</span>')
    return "".join(chips)


def fields_block(image: ImageResult) -> str:
    """Fields that are not correct, then the correct ones folded; all folded if no answer."""
    fields = image.score.fields
    if not image.score.json_valid:
        return f"<details><summary>gold fields ({len(fields)})</summary>{field_table(fields)}</details>"
    confidence = answer_confidence_map(image.prediction.extra) if image.prediction is not None else None
    differing = [f for f in fields if f.status != "correct"]
    correct = [f for f in fields if f.status == "correct"]
    out = field_table(differing, confidence) if differing else ""
    if correct:
        out += (f"<details><summary>{len(correct)} correct fields</summary>"
                f"{field_table(correct, confidence)}</details>")
    return out


def raw_block(image: ImageResult) -> str:
    p = image.prediction
    if image.score.json_valid or p is None or not p.raw:
        return ""
    text = p.raw if len(p.raw) <= 2000 else p.raw[:2000] + " …"
    return f'<p>Raw answer:</p><pre class="raw">{esc(text)}</pre>'


def summary_table(result: EvalResult) -> str:
    from vlmocr.eval.report import summary_rows

    has_ci = bool(result.summary.intervals)
    head = "<tr><th>score</th><th class=num>value</th><th></th>" + ("<th>95% CI</th>" if has_ci else "") + "</tr>"
    rows = [f"<tr><td>{esc(label)}</td><td class=num>{pct(v)}</td><td>{bar(v)}</td>"
            + (f"<td>{esc(ci)}</td>" if has_ci else "") + "</tr>"
            for _, label, v, ci in summary_rows(result.summary)]
    return "<table>" + head + "".join(rows) + "</table>"


def per_field_table(result: EvalResult) -> str:
    from vlmocr.eval.report import field_sort_key

    head = ("<tr><th>field</th><th class=num>accuracy</th><th></th><th class=num>similarity</th>"
            "<th class=num>F1</th><th class=num>correct</th><th class=num>wrong</th>"
            "<th class=num title='wrong values within two character edits of the gold value'>of them "
            "&le; 2 chars off</th><th class=num>missing</th><th class=num>hallucinated</th></tr>")
    rows = [f"<tr><td><code>{esc(f.path)}</code></td><td class=num>{pct(f.accuracy)}</td>"
            f"<td>{bar(f.accuracy)}</td><td class=num>{pct(f.similarity)}</td><td class=num>{pct(f.f1)}</td>"
            f"<td class=num>{f.correct}</td><td class=num>{f.wrong}</td><td class=num>{f.near_misses}</td>"
            f"<td class=num>{f.missing}</td>"
            f"<td class=num>{f.hallucinated}</td></tr>"
            for f in sorted(result.summary.fields, key=field_sort_key)]
    return "<table>" + head + "".join(rows) + "</table>"


def confidence_section(result: EvalResult) -> str:
    """Thresholds, review shares and calibration bins of the field confidence; empty without one."""
    c = result.confidence
    if c is None:
        return ""

    def num(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    intro = (f"<p>{c.fields} predicted fields of {c.answers} answers carry a confidence, {c.errors} of them "
             f"wrong or hallucinated. AUROC {num(c.auroc)} (the chance a wrong field is less confident than a "
             f"right one; 0.5 is chance), calibration gap (ECE) {num(c.ece)}. {c.missing} gold fields the answers "
             f"left out have no confidence and cannot be flagged.</p>")
    if c.answers_without:
        reasons = ", ".join(f"{k} ({v})" for k, v in c.errors_by_reason.items())
        intro += f"<p>{c.answers_without} accepted answers have no confidence: {esc(reasons)}.</p>"
    flags = "".join(
        f"<tr><td class=num>{t['threshold']}</td><td class=num>{t['flagged']}</td><td class=num>"
        f"{pct(t['flagged_share'])}</td><td class=num>{t['errors_caught']}</td><td class=num>"
        f"{pct(t['error_recall'])}</td><td>{bar(t['error_recall'])}</td><td class=num>"
        f"{pct(t['accuracy_unflagged'])}</td></tr>" for t in c.thresholds)
    review = "".join(
        f"<tr><td class=num>{pct(r['share'])}</td><td class=num>{r['fields']}</td><td class=num>"
        f"{count(r['errors_caught'])}</td><td class=num>{pct(r['error_recall'])}</td></tr>" for r in c.review)
    bins = "".join(
        f"<tr><td>[{b['lo']}, {b['hi']}{']' if b['hi'] == 1.0 else ')'}</td><td class=num>{b['fields']}</td>"
        f"<td class=num>{pct(b['accuracy'])}</td><td>{bar(b['accuracy'])}</td><td class=num>"
        f"{num(b['mean_confidence'])}</td></tr>" for b in c.bins)
    per_field = "".join(
        f"<tr><td><code>{esc(f['path'])}</code></td><td class=num>{f['fields']}</td><td class=num>{f['errors']}</td>"
        f"<td class=num>{num(f['mean_confidence_right'])}</td><td class=num>{num(f['mean_confidence_wrong'])}</td>"
        f"<td class=num>{num(f['auroc'])}</td><td class=num>{f['flagged_below_0.9']}</td>"
        f"<td class=num>{f['errors_caught_below_0.9']}</td></tr>" for f in c.per_field)
    return (
        "<h2>Field confidence</h2>" + intro
        + "<table><tr><th class=num>flag fields below</th><th class=num>flagged</th><th class=num>of all fields</th>"
          "<th class=num>errors caught</th><th class=num>of all errors</th><th></th>"
          "<th class=num>accuracy of the rest</th></tr>" + flags + "</table><p></p>"
        + "<table><tr><th class=num>review the least confident</th><th class=num>fields</th>"
          "<th class=num>errors caught</th><th class=num>of all errors</th></tr>" + review + "</table><p></p>"
        + "<table><tr><th>confidence</th><th class=num>fields</th><th class=num>accuracy</th><th></th>"
          "<th class=num>mean confidence</th></tr>" + bins + "</table><p></p>"
        + "<table><tr><th>field</th><th class=num>values</th><th class=num>wrong</th>"
          "<th class=num>mean confidence, right</th><th class=num>mean confidence, wrong</th>"
          "<th class=num>AUROC</th><th class=num>below 0.9</th><th class=num>wrong ones below 0.9</th></tr>"
        + per_field + "</table>"
    )


def render_html(result: EvalResult) -> str:
    """The whole report page."""
    s, m, config = result.summary, result.match, result.config
    failures = "".join(f'<span class="chip">{esc(k)}: {v}</span>' for k, v in s.failures.items())
    notes = []
    if m.missing:
        notes.append(f"{len(m.missing)} gold images had no prediction (scored as empty answers).")
    if m.unmatched:
        listed = ", ".join(esc(p.file) for p in m.unmatched[:10])
        notes.append(f"{len(m.unmatched)} predictions had no gold image (not scored): {listed}"
                     + (" …" if len(m.unmatched) > 10 else ""))
    if m.duplicates:
        notes.append(f"{len(m.duplicates)} duplicate predictions were ignored.")
    if result.skips:
        notes.append(f"{len(result.skips)} input lines were skipped (see report.json).")
    shown = result.images[: config.max_images]
    cards = []
    for image in shown:
        cards.append(
            f'<div class="card"><div class="pic">{picture(image.record.image_path, config.thumbnail_px)}</div>'
            f'<div class="body"><h3>{esc(image.key)}</h3><div>{score_chips(image)}</div>'
            f"{raw_block(image)}{fields_block(image)}</div></div>"
        )
    body = (
        f"<h1>Evaluation report</h1>"
        f'<div class="meta">predictions <code>{esc(result.predictions.resolve())}</code> · gold '
        f"<code>{esc(result.gold.resolve())}</code> · {s.n} images</div>"
        + "".join(f'<div class="meta">{n}</div>' for n in notes)
        + "<h2>Summary</h2>" + summary_table(result)
        + f"<h2>Failure breakdown</h2><div>{failures}</div>"
        + "<h2>Per field (worst first)</h2>" + per_field_table(result)
        + confidence_section(result)
        + f"<h2>Images, worst first ({len(shown)} of {len(result.images)})</h2>"
        + "".join(cards)
    )
    return page("vlmocr evaluation report", body)
