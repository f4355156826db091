"""The shipped built-in model reads: `vlmocr extract --offline builtin` through real vLLM (CPU build).

Eight fresh synthetic manifests of the layouts it trained on (the project's own generator, test
split, a seed of its own), extracted the way a user would, scored with the project's evaluator.
It scores JSON valid 1.000 / field F1 0.920 on 200 such images
(`benchmarks/results/builtin_cpu_run33.json`); random weights score ≈ 0. About two minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    from vlmocr.eval.evaluate import EvalConfig, evaluate

    env = _env(tmp_path / "tmp")
    data = tmp_path / "data"
    synth = subprocess.run([*CLI, "data", "synth", "--out", str(data), "--test", str(N_IMAGES), "--seed", "4242",
                            "--layouts", TRAINED_LAYOUTS, "--augment", "light", "--workers", "1"],
                           check=False, capture_output=True, text=True, env=env, timeout=300)
    assert synth.returncode == 0, synth.stderr
    assert len(list((data / "test").glob("*.jpg"))) == N_IMAGES

    pred = tmp_path / "pred.jsonl"
    extract = subprocess.run([*CLI, "extract", str(data / "test"), "--offline", "builtin", "--out", str(pred)],
                             check=False, capture_output=True, text=True, env=env, timeout=600)
    assert extract.returncode == 0, extract.stdout[-3000:] + extract.stderr[-3000:]
    rows = [json.loads(line) for line in pred.read_text().splitlines()]
    assert len(rows) == N_IMAGES

    result = evaluate(pred, data, tmp_path / "eval", EvalConfig(overwrite=True))
    summary = result.summary
    assert summary.n == N_IMAGES
    assert summary.json_valid >= 0.9, summary
    assert summary.field_f1 >= 0.6, summary
