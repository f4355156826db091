"""The built-in model: a small Qwen2.5-VL trained from scratch on synthetic manifests.

It ships inside the package (`vlmocr/assets/builtin/`) so the demo and `extract` work
offline. `VLMOCR_BUILTIN_MODEL` points at another directory instead (e.g. a newer
training run). Until weights are shipped, `builtin_model_path()` returns None and callers
fall back to a freshly built random model.
"""

from __future__ import annotations

import os
from pathlib import Path

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "assets" / "builtin"
ENV_VAR = "VLMOCR_BUILTIN_MODEL"


def _complete(path: Path) -> bool:
    return (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def builtin_model_path() -> Path | None:
    """The built-in model's directory, or None if no complete one is available."""
    override = os.environ.get(ENV_VAR)
    if override:
        path = Path(override)
        return path if _complete(path) else None
    return BUILTIN_DIR if _complete(BUILTIN_DIR) else None
