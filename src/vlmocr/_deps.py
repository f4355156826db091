"""Import heavy optional dependencies with an install hint when they are missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from vlmocr.errors import MissingDependencyError


def require(module: str, *, extra: str, purpose: str, package: str | None = None) -> ModuleType:
    """Import `module` or raise MissingDependencyError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError(package or module.split(".")[0], extra, purpose) from exc
