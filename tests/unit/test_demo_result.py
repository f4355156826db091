"""demo_result.py wraps a demo's demo.json into a result file: stages summed, demo embedded verbatim."""

from __future__ import annotations

import json

import pytest

from vlmocr.fileio import library_versions

from .conftest import benchmark_module

DEMO = {
    "config": {"out": "runs/demo-x", "steps": 30, "seed": 0},
    "result": {
        "out": "runs/demo-x",
        "before": {"field_f1": 0.6, "n": 16},
        "after": {"field_f1": 0.79, "n": 16},
        "timings": {"data": 2.11, "serve-before": 98.78, "train": 229.25, "export": 66.34, "report": 0.31},
    },
    "provenance": {"vlmocr": "0.1.0"},
}


@pytest.fixture(scope="module")
def demo_result():
    return benchmark_module("demo_result")


@pytest.fixture
def demo_dir(tmp_path):
    folder = tmp_path / "demo-x"
    folder.mkdir()
    (folder / "demo.json").write_text(json.dumps(DEMO))
    return folder


def _run(demo_result, demo_dir, out, *extra: str) -> dict:
    demo_result.main(["--demo-dir", str(demo_dir), "--name", "x_demo_cpu", "--model", "run x",
                      "--out", str(out), *extra])
    return json.loads(out.read_text())


def test_stages_summed_and_demo_embedded_verbatim(demo_result, demo_dir, tmp_path) -> None:
    data = _run(demo_result, demo_dir, tmp_path / "r.json", "--wall-s", "399.94", "--note", "nothing else ran")
    assert list(data) == ["name", "date", "machine", "libraries", "command", "model", "wall_s_measured",
                          "demo_stages_s", "note", "demo"]
    assert data["demo_stages_s"] == round(2.11 + 98.78 + 229.25 + 66.34 + 0.31, 1) == 396.8
    assert data["wall_s_measured"] == 399.9
    assert data["demo"] == DEMO
    assert data["name"] == "x_demo_cpu" and data["model"] == "run x"
    assert data["command"] == f"make demo DEMO_OUT={demo_dir}   (runs: vlmocr demo --out {demo_dir})"
    assert data["note"].endswith("nothing else ran")
    assert "cpu" in data["machine"] and "load_average" not in data["machine"]
    assert data["libraries"] == library_versions()


def test_wall_time_omitted_when_not_given(demo_result, demo_dir, tmp_path) -> None:
    data = _run(demo_result, demo_dir, tmp_path / "r.json", "--command", "vlmocr demo --out x")
    assert "wall_s_measured" not in data
    assert "no wall time was measured" in data["note"]
    assert data["command"] == "vlmocr demo --out x"


def test_missing_demo_json_is_a_clear_error(demo_result, tmp_path) -> None:
    out = tmp_path / "r.json"
    with pytest.raises(SystemExit, match=r"demo\.json: not found"):
        _run(demo_result, tmp_path / "nowhere", out)
    assert not out.exists()


def test_demo_json_that_is_not_json_is_a_clear_error(demo_result, demo_dir, tmp_path) -> None:
    (demo_dir / "demo.json").write_text("{half")
    with pytest.raises(SystemExit, match=r"demo\.json: not JSON"):
        _run(demo_result, demo_dir, tmp_path / "r.json")
