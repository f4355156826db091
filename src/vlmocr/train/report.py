"""The run's metrics.jsonl (one JSON row per logged step or evaluation) and its loss.png.

Rows are appended and flushed as they happen, so a killed run keeps its history. On
resume, rows after the checkpoint's step are dropped first (they belong to the part of
the run that is being redone), so the curve never shows a step twice.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from vlmocr.fileio import atomic_write_text

log = logging.getLogger(__name__)
METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss.png"


class MetricsLog:
    def __init__(self, run: Path, *, enabled: bool = True) -> None:
        self.path = Path(run) / METRICS_FILE
        self.enabled = enabled

    def truncate_after(self, step: int) -> None:
        """Keep only rows up to `step` (resuming from a checkpoint at `step`)."""
        if not self.enabled or not self.path.is_file():
            return
        kept = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                if line.strip() and _row_step(line) <= step]
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))

    def write(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()

    def rows(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _row_step(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (json.JSONDecodeError, TypeError, ValueError):
        return 0


def plot_loss(run: Path, rows: list[dict[str, Any]], *, metric: str | None = None) -> Path | None:
    """Training loss by step, and the evaluation score on a second axis, as RUN/loss.png."""
    train = [(r["step"], r["loss"]) for r in rows if r.get("kind") == "train" and r.get("loss") is not None]
    if not train:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot([s for s, _ in train], [v for _, v in train], label="train loss", color="tab:blue")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (answer tokens)")
    ax.grid(alpha=0.3)
    evals = [(r["step"], r["score"]) for r in rows if r.get("kind") == "eval" and r.get("score") is not None]
    if evals:
        ax2 = ax.twinx()
        ax2.plot([s for s, _ in evals], [v for _, v in evals], "o-", color="tab:orange",
                 label=f"eval {metric or 'score'}")
        ax2.set_ylabel(f"eval {metric or 'score'}")
        ax2.set_ylim(-0.02, 1.02)
        ax2.legend(loc="upper right")
    ax.legend(loc="upper left")
    fig.tight_layout()
    path = Path(run) / PLOT_FILE
    tmp = path.with_name(f".{PLOT_FILE}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
