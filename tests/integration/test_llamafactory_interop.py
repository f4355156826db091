"""LLaMA-Factory's own data pipeline loads `vlmocr data convert --to sharegpt` output.

LLaMA-Factory pins transformers <= 5.6, so it runs in its own venv (built on first use by
scripts/llamafactory_venv.sh, or pointed to by VLMOCR_LLAMAFACTORY_VENV).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from vlmocr.data.convert import ConvertConfig, convert_dataset
from vlmocr.prompts import SYSTEM_MESSAGE

from ..unit.conftest import SEED_SUFFIX, annotation, write_image, write_lines

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.llamafactory, pytest.mark.slow]


@pytest.fixture(scope="module")
def lf_python() -> Path:
    venv = Path(os.environ.get("VLMOCR_LLAMAFACTORY_VENV", ROOT / ".venv-llamafactory"))
    subprocess.run(["bash", str(ROOT / "scripts" / "llamafactory_venv.sh"), str(venv)], check=True, timeout=1800)
    return venv / "bin" / "python"


@pytest.mark.parametrize("image_paths", ["absolute", "relative"])
def test_llamafactory_keeps_every_sample_with_its_image(
    lf_python: Path, tiny_model: Path, tmp_path: Path, image_paths: str
) -> None:
    root = tmp_path / "pallet"
    names = [f"IMG_{i}.jpg" for i in range(3)]
    for name in names:
        write_image(root / "train" / name, size=(300, 300))
    write_lines(root / "train" / "annotations.jsonl", [annotation(n) for n in names])
    data_dir = tmp_path / "LLaMA-Factory" / "data"
    report = convert_dataset(root, data_dir, ConvertConfig(image_paths=image_paths))  # type: ignore[arg-type]
    assert report.written["train"] == 3

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", DISABLE_VERSION_CHECK="1")
    result = subprocess.run(
        [str(lf_python), str(Path(__file__).with_name("llamafactory_load.py")), str(tiny_model),
         str(data_dir), "manifest", str(tmp_path / "lf_out")],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["n"] == 3
    expected_target = json.loads(SEED_SUFFIX)
    for sample in loaded["samples"]:
        assert len(sample["images"]) == 1 and Path(sample["images"][0]).name in names
        assert sample["image_tokens"] > 0
        # The answer is the only thing trained on: labels start after the image and the question.
        assert sample["first_label"] > sample["last_image_token"]
        assert "extract data in JSON format" in sample["prompt"]
        assert SYSTEM_MESSAGE.splitlines()[0] in sample["prompt"]
        assert json.loads(sample["answer"]) == expected_target
