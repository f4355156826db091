"""Real vLLM (CPU build): `vlmocr serve --replicas 2`, `vlmocr extract` over both, and a replica that dies.

Two servers of the tiny model started one after the other (≈ 2 × 50-90 s on 2 cores). The extract
gets both URLs and every image is answered; each server's own request counter shows it took a
share. Then one replica's vLLM is killed: `vlmocr serve` must say which one died, stop the other
and leave no process behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.test_serve_extract import BOUNDED_SCHEMA, CLI, _env, make_images, read_rows
from vlmocr.serve.process import group_members

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(900)]
pytest.importorskip("vllm")


def requests_served(url: str) -> float:
    """vLLM's count of finished requests, from its Prometheus /metrics."""
    text = httpx.get(url.removesuffix("/v1") + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("vllm:request_success_total"))


def test_two_replicas_share_the_work_and_stop_together(tiny_model: Path, tmp_path: Path) -> None:
    log = tmp_path / "serve-cli.log"
    with open(log, "w") as fh:
        process = subprocess.Popen(
            [*CLI, "serve", str(tiny_model), "--replicas", "2", "--port", "0", "--max-tokens", "128",
             "--run-dir", str(tmp_path / "run")],
            stdout=fh, stderr=subprocess.STDOUT, text=True, env=_env(tmp_path / "tmp"), start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 600
        ready: list[tuple[str, int]] = []
        while time.monotonic() < deadline and process.poll() is None and len(ready) < 2:
            ready = [(url, int(pid)) for url, pid in re.findall(r"ready (\S+) model .*\(vLLM pid (\d+)\)", log.read_text())]
            time.sleep(1)
        assert len(ready) == 2, f"two replicas should be ready:\n{log.read_text()[-3000:]}"
        (a, a_pid), (b, b_pid) = ready
        assert a != b and f"--server {a} --server {b}" in log.read_text()  # the hint names both

        make_images(tmp_path / "images", 8)
        (tmp_path / "schema.json").write_text(json.dumps(BOUNDED_SCHEMA))
        out = tmp_path / "preds.jsonl"
        before = requests_served(a), requests_served(b)
        done = subprocess.run(
            [*CLI, "extract", str(tmp_path / "images"), "--server", a, "--server", b, "--schema",
             str(tmp_path / "schema.json"), "--out", str(out), "--concurrency", "4", "--max-tokens", "96"],
            capture_output=True, text=True, env=_env(tmp_path / "tmp"), timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        rows = read_rows(out)
        assert len(rows) == 8 and all(row["error"] is None for row in rows), rows
        served = requests_served(a) - before[0], requests_served(b) - before[1]
        assert served[0] >= 2 and served[1] >= 2 and sum(served) == 8, served

        os.killpg(b_pid, signal.SIGKILL)  # one replica dies: the command stops the other and says why
        assert process.wait(120) != 0
        text = log.read_text()
        assert f"vLLM at {b} exited" in text and "the other replicas are stopped" in text, text[-2000:]
        deadline = time.monotonic() + 30
        while (group_members(a_pid) or group_members(b_pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert group_members(a_pid) == [] and group_members(b_pid) == []
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            process.wait(120)
