"""`vlmocr data synth` end to end: its output passes `vlmocr data check`; bad flags exit 2."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from vlmocr.cli.app import app

runner = CliRunner()


def test_synth_then_check(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    result = runner.invoke(app, [
        "data", "synth", "--out", str(out), "--train", "4", "--valid", "2", "--test", "2",
        "--photos-per-doc", "2", "--layouts", "form,receipt", "--augment", "none", "--seed", "4",
        "--size", "640x704", "--workers", "1", "--contact-sheet", str(tmp_path / "sheet.png"),
    ])
    assert result.exit_code == 0, result.output
    assert "wrote 8 images" in result.output
    meta = json.loads((out / "synth.json").read_text())
    assert meta["config"]["layouts"] == ["form", "receipt"] and meta["config"]["size"] == [640, 704]
    assert set(meta["layouts"]) <= {"form", "receipt"}
    check = runner.invoke(app, ["data", "check", str(out)])
    assert check.exit_code == 0, check.output
    assert (tmp_path / "sheet.png").stat().st_size > 10_000


def test_bad_flags_exit_with_usage_errors(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "x"), "--train", "2",
                                 "--layouts", "poster"])
    assert result.exit_code == 2 and "unknown layout" in result.output
    result = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "x"), "--train", "2",
                                 "--size", "big"])
    assert result.exit_code == 2 and "--size" in result.output
    assert not (tmp_path / "x").exists()
    result = runner.invoke(app, ["data", "synth", "--train", "2"])
    assert result.exit_code == 2 and "--out is required" in result.output
    listed = runner.invoke(app, ["data", "synth", "--list-layouts"])
    assert listed.exit_code == 0 and listed.output.split() == ["form", "two_column", "receipt", "dense", "label"]


def test_generator_imports_without_torch() -> None:
    import subprocess
    import sys

    code = ("import sys, vlmocr.cli.data_synth, vlmocr.data.synth as s; next(s.iter_samples(limit=1)); "
            "print(sorted(m for m in ('torch', 'transformers', 'vllm', 'matplotlib') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_curriculum_flags_reach_the_config_and_the_targets(tmp_path: Path) -> None:
    from vlmocr.schema import FILLABLE_FIELDS

    out = tmp_path / "easy"
    result = runner.invoke(app, [
        "data", "synth", "--out", str(out), "--train", "6", "--max-products", "1", "--min-filled", "1",
        "--max-filled", "2", "--type-scale", "2", "--augment", "none", "--workers", "1",
    ])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "synth.json").read_text())["config"]
    assert (config["min_filled"], config["max_filled"], config["type_scale"]) == (1, 2, 2.0)
    for line in (out / "train" / "annotations.jsonl").read_text().splitlines():
        target = json.loads(json.loads(line)["suffix"])
        assert len(target["products"]) == 1
        assert 1 <= sum(bool(target[name]) for name in FILLABLE_FIELDS) <= 2
    check = runner.invoke(app, ["data", "check", str(out)])
    assert check.exit_code == 0, check.output
    bad = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "y"), "--train", "1", "--type-scale", "9"])
    assert bad.exit_code == 2 and "type_scale" in bad.output


def test_novel_names_flag_reaches_the_written_targets(tmp_path: Path) -> None:
    out = tmp_path / "novel"
    common = ["--train", "4", "--max-products", "1", "--augment", "none", "--workers", "1", "--seed", "3"]
    assert runner.invoke(app, ["data", "synth", "--out", str(out), "--novel-names", "1", *common]).exit_code == 0
    assert runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "plain"), *common]).exit_code == 0
    assert json.loads((out / "synth.json").read_text())["config"]["novel_names"] == 1.0

    def salesmen(folder: Path) -> list[str]:
        lines = (folder / "train" / "annotations.jsonl").read_text().splitlines()
        return [json.loads(json.loads(line)["suffix"])["salesman"] for line in lines]

    novel, plain = salesmen(out), salesmen(tmp_path / "plain")
    assert all(a != b and len(a) == len(b) for a, b in zip(novel, plain))
    bad = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "z"), "--train", "1", "--novel-names", "2"])
    assert bad.exit_code == 2 and "novel_names" in bad.output
