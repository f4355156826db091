"""The server process: readiness needs a real answer, crashes show the log, no orphans on stop.

A fake OpenAI server (tests/unit/test_client_fake_server.py run as a module, with a
grandchild process in its group) stands in for vLLM; the real one is in
tests/integration/test_serve_extract.py.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.unit.test_client_fake_server import Action, FakeOpenAI
from vlmocr.errors import MissingDependencyError, ServerError
from vlmocr.serve import vllm
from vlmocr.serve.engine import ServeConfig
from vlmocr.serve.process import group_members
from vlmocr.serve.vllm import VllmServer, free_port, launch, wait_until_ready

REPO = Path(__file__).resolve().parents[2]
PROBE = {"model": "fake-model", "messages": [], "max_tokens": 1}


def start(tmp_path: Path, argv: list[str], port: int = 9, grace: float = 5.0) -> VllmServer:
    return launch(argv, base_url=f"http://127.0.0.1:{port}/v1", model_name="fake-model", run_dir=tmp_path / "run",
                  env={"PYTHONPATH": str(REPO)}, stop_timeout_s=grace)


def test_ready_after_a_real_answer_and_stop_leaves_no_process(tmp_path: Path) -> None:
    port = free_port()
    server = start(tmp_path, [sys.executable, "-m", "tests.unit.test_client_fake_server", str(port)], port)
    with server:
        seconds = wait_until_ready(server, PROBE, timeout_s=60)
        members = group_members(server.pgid)
        assert seconds > 0 and server.alive()
        assert len(members) >= 2  # the server and its grandchild share the group
    assert group_members(server.pgid) == []
    assert server.process.returncode is not None
    assert "listening" in server.log_path.read_text()


def test_crash_during_startup_reports_the_log_tail(tmp_path: Path) -> None:
    code = "print('ValueError: --max-model-len too large for this model', flush=True); raise SystemExit(3)"
    server = start(tmp_path, [sys.executable, "-c", code])
    with server, pytest.raises(ServerError, match=r"(?s)code 3.*max-model-len too large"):
        wait_until_ready(server, PROBE, timeout_s=30)


def test_log_tail_shows_only_this_servers_lines(tmp_path: Path) -> None:
    """A run folder's log is appended to across starts; a server's tail (in errors, in benchmark records)
    must not show an earlier server's lines."""
    first = start(tmp_path, [sys.executable, "-c", "print('first server: loaded 7.16 GiB', flush=True)"])
    with first:
        first.wait(30)
    assert "first server" in first.log_tail()
    second = start(tmp_path, [sys.executable, "-c", "print('second server: loaded 4.0 GiB', flush=True)"])
    with second:
        second.wait(30)
    assert first.log_path == second.log_path
    assert "second server" in second.log_tail(3000) and "first server" not in second.log_tail(3000)
    assert "first server" in second.log_path.read_text()  # the earlier lines are kept in the file


def test_timeout_reports_and_stops(tmp_path: Path) -> None:
    server = start(tmp_path, [sys.executable, "-c", "print('loading weights', flush=True); import time; time.sleep(60)"])
    with server, pytest.raises(ServerError, match=r"(?s)not ready after 2 s.*loading weights"):
        wait_until_ready(server, PROBE, timeout_s=2)
    assert group_members(server.pgid) == []


def test_health_alone_is_not_ready(tmp_path: Path) -> None:
    """/health answers 200 but the model rejects the image request: that is a failure, not ready."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    with FakeOpenAI(default=Action(status=400)) as fake:
        server = VllmServer(sleeper, base_url=fake.base_url, model_name="fake-model", log_path=tmp_path / "none.log")
        with server, pytest.raises(ServerError, match="rejected the readiness request"):
            wait_until_ready(server, PROBE, timeout_s=20)
        assert len(fake.requests) == 1
    assert group_members(server.pgid) == []


def test_stop_escalates_when_signals_are_ignored(tmp_path: Path) -> None:
    code = ("import signal, subprocess, sys, time;"
            "[signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)];"
            "subprocess.Popen([sys.executable, '-c', 'import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
            " signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(60)']);"
            "print('up', flush=True); time.sleep(60)")
    server = start(tmp_path, [sys.executable, "-c", code], grace=0.5)
    deadline = time.monotonic() + 20
    while "up" not in server.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(group_members(server.pgid)) == 2
    started = time.monotonic()
    server.stop()
    assert group_members(server.pgid) == [] and time.monotonic() - started < 15
    assert server.stop() == server.process.returncode  # idempotent


def test_start_server_needs_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vllm, "installed_vllm", lambda: None)
    with pytest.raises(MissingDependencyError, match="vlmocr\\[cpu\\]"):
        vllm.start_server("Qwen/Qwen2.5-VL-3B-Instruct", ServeConfig())


def test_server_dies_with_a_killed_parent(tmp_path: Path) -> None:
    """If the process that started vLLM is SIGKILLed (no chance to stop it), the kernel ends the server."""
    code = (
        "import sys, time; from pathlib import Path; from vlmocr.serve.vllm import launch;"
        f"s = launch([sys.executable, '-c', 'import time; time.sleep(60)'], base_url='http://127.0.0.1:9/v1',"
        f" model_name='m', run_dir=Path({str(tmp_path / 'run')!r}), env={{}});"
        "print(s.pgid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pgid = int(parent.stdout.readline())
    assert group_members(pgid)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert group_members(pgid) == []


def test_socket_folders_stay_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from vlmocr.serve.process import MAX_SOCKET_DIR, short_temp_dir

    deep = tmp_path / ("d" * 80)
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    folder = short_temp_dir("vlmocr-ipc-")
    try:
        assert folder.is_dir() and len(str(folder)) <= MAX_SOCKET_DIR
        assert len(str(folder / "0d3be61d-be3d-4168-bb51-c8d3761f988f")) < 107
    finally:
        folder.rmdir()
