"""What `vlmocr export` accepts as a source, and what it refuses before loading anything."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vlmocr.contract import ModelContract, save_contract
from vlmocr.errors import ConfigError, ExportError
from vlmocr.export.files import inspect_weights, read_safetensors_header
from vlmocr.export.merge import ExportConfig, export_model, parse_shard_size
from vlmocr.export.source import resolve_source


def _adapter(folder: Path, base: str | None = "/nonexistent/base", *, weights: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": base}))
    if weights:
        (folder / "adapter_model.safetensors").write_bytes(b"x")
    (folder / "tokenizer.json").write_text("{}")
    return folder


def test_run_folder_prefers_best_and_reads_the_run_contract(tmp_path: Path, tiny_model: Path) -> None:
    run = tmp_path / "run"
    _adapter(run / "final", str(tiny_model))
    _adapter(run / "best", str(tiny_model))
    save_contract(run, ModelContract(base_model=str(tiny_model), extra={"method": "qlora"}))
    src = resolve_source(run)
    assert src.model_dir == (run / "best").resolve()
    assert (src.kind, src.method, src.run_dir) == ("lora", "qlora", run.resolve())
    assert src.base_model == str(tiny_model.resolve())
    shutil.rmtree(run / "best")
    assert resolve_source(run).model_dir == (run / "final").resolve()


def test_base_comes_from_flag_then_contract_then_adapter(tmp_path: Path, tiny_model: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(tiny_model, other)
    adapter = _adapter(tmp_path / "a", str(tiny_model))
    assert resolve_source(adapter).base_model == str(tiny_model.resolve())
    save_contract(adapter, ModelContract(base_model=str(other)))
    assert resolve_source(adapter).base_model == str(other.resolve())
    assert resolve_source(adapter, base=str(tiny_model)).base_model == str(tiny_model.resolve())
    # A hub id is passed through for transformers to resolve.
    assert resolve_source(adapter, base="Qwen/Qwen2.5-VL-3B-Instruct").base_model == "Qwen/Qwen2.5-VL-3B-Instruct"


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("missing", "no such run"),
        ("empty_run", "neither a run folder"),
        ("pickle_adapter", "pickle"),
        ("pickle_full", "pickle"),
        ("incomplete_checkpoint", "incomplete"),
        ("no_base", "pass --base"),
        ("missing_base", "does not exist"),
    ],
)
def test_bad_sources_are_refused_with_the_reason(tmp_path: Path, layout: str, message: str) -> None:
    source = tmp_path / "src"
    if layout == "empty_run":
        (source / "best").mkdir(parents=True)
    elif layout == "pickle_adapter":
        _adapter(source, weights=False)
        (source / "adapter_model.bin").write_bytes(b"\x80\x04")
    elif layout == "pickle_full":
        source.mkdir()
        (source / "config.json").write_text("{}")
        (source / "pytorch_model.bin").write_bytes(b"\x80\x04")
    elif layout == "incomplete_checkpoint":
        source = _adapter(tmp_path / "run" / "checkpoints" / "step-000010")
    elif layout == "no_base":
        source = _adapter(source, base=None)
    elif layout == "missing_base":
        source = _adapter(source, base="./no/such/base")
    with pytest.raises(ExportError, match=message):
        resolve_source(source)


def test_complete_checkpoint_is_accepted(tmp_path: Path, tiny_model: Path) -> None:
    step = _adapter(tmp_path / "run" / "checkpoints" / "step-000010", str(tiny_model))
    (step / "COMPLETE").write_text("")
    assert resolve_source(step).model_dir == step.resolve()


def test_quantized_base_is_refused_before_loading(tmp_path: Path, tiny_model: Path) -> None:
    base = tmp_path / "base-4bit"
    shutil.copytree(tiny_model, base)
    config = json.loads((base / "config.json").read_text())
    config["quantization_config"] = {"load_in_4bit": True, "quant_method": "bitsandbytes"}
    (base / "config.json").write_text(json.dumps(config))
    adapter = _adapter(tmp_path / "adapter", str(base))
    with pytest.raises(ExportError, match="full-precision base"):
        export_model(adapter, tmp_path / "out", ExportConfig(verify=False))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("text", "size"), [("2GB", 2 * 10**9), ("500MB", 5 * 10**8), ("1.5 GiB", 3 * 2**29), (4096, 4096)])
def test_shard_size_parsing(text: str | int, size: int) -> None:
    assert parse_shard_size(text) == size


@pytest.mark.parametrize("text", ["", "2 parsecs", "-1GB", "0"])
def test_bad_shard_size_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError):
        ExportConfig(shard_size=text)


def test_weight_headers_catch_truncation_and_missing_shards(tmp_path: Path, tiny_model: Path) -> None:
    model = tmp_path / "m"
    shutil.copytree(tiny_model, model)
    info = inspect_weights(model)
    assert info.problems == [] and not info.sharded and info.dtypes == {"F32"}
    assert set(read_safetensors_header(model / "model.safetensors")) - {"__metadata__"} == set(info.tensors)
    data = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert any("truncated" in p for p in inspect_weights(model).problems)
    index = {"metadata": {}, "weight_map": {"a.weight": "model-00001-of-00002.safetensors"}}
    (model / "model.safetensors.index.json").write_text(json.dumps(index))
    assert any("missing" in p for p in inspect_weights(model).problems)


def test_unreachable_hub_base_is_a_clear_error(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    adapter = _adapter(tmp_path / "adapter", "vlmocr-test/no-such-model")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "vlmocr.cli.app", "export", str(adapter), "--out", str(tmp_path / "out"), "--no-verify"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1, proc.stderr
    message = " ".join((proc.stdout + proc.stderr).split())
    assert "cannot load the base model vlmocr-test/no-such-model" in message and "Traceback" not in message
    assert not (tmp_path / "out").exists()
