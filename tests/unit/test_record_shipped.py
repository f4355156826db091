"""record_shipped.py writes the shipped weights' sha256 into a result file only when they are the scored ones."""

from __future__ import annotations

import hashlib
import json

import pytest

from .conftest import benchmark_module


@pytest.fixture(scope="module")
def shipped():
    return benchmark_module("record_shipped")


def _setup(tmp_path, shipped_bytes: bytes):
    scored, ship = tmp_path / "scored", tmp_path / "ship"
    scored.mkdir()
    ship.mkdir()
    for folder, second in ((scored, b"two"), (ship, shipped_bytes)):
        (folder / "model-00001-of-00002.safetensors").write_bytes(b"one")
        (folder / "model-00002-of-00002.safetensors").write_bytes(second)
    result = tmp_path / "builtin_cpu_x.json"
    result.write_text(json.dumps({"model": {"path": str(scored), "label": "x"}, "test_sets": [{"field_f1": 0.9}]}))
    return result, ship


def test_equal_weights_are_recorded_with_their_sha256(shipped, tmp_path) -> None:
    result, ship = _setup(tmp_path, b"two")
    shipped.record(result, ship)
    data = json.loads(result.read_text())
    assert data["model"]["shipped_as"]["sha256"] == {
        "model-00001-of-00002.safetensors": hashlib.sha256(b"one").hexdigest(),
        "model-00002-of-00002.safetensors": hashlib.sha256(b"two").hexdigest(),
    }
    assert data["test_sets"] == [{"field_f1": 0.9}] and data["model"]["label"] == "x"


def test_different_weights_are_refused_and_the_file_is_left_alone(shipped, tmp_path) -> None:
    result, ship = _setup(tmp_path, b"other")
    before = result.read_text()
    with pytest.raises(SystemExit, match="model-00002-of-00002.safetensors"):
        shipped.record(result, ship)
    assert result.read_text() == before
