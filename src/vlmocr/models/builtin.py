"""The built-in model: a small Qwen2.5-VL trained from scratch on synthetic manifests.

It ships inside the package (`vlmocr/assets/builtin/`, model card in its README.md) so the
demo and `extract` work offline. `VLMOCR_BUILTIN_MODEL` points at another directory instead
(e.g. a newer training run). `builtin_model_path()` returns None when no complete model is
there; callers that can do without one (the demo) fall back to a freshly built random model.

Commands that take a model accept the word `builtin` for it (`resolve_model`); a folder
that happens to be called `builtin` is reached as `./builtin` (a warning says so when such a
folder is in the working directory and the word was given).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from vlmocr.errors import ConfigError

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "assets" / "builtin"
ENV_VAR = "VLMOCR_BUILTIN_MODEL"
#: The word that names the built-in model wherever a model directory is taken.
BUILTIN_NAME = "builtin"

log = logging.getLogger(__name__)


def _complete(path: Path) -> bool:
    return (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def builtin_model_path() -> Path | None:
    """The built-in model's directory, or None if no complete one is available."""
    override = os.environ.get(ENV_VAR)
    if override:
        path = Path(override).expanduser()
        return path if _complete(path) else None
    return BUILTIN_DIR if _complete(BUILTIN_DIR) else None


def is_builtin_name(model: str | os.PathLike[str] | None) -> bool:
    """True for the word `builtin` (not `./builtin`, a folder of that name)."""
    return model is not None and str(model) == BUILTIN_NAME


def resolve_model(model: str | None) -> str | None:
    """`builtin` → the built-in model's directory; anything else (a folder, a hub id, None) unchanged.

    Raises ConfigError when `builtin` is asked for and no complete built-in model is available.
    """
    if not is_builtin_name(model):
        return model
    if Path(BUILTIN_NAME).is_dir():
        log.warning("'%s' names the built-in model; the folder %s in the working directory is not used "
                    "(give it as ./%s)", BUILTIN_NAME, Path(BUILTIN_NAME).resolve(), BUILTIN_NAME)
    path = builtin_model_path()
    if path is not None:
        return str(path)
    override = os.environ.get(ENV_VAR)
    if override:
        raise ConfigError(
            f"model 'builtin': {ENV_VAR}={override} is not a complete model directory "
            "(needs config.json and *.safetensors); fix or unset it"
        )
    raise ConfigError(
        f"model 'builtin': no built-in model in this installation ({BUILTIN_DIR} has no config.json "
        f"and *.safetensors); set {ENV_VAR} to a model directory or give a model folder"
    )
