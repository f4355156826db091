"""The main job's whole loop at its smallest size, with real vLLM, training and export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def _vllm_processes_for(folder: Path) -> list[int]:
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "vllm" in cmdline and str(folder) in cmdline:
            found.append(proc.info["pid"])
    return found


def test_demo_quick_loop_writes_every_artifact(tmp_path: Path) -> None:
    from vlmocr.demo import STAGES, DemoConfig, StageEvent, run_demo

    out = tmp_path / "demo"
    events: list[StageEvent] = []
    result = run_demo(DemoConfig.quick(out), events.append)

    assert [e.stage for e in events if e.kind == "end"] == list(STAGES)
    assert result.base_kind == "random-tiny"
    test_images = sorted(p.resolve() for p in (out / "data" / "test").glob("*.jpg"))
    assert len(test_images) == 4
    for label in ("before", "after"):
        rows = [json.loads(line) for line in (out / f"predictions-{label}.jsonl").read_text().splitlines()]
        assert sorted(Path(r["file"]).resolve() for r in rows) == test_images
        # A random tiny model cannot finish a manifest in 64 tokens: reported, never repaired.
        for row in rows:
            assert row["json"] is not None or row["error"]
            if row["json"] is not None:  # the demo asks for confidence: a value per field, or why not
                extra = row["extra"]
                assert "confidence" in extra or extra.get("confidence_error"), extra
        scores = getattr(result, label)
        assert scores["n"] == 4 and 0.0 <= scores["field_f1"] <= 1.0
        # the demo's scores carry what `vlmocr eval` measured of that confidence (None where it could not)
        measured = json.loads((out / f"eval-{label}" / "report.json").read_text())["confidence"] or {}
        for key in ("auroc", "ece"):
            expected, got = measured.get(key), scores[f"confidence_{key}"]
            assert (got is None) if expected is None else got == pytest.approx(expected, abs=1e-4), (key, measured)
    exported = out / "export"
    assert (exported / "vlmocr.json").is_file() and (exported / "preprocessor_config.json").is_file()
    assert (out / "train" / "loss.png").is_file()
    html = (out / "report" / "report.html").read_text(encoding="utf-8")
    assert "before" in html and "after" in html
    saved = json.loads((out / "demo.json").read_text())
    assert saved["result"]["before"] == result.before and set(saved["result"]["timings"]) == set(STAGES)
    assert _vllm_processes_for(out) == []


def test_demo_refuses_a_non_empty_folder_without_overwrite(tmp_path: Path) -> None:
    from vlmocr.demo import DemoConfig, run_demo
    from vlmocr.errors import ConfigError

    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        run_demo(DemoConfig.quick(tmp_path / "demo", overwrite=False))
    assert (tmp_path / "demo" / "keep.txt").read_text() == "mine"
