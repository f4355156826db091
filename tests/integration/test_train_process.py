"""`vlmocr train` as a process: SIGKILL in the middle of a checkpoint save, SIGTERM to the whole
process group, and two-process DDP.

Both start real `vlmocr train` processes on the tiny model (CPU, one thread each).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from vlmocr.train.checkpoint import COMPLETE, complete_checkpoints, latest_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "vlmocr.cli.app", "train"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}


def _write_config(path: Path, model: Path, out: Path, **extra: Any) -> Path:
    data: dict[str, Any] = {
        "model": str(model), "out": str(out), "batch_size": 2, "max_steps": 200, "log_every": 1,
        "prompt": {"system": "Extract the manifest as JSON.", "question": "extract data in JSON format"},
        "data": {"synth": {"size": [320, 320], "augment": "none", "max_products": 1}},
        "eval": {"n_samples": 0}, "checkpoint": {"every_steps": 1, "keep_last": 3},
    }
    data.update(extra)
    path.write_text(yaml.safe_dump(data))
    return path


def _partials(run: Path) -> list[Path]:
    root = run / "checkpoints"
    return [p for p in root.iterdir() if p.name.endswith(".partial")] if root.is_dir() else []


def _kill_during_save(config: Path, run: Path, log: Path, resume: bool) -> bool:
    """Start training; SIGKILL it as soon as a save is in progress after a complete one exists."""
    with log.open("a") as fh:
        proc = subprocess.Popen([*CLI, str(config), *(["--resume"] if resume else [])],
                                env=_env(), stdout=fh, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if complete_checkpoints(run) and _partials(run):
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return bool(_partials(run))
            time.sleep(0.001)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    raise AssertionError(f"training ended before a save could be interrupted:\n{log.read_text()[-3000:]}")


def test_sigkill_during_save_leaves_the_previous_checkpoint_usable(tiny_model: Path, tmp_path: Path) -> None:
    from vlmocr.train.config import load_config
    from vlmocr.train.trainer import train

    run = tmp_path / "run"
    config = _write_config(tmp_path / "train.yaml", tiny_model, run)
    log = tmp_path / "train.log"
    caught = any(_kill_during_save(config, run, log, resume=attempt > 0) for attempt in range(3))
    assert caught, "never caught a save in progress"
    partial = _partials(run)
    assert partial and not any((p / COMPLETE).exists() for p in partial)
    latest = latest_checkpoint(run)
    assert latest is not None and (latest / COMPLETE).is_file()
    state = json.loads((latest / "trainer_state.json").read_text())
    assert latest.name == f"step-{state['step']:06d}"

    import torch

    torch.set_num_threads(1)
    result = train(load_config(config, {"max_steps": state["step"] + 2, "checkpoint.every_steps": 0}), resume=True)
    assert result.resumed_from == latest and result.steps == state["step"] + 2
    assert not _partials(run)  # the interrupted save was cleaned up, never loaded
    assert (run / "final" / "adapter_model.safetensors").is_file()


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun not installed")
def test_two_process_ddp_matches_one_process_with_the_same_global_batch(tiny_model: Path, tmp_path: Path) -> None:
    """torchrun (gloo on CPU) runs the unchanged command; rank blocks = one process's batch of 2x."""
    torchrun = str(Path(sys.executable).parent / "torchrun")
    ddp_run, single_run = tmp_path / "ddp", tmp_path / "single"
    common = {"max_steps": 3, "checkpoint": {"every_steps": 0}, "lora": {"dropout": 0.0}}
    ddp_cfg = _write_config(tmp_path / "ddp.yaml", tiny_model, ddp_run, batch_size=1, **common)
    single_cfg = _write_config(tmp_path / "single.yaml", tiny_model, single_run, batch_size=2, **common)
    ddp = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "vlmocr.cli.app", "train",
                          str(ddp_cfg)], env=_env(), capture_output=True, text=True, timeout=400)
    assert ddp.returncode == 0, ddp.stdout[-3000:] + ddp.stderr[-3000:]
    single = subprocess.run([*CLI, str(single_cfg)], env=_env(), capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]

    def rows(run: Path) -> list[dict[str, Any]]:
        return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]

    ddp_rows, single_rows = rows(ddp_run), rows(single_run)
    assert [r["step"] for r in ddp_rows] == [1, 2, 3]  # one writer: rank 0
    assert json.loads((ddp_run / "provenance.json").read_text())["world_size"] == 2
    for a, b in zip(ddp_rows, single_rows):
        assert a["samples_seen"] == b["samples_seen"]
        assert math.isclose(a["loss"], b["loss"], rel_tol=1e-4), (a["loss"], b["loss"])
    assert (ddp_run / "final" / "adapter_model.safetensors").is_file()


def test_sigterm_to_the_process_group_saves_instead_of_crashing(tiny_model: Path, tmp_path: Path) -> None:
    # Schedulers and `kill -- -PGID` signal every process of the job, data-loader workers too:
    # the trainer must still finish its step, save a checkpoint and exit 128+15.
    run = tmp_path / "run"
    config = _write_config(tmp_path / "train.yaml", tiny_model, run,
                           checkpoint={"every_steps": 1000, "keep_last": 1})
    data = yaml.safe_load(config.read_text())
    data["data"]["num_workers"] = 1
    config.write_text(yaml.safe_dump(data))
    log = tmp_path / "train.log"
    with log.open("w") as fh:
        proc = subprocess.Popen([*CLI, str(config)], env=_env(), stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, log.read_text()[-3000:]
        os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = log.read_text()
    assert code == 128 + signal.SIGTERM, text[-3000:]
    assert "DataLoader worker" not in text
    saved = latest_checkpoint(run)
    assert saved is not None and (saved / COMPLETE).exists()
