"""The built-in model ships in the package, and `builtin` names it wherever a model is taken."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vlmocr.cli.app import app
from vlmocr.errors import ConfigError
from vlmocr.models import builtin
from vlmocr.models.builtin import BUILTIN_DIR, ENV_VAR, builtin_model_path, resolve_model

SHIPPED_FILES = ("config.json", "vlmocr.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                 "preprocessor_config.json", "model.safetensors.index.json", "README.md")


class Stop(Exception):
    """Raised by a stand-in for a stage, to end a command right after it resolved its model."""


@pytest.fixture
def no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.fixture
def incomplete_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "half"
    folder.mkdir()
    (folder / "config.json").write_text("{}")  # no weights
    monkeypatch.setenv(ENV_VAR, str(folder))
    return folder


def _complete_model(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"\0" * 16)
    return folder


def test_the_shipped_model_is_found_in_the_package(no_override: None) -> None:
    assert builtin_model_path() == BUILTIN_DIR
    assert BUILTIN_DIR.parts[-3:] == ("vlmocr", "assets", "builtin")
    for name in SHIPPED_FILES:
        assert (BUILTIN_DIR / name).is_file(), name
    index = json.loads((BUILTIN_DIR / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert shards == [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    assert all((BUILTIN_DIR / shard).stat().st_size > 1_000_000 for shard in shards)
    config = json.loads((BUILTIN_DIR / "config.json").read_text())
    assert config["architectures"] == ["Qwen2_5_VLForConditionalGeneration"]
    assert resolve_model("builtin") == str(BUILTIN_DIR)


def test_the_environment_overrides_the_shipped_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = _complete_model(tmp_path / "newer")
    monkeypatch.setenv(ENV_VAR, str(other))
    assert builtin_model_path() == other
    assert resolve_model("builtin") == str(other)


def test_an_incomplete_override_is_no_builtin_model(incomplete_override: Path) -> None:
    assert builtin_model_path() is None
    with pytest.raises(ConfigError, match=f"{ENV_VAR}=.*half.*not a complete model directory"):
        resolve_model("builtin")


def test_no_shipped_model_is_a_clear_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  no_override: None) -> None:
    monkeypatch.setattr(builtin, "BUILTIN_DIR", tmp_path / "missing")
    assert builtin_model_path() is None
    with pytest.raises(ConfigError, match=f"no built-in model.*{ENV_VAR}"):
        resolve_model("builtin")


@pytest.mark.parametrize("model", [None, "Qwen/Qwen2.5-VL-3B-Instruct", "runs/x/export", "./builtin", "Builtin"])
def test_other_model_arguments_pass_through(model: str | None, incomplete_override: Path) -> None:
    assert resolve_model(model) == model  # even with a broken override: only `builtin` consults it


def test_a_folder_named_builtin_is_named_in_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       no_override: None, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    with caplog.at_level("WARNING", logger="vlmocr.models.builtin"):
        assert resolve_model("builtin") == str(BUILTIN_DIR)
    assert not caplog.records  # no such folder here: nothing to say
    _complete_model(tmp_path / "builtin")
    with caplog.at_level("WARNING", logger="vlmocr.models.builtin"):
        assert resolve_model("builtin") == str(BUILTIN_DIR)  # the word still means the built-in model
        assert resolve_model("./builtin") == "./builtin"  # and the folder is reached this way
    assert len(caplog.records) == 1
    assert "give it as ./builtin" in caplog.text and str(tmp_path / "builtin") in caplog.text


def test_demo_starts_from_the_builtin_model(tmp_path: Path, no_override: None) -> None:
    from vlmocr.demo import DemoConfig, _base_model

    assert _base_model(DemoConfig(out=tmp_path), tmp_path) == (str(BUILTIN_DIR), "builtin")
    assert _base_model(DemoConfig(out=tmp_path, base="builtin", size="tiny"), tmp_path) == (str(BUILTIN_DIR),
                                                                                          "builtin")


def test_demo_base_builtin_without_a_model_fails_clearly(tmp_path: Path, incomplete_override: Path) -> None:
    from vlmocr.demo import DemoConfig, _base_model

    with pytest.raises(ConfigError, match=ENV_VAR):
        _base_model(DemoConfig(out=tmp_path, base="builtin"), tmp_path)


# --- the CLI: every command that takes a model resolves `builtin` before its stage runs ---


def _capture(monkeypatch: pytest.MonkeyPatch, module: str, name: str) -> dict[str, Any]:
    """Replace module.name with a stand-in that records its arguments and stops the command."""
    import importlib

    seen: dict[str, Any] = {}

    def stand_in(*args: Any, **kwargs: Any) -> Any:
        seen["args"], seen["kwargs"] = args, kwargs
        raise Stop

    monkeypatch.setattr(importlib.import_module(module), name, stand_in)
    return seen


def test_cli_extract_offline_builtin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_override: None) -> None:
    seen = _capture(monkeypatch, "vlmocr.client.extract", "extract")
    result = CliRunner().invoke(app, ["extract", str(tmp_path), "--offline", "builtin", "--contract", "builtin",
                                      "--out", str(tmp_path / "p.jsonl")])
    assert isinstance(result.exception, Stop), result.output
    config = seen["args"][1]
    assert config.offline == str(BUILTIN_DIR) and config.contract_dir == BUILTIN_DIR


def test_cli_extract_offline_builtin_without_a_model(tmp_path: Path, incomplete_override: Path) -> None:
    result = CliRunner().invoke(app, ["extract", str(tmp_path), "--offline", "builtin"])
    assert result.exit_code == 2 and ENV_VAR in result.output


def test_cli_serve_builtin(monkeypatch: pytest.MonkeyPatch, no_override: None) -> None:
    from vlmocr.serve import engine, vllm

    monkeypatch.setattr(engine, "installed_vllm", lambda: "cpu")
    monkeypatch.setattr(vllm, "installed_vllm", lambda: "cpu")
    result = CliRunner().invoke(app, ["serve", "builtin", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert f"{BUILTIN_DIR} " in result.stdout and "--served-model-name builtin" in result.stdout
    # the model's own contract: its pixel range goes to vLLM
    assert '"max_pixels":1003520' in result.stdout.replace(" ", "")


def test_cli_serve_builtin_without_a_model(incomplete_override: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "builtin", "--dry-run"])
    assert result.exit_code == 2 and ENV_VAR in result.output


def test_cli_export_base_builtin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_override: None) -> None:
    seen = _capture(monkeypatch, "vlmocr.export.merge", "export_model")
    result = CliRunner().invoke(app, ["export", str(tmp_path), "--out", str(tmp_path / "x"), "--base", "builtin"])
    assert isinstance(result.exception, Stop), result.output
    assert seen["args"][2].base == str(BUILTIN_DIR)


def test_cli_train_model_builtin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_override: None) -> None:
    pytest.importorskip("torch")
    seen = _capture(monkeypatch, "vlmocr.train.trainer", "_Trainer")
    result = CliRunner().invoke(app, ["train", "--model", "builtin", "--out", str(tmp_path / "run"),
                                      "--max-steps", "1", "--set", "data.synth={layouts: [form]}"])
    assert isinstance(result.exception, Stop), result.output
    assert seen["args"][0].model == str(BUILTIN_DIR)


def test_config_file_model_builtin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   incomplete_override: Path) -> None:
    pytest.importorskip("torch")
    config = tmp_path / "c.yaml"
    config.write_text("model: builtin\nmax_steps: 1\ndata: {synth: {layouts: [form]}}\n")
    result = CliRunner().invoke(app, ["train", str(config), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and ENV_VAR in result.output


def test_cli_model_info_shows_the_builtin_model(no_override: None) -> None:
    result = CliRunner().invoke(app, ["model", "info"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "built-in (shipped)" in result.stdout and str(BUILTIN_DIR) in result.stdout
    assert "Qwen2_5_VLForConditionalGeneration" in result.stdout and "20,350,848" in result.stdout
    assert str(BUILTIN_DIR / "README.md") in result.stdout


def test_help_texts_name_builtin() -> None:
    runner = CliRunner()
    for command in (["demo"], ["extract"], ["serve"], ["train"], ["export"], ["model", "info"]):
        result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0 and "builtin" in result.stdout, command


# --- the library: the same word works where Python code calls the stages directly ---


def test_library_extract_offline_builtin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_override: None) -> None:
    from PIL import Image

    from vlmocr.client.extract import ExtractConfig, extract

    Image.new("RGB", (32, 32), "white").save(tmp_path / "page.png")
    seen = _capture(monkeypatch, "vlmocr.client.offline", "extract_offline")
    with pytest.raises(Stop):
        extract([tmp_path], ExtractConfig(offline="builtin", contract_dir=Path("builtin"), out=tmp_path / "p.jsonl"))
    config = seen["args"][1]
    assert config.offline == str(BUILTIN_DIR) and config.contract_dir == BUILTIN_DIR


def test_library_start_server_builtin(monkeypatch: pytest.MonkeyPatch, no_override: None) -> None:
    from vlmocr.serve import vllm

    monkeypatch.setattr(vllm, "installed_vllm", lambda: "cpu")
    seen = _capture(monkeypatch, "vlmocr.serve.vllm", "check_model_dir")
    with pytest.raises(Stop):
        vllm.start_server("builtin", vllm.ServeConfig())
    assert seen["args"][0] == str(BUILTIN_DIR)


def test_library_export_base_builtin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_override: None) -> None:
    from vlmocr.export.merge import ExportConfig, export_model

    seen = _capture(monkeypatch, "vlmocr.export.merge", "resolve_source")
    with pytest.raises(Stop):
        export_model(tmp_path, tmp_path / "x", ExportConfig(base="builtin"))
    assert seen["args"][1] == str(BUILTIN_DIR)
