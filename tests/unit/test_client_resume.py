"""Resume after an interrupted run, compaction, overwrite, and the CSV view."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.unit.test_client_fake_server import Action, FakeOpenAI, manifest
from tests.unit.test_client_faults import make_images, run
from vlmocr.client.output import read_output

REPO = Path(__file__).resolve().parents[2]


def row(file: Path, **fields: object) -> str:
    base = {"file": str(file), "json": None, "error": None, "raw": None, "attempts": 1}
    base.update(fields)
    return json.dumps(base)


def test_resume_skips_final_rows_and_redoes_the_rest(tmp_path: Path) -> None:
    images = make_images(tmp_path / "img", 5)
    out = tmp_path / "preds.jsonl"
    out.write_text(
        row(images[0], json={"kept": True}) + "\n"                      # done: skipped
        + row(images[1], error="invalid_json: x", raw="{") + "\n"     # content failure: final
        + row(images[2], error="server_error: HTTP 503 (after 6 attempts)") + "\n"  # transient: redo
        + row(images[3], json={"partial": 1})[:25]                    # cut off mid-write, no newline
    )
    with FakeOpenAI() as fake:
        result, _ = run(fake, images, tmp_path)
    assert len(fake.requests) == 3  # images 2 (transient before), 3 (cut off) and 4 (new)
    assert (result.total, result.skipped, result.attempted, result.ok) == (5, 2, 3, 3)
    assert result.dropped_lines == 2  # the cut-off line and the superseded transient row
    lines = out.read_text().splitlines()
    rows = [json.loads(line) for line in lines]  # every line parses after compaction
    assert [r["file"] for r in rows] == [str(p) for p in images]
    assert rows[0]["json"] == {"kept": True}  # nothing already written is lost
    assert rows[1]["error"] == "invalid_json: x"
    assert all(r["json"] == manifest() for r in rows[2:])


def test_rerun_of_a_complete_file_sends_nothing(tmp_path: Path) -> None:
    images = make_images(tmp_path / "img", 3)
    with FakeOpenAI() as fake:
        run(fake, images, tmp_path)
        before = (tmp_path / "preds.jsonl").read_bytes()
        result, _ = run(fake, images, tmp_path)
    assert len(fake.requests) == 3 and result.skipped == 3 and result.attempted == 0
    assert (tmp_path / "preds.jsonl").read_bytes() == before


def test_overwrite_starts_afresh(tmp_path: Path) -> None:
    images = make_images(tmp_path / "img", 2)
    (tmp_path / "preds.jsonl").write_text(row(images[0], json={"old": 1}) + "\n")
    with FakeOpenAI() as fake:
        result, rows = run(fake, images, tmp_path, mode="overwrite")
    assert result.skipped == 0 and len(fake.requests) == 2 and len(rows) == 2
    assert all(r["json"] == manifest() for r in rows)


def test_killed_cli_run_resumes_where_it_stopped(tmp_path: Path) -> None:
    make_images(tmp_path / "img", 8)
    out = tmp_path / "preds.jsonl"
    cmd = [sys.executable, "-m", "vlmocr.cli.app", "extract", str(tmp_path / "img"), "--out", str(out),
           "--concurrency", "1"]
    with FakeOpenAI(default=Action(delay=0.25)) as fake:
        proc = subprocess.Popen([*cmd, "--server", fake.base_url], cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(read_output(out).rows) < 3:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        first_run = len(read_output(out).rows)
        assert 3 <= first_run < 8
        sent_before = len(fake.requests)
        done = subprocess.run([*cmd, "--server", fake.base_url, "--csv", str(tmp_path / "p.csv")], cwd=REPO,
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(fake.requests) - sent_before == 8 - first_run
    final = read_output(out)
    assert len(final.rows) == 8 and not final.bad_lines
    assert all(r["json"] == manifest() for r in final.rows.values())
    with open(tmp_path / "p.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 8
    assert table[0]["route"] == "v-route" and table[0]["products.0.description"] == "1"
    assert set(table[0]) >= {"file", "error", "attempts", "latency_s"}
