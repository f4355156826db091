"""Shared fixtures for integration tests: a tiny Qwen2.5-VL built offline, once per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a ~2M-parameter Qwen2.5-VL (random weights) built with `build_model`.

    Its resolution contract is the tiny default (16..64 visual tokens an image); read it
    with `vlmocr.contract.load_contract(tiny_model).resolution`. Treat it as read-only.
    """
    from vlmocr.models.build import build_model

    return build_model(tmp_path_factory.mktemp("models") / "tiny", "tiny", seed=0).path
