"""Atomic checkpoints, resume state, and the run's published model folders (best/, final/).

A checkpoint `RUN/checkpoints/step-NNNNNN/` is written into a temp folder beside it,
every file flushed to disk, the `COMPLETE` marker written last, and only then renamed
into place: a process killed mid-save (even with SIGKILL) leaves a `.partial` folder
that is ignored and cleaned up, and the previous checkpoint untouched. A folder without
`COMPLETE` is never resumed from.

Contents: the model files a server or the exporter needs (LoRA: adapter_config.json +
adapter_model.safetensors; full: config.json + model*.safetensors; always the processor,
tokenizer, chat template and vlmocr.json), plus optimizer.pt, scheduler.pt, rng.pt (every
rank's Python/NumPy/torch/CUDA generator states) and trainer_state.json (step, position
in the data, best score).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from vlmocr.contract import ModelContract, save_contract
from vlmocr.errors import TrainingError
from vlmocr.fileio import atomic_directory, atomic_write_json

log = logging.getLogger(__name__)
COMPLETE = "COMPLETE"
STATE_FILE = "trainer_state.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")


@dataclass
class TrainerState:
    """Where a run is: optimizer steps, data position (micro-batches), best score so far."""

    step: int = 0
    micro_step: int = 0
    samples_seen: int = 0
    tokens_seen: int = 0
    best_score: float | None = None
    best_step: int | None = None
    train_seconds: float = 0.0
    world_size: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainerState:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def checkpoint_dir(run: Path, step: int) -> Path:
    return Path(run) / "checkpoints" / f"step-{step:06d}"


def complete_checkpoints(run: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (folders without COMPLETE are skipped)."""
    root = Path(run) / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STEP_DIR.match(path.name)
        if match and path.is_dir() and (path / COMPLETE).is_file():
            found.append((int(match.group(1)), path))
    return [p for _, p in sorted(found)]


def latest_checkpoint(run: Path) -> Path | None:
    done = complete_checkpoints(run)
    return done[-1] if done else None


def clean_partials(run: Path) -> list[Path]:
    """Remove leftovers of interrupted saves (temp folders and step folders without COMPLETE)."""
    removed: list[Path] = []
    for path in Path(run).glob(".*"):  # interrupted publishes of best/ or final/
        if path.is_dir() and path.name.endswith((".partial", ".old")):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    root = Path(run) / "checkpoints"
    if not root.is_dir():
        return removed
    for path in root.iterdir():
        partial = path.name.startswith(".") and path.name.endswith((".partial", ".old"))
        incomplete = _STEP_DIR.match(path.name) and path.is_dir() and not (path / COMPLETE).is_file()
        if path.is_dir() and (partial or incomplete):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    for path in removed:
        log.warning("removed incomplete checkpoint %s (an interrupted save)", path)
    return removed


def _fsync_tree(directory: Path) -> None:
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_model_files(model: Any, processor: Any, directory: Path, contract: ModelContract) -> None:
    """What a server or the exporter needs: weights or adapter, processor files, vlmocr.json."""
    from vlmocr.models.build import make_readable, write_resolution

    model.save_pretrained(directory, safe_serialization=True)
    processor.save_pretrained(directory)
    write_resolution(directory, contract.resolution)
    save_contract(directory, contract)
    make_readable(Path(directory))


def publish_model(model: Any, processor: Any, directory: Path, contract: ModelContract) -> Path:
    """Atomically replace `directory` (RUN/best or RUN/final) with the current model files."""
    with atomic_directory(Path(directory), overwrite=True) as tmp:
        save_model_files(model, processor, tmp, contract)
        (tmp / COMPLETE).write_text("", encoding="utf-8")
        _fsync_tree(tmp)
    return Path(directory)


def save_checkpoint(
    run: Path, *, model: Any, processor: Any, contract: ModelContract, optimizer: Any, scheduler: Any,
    state: TrainerState, rng_states: list[dict[str, Any]],
) -> Path:
    """Write checkpoint `state.step` atomically; return its folder."""
    import torch

    final = checkpoint_dir(run, state.step)
    with atomic_directory(final, overwrite=True) as tmp:
        save_model_files(model, processor, tmp, contract)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(rng_states, tmp / "rng.pt")
        atomic_write_json(tmp / STATE_FILE, state.to_dict())
        _fsync_tree(tmp)
        (tmp / COMPLETE).write_text(json.dumps({"step": state.step}) + "\n", encoding="utf-8")
        _fsync_tree(tmp)
    return final


def rotate_checkpoints(run: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest `keep_last` complete checkpoints."""
    done = complete_checkpoints(run)
    removed = done[:-keep_last] if keep_last > 0 else []
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


@dataclass
class ResumePoint:
    path: Path
    state: TrainerState
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng_states: list[dict[str, Any]]


def load_resume_point(path: Path) -> ResumePoint:
    """Read a complete checkpoint's training state (the weights are loaded by the model loader)."""
    import torch

    path = Path(path)
    if not (path / COMPLETE).is_file():
        raise TrainingError(f"{path} is not a complete checkpoint (no {COMPLETE} marker)")
    try:
        state = TrainerState.from_dict(json.loads((path / STATE_FILE).read_text(encoding="utf-8")))
        optimizer = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=False)
        scheduler = torch.load(path / "scheduler.pt", map_location="cpu", weights_only=False)
        rng = torch.load(path / "rng.pt", map_location="cpu", weights_only=False)
    except (OSError, ValueError, RuntimeError) as exc:
        raise TrainingError(f"{path}: cannot read checkpoint state ({exc})") from exc
    return ResumePoint(path, state, optimizer, scheduler, rng)


def capture_rng() -> dict[str, Any]:
    """This process's random generator states (Python, NumPy, torch CPU and CUDA)."""
    import random

    import numpy as np
    import torch

    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    import random

    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
