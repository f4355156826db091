"""The data commands through the installed `vlmocr` entry point, and light imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import annotation, write_image, write_lines

VLMOCR = [sys.executable, "-m", "vlmocr.cli.app"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VLMOCR, *args], capture_output=True, text=True, timeout=120)


def test_check_ok_and_json_report(seed_dataset: Path) -> None:
    result = run("data", "check", str(seed_dataset), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["splits"]["train"] == {"records": 1, "skipped": 0}


def test_check_fails_with_line_numbers(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_image(root / "train" / "a.jpg")
    write_lines(root / "train" / "annotations.jsonl", [annotation("a.jpg"), annotation("../x.jpg")])
    result = run("data", "check", str(root))
    assert result.returncode == 1
    assert "train/annotations.jsonl:2" in result.stderr and "'..'" in result.stderr
    assert run("data", "check", str(root), "--max-skip-ratio", "0.5").returncode == 0


def test_convert_cli_writes_llamafactory_files(seed_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("data", "convert", str(seed_dataset), "--to", "sharegpt", "--out", str(out), "--name", "pallets")
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "pallets.json").read_text())[0]["id"].startswith("IMG_3128")
    assert "pallets" in json.loads((out / "dataset_info.json").read_text())
    bad = run("data", "convert", str(seed_dataset), "--out", str(out), "--image-paths", "weird")
    assert bad.returncode == 2 and "--image-paths" in bad.stderr


def test_missing_dataset_is_a_clear_error(tmp_path: Path) -> None:
    result = run("data", "check", str(tmp_path / "nowhere"))
    assert result.returncode == 1
    assert "dataset folder not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).with_name("vlmocr")
    result = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("vlmocr ")


def test_data_stage_and_cli_import_without_torch() -> None:
    code = (
        "import sys, vlmocr.cli.app, vlmocr.data.convert, vlmocr.data.roboflow;"
        "heavy = [m for m in ('torch', 'transformers', 'vllm', 'peft', 'trl') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
