"""The shipped built-in model reads: `vlmocr extract --offline builtin` through real vLLM (CPU build).

Eight fresh synthetic manifests of the layouts it trained on (the project's own generator, test
split, a seed of its own), extracted the way a user would, scored with the project's evaluator;
two of them again as the pages of a PDF, in the same run, with `--confidence`.
It scores JSON valid 1.000 / field F1 0.956 on 200 such images
(`benchmarks/results/builtin_cpu_run47.json`); random weights score ≈ 0. About two minutes on 2 cores.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(900)]
pytest.importorskip("vllm")

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "vlmocr.cli.app"]
TRAINED_LAYOUTS = "form,two_column,receipt,dense"
N_IMAGES = 8


def _env(tmp: Path) -> dict[str, str]:
    tmp.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "TMPDIR": str(tmp),
           "VLLM_CACHE_ROOT": str(tmp / "vllm-cache"), "NO_COLOR": "1", "COLUMNS": "250"}
    env.pop("VLMOCR_BUILTIN_MODEL", None)  # the shipped model, whatever the caller's shell says
    return env


def test_offline_extract_with_the_builtin_model_reads_manifests(tmp_path: Path) -> None:
    from vlmocr.client.confidence import leaf_spans
    from vlmocr.eval.evaluate import EvalConfig, evaluate

    env = _env(tmp_path / "tmp")
    data = tmp_path / "data"
    synth = subprocess.run([*CLI, "data", "synth", "--out", str(data), "--test", str(N_IMAGES), "--seed", "4242",
                            "--layouts", TRAINED_LAYOUTS, "--augment", "light", "--workers", "1"],
                           check=False, capture_output=True, text=True, env=env, timeout=300)
    assert synth.returncode == 0, synth.stderr
    assert len(list((data / "test").glob("*.jpg"))) == N_IMAGES

    # Two of the pages again as a PDF, 768 px at 300 dpi: `--pdf-dpi 300` (the default) draws them at the
    # size of the images themselves, so the model reads them at its trained scale.
    jpegs = sorted((data / "test").glob("*.jpg"))[:2]
    pages = [Image.open(path).convert("RGB") for path in jpegs]
    pdf = tmp_path / "scans" / "two pages.pdf"
    pdf.parent.mkdir()
    pages[0].save(pdf, save_all=True, append_images=pages[1:], resolution=300)

    pred = tmp_path / "pred.jsonl"
    extract = subprocess.run([*CLI, "extract", str(data / "test"), str(pdf), "--offline", "builtin", "--out", str(pred),
                              "--confidence", "--review", str(tmp_path / "review.csv")],
                             check=False, capture_output=True, text=True, env=env, timeout=600)
    assert extract.returncode == 0, extract.stdout[-3000:] + extract.stderr[-3000:]
    rows = [json.loads(line) for line in pred.read_text().splitlines()]
    assert len(rows) == N_IMAGES + 2
    image_rows = [r for r in rows if ".pdf#page=" not in r["file"]]
    pdf_rows = sorted((r for r in rows if ".pdf#page=" in r["file"]), key=lambda r: r["file"])
    assert [r["file"] for r in pdf_rows] == [f"{pdf}#page=1", f"{pdf}#page=2"]
    images_pred = tmp_path / "pred-images.jsonl"
    images_pred.write_text("".join(json.dumps(r) + "\n" for r in image_rows))

    result = evaluate(images_pred, data, tmp_path / "eval", EvalConfig(overwrite=True))
    summary = result.summary
    assert summary.n == N_IMAGES
    assert summary.json_valid >= 0.9, summary
    assert summary.field_f1 >= 0.6, summary

    # --confidence: every value of every answer has the probability the model gave it, and the wrong values
    # are the less likely ones (AUROC 0.99 on 6 such pages, 0.5 would be chance).
    for row in rows:
        assert set(row["extra"]["confidence"]) == {path for path, _, _ in leaf_spans(row["raw"])}, row["extra"]
        assert all(0.0 <= p <= 1.0 for p in row["extra"]["confidence"].values())
    confidence = result.confidence
    assert confidence is not None and confidence.answers == N_IMAGES and confidence.without_confidence == 0
    if confidence.errors >= 3:
        assert confidence.auroc is not None and confidence.auroc >= 0.75, confidence.to_dict()
    # --review: exactly the values below 0.9, one CSV row each (every answer here is valid and has a confidence)
    with open(tmp_path / "review.csv", newline="") as fh:
        queued = list(csv.DictReader(fh))
    expected = [(r["file"], path) for r in rows for path, p in r["extra"]["confidence"].items() if p < 0.9]
    assert sorted((q["file"], q["field"]) for q in queued) == sorted(expected)
    assert all(q["reason"] == "below 0.9" and float(q["confidence"]) < 0.9 for q in queued)
    order = [q["file"] for q in queued]
    assert order == sorted(order, key=lambda f: (f.split("#page=")[0], int(f.split("#page=")[1]) if "#" in f else 0))
    assert "review" in extract.stdout

    # The PDF's pages: the same number of prompt tokens as their images (the same visual tokens), and
    # they read as well, scored against the gold of the images they were made from.
    tokens = {Path(r["file"]).name: r["prompt_tokens"] for r in image_rows}
    assert [r["prompt_tokens"] for r in pdf_rows] == [tokens[path.name] for path in jpegs]
    pdf_pred = tmp_path / "pred-pdf.jsonl"
    pdf_pred.write_text("".join(json.dumps({**r, "file": str(path)}) + "\n" for r, path in zip(pdf_rows, jpegs)))
    scored = [i.score for i in evaluate(pdf_pred, data, None, EvalConfig()).images if i.prediction is not None]
    assert len(scored) == 2
    assert all(score.json_valid for score in scored)
    assert sum(score.field_f1 for score in scored) / 2 >= 0.6, scored
