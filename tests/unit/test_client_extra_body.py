"""`ExtractConfig.extra_body` reaches every request (server) and SamplingParams (offline); the offline engine options."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

from PIL import Image

from tests.unit.test_client_fake_server import FakeOpenAI
from vlmocr.client.extract import ExtractConfig, extract
from vlmocr.client.request import RequestSpec
from vlmocr.prompts import PromptContract

FORCE = {"ignore_eos": True, "min_tokens": 7}


def _images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"doc{i}.jpg"
        Image.new("RGB", (120, 90), (250, 250, 240 - i)).save(path)
        paths.append(path)
    return paths


def test_default_body_has_no_extra_keys() -> None:
    spec = RequestSpec(url="u", model="m", prompt=PromptContract(), max_tokens=7)
    assert set(spec.body("data:,", 0.0)) == {"model", "messages", "max_tokens", "temperature"}
    assert ExtractConfig().extra_body is None


def test_extra_body_is_merged_last() -> None:
    spec = RequestSpec(url="u", model="m", prompt=PromptContract(), max_tokens=7,
                       extra_body={**FORCE, "temperature": 0.5})
    body = spec.body("data:,", 0.0)
    assert body["ignore_eos"] is True and body["min_tokens"] == 7 and body["max_tokens"] == 7
    assert body["temperature"] == 0.5


def test_every_request_carries_extra_body(tmp_path: Path) -> None:
    images = _images(tmp_path / "in", 3)
    with FakeOpenAI() as fake:
        result = extract(images, ExtractConfig(server=fake.base_url, out=tmp_path / "p.jsonl", concurrency=2,
                                               max_tokens=7, extra_body=FORCE))
    assert result.ok == 3
    assert len(fake.requests) == 3
    for body in fake.requests:
        assert body["ignore_eos"] is True and body["min_tokens"] == 7 and body["max_tokens"] == 7
        assert "response_format" in body  # structured output untouched


def test_offline_sampling_params_get_extra_body(monkeypatch: Any) -> None:
    from vlmocr.client import offline
    from vlmocr.client.extract import Job
    from vlmocr.images import Resolution

    seen: dict[str, Any] = {}

    class SamplingParams:
        def __init__(self, **kwargs: Any) -> None:
            seen.update(kwargs)

    fake_vllm = types.ModuleType("vllm")
    fake_vllm.SamplingParams = SamplingParams  # type: ignore[attr-defined]
    fake_sp = types.ModuleType("vllm.sampling_params")
    fake_sp.StructuredOutputsParams = lambda **kw: kw  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", fake_sp)
    job = Job(PromptContract(), Resolution(), None, 7, "defaults")
    offline._sampling(job, None, 0.0, FORCE)
    assert seen == {"max_tokens": 7, "temperature": 0.0, "structured_outputs": None, **FORCE}
    seen.clear()
    offline._sampling(job, None, 0.0)
    assert seen == {"max_tokens": 7, "temperature": 0.0, "structured_outputs": None}


def test_offline_engine_gets_quantization_and_kv_cache_dtype(monkeypatch: Any) -> None:
    from vlmocr.client import offline
    from vlmocr.client.extract import Job
    from vlmocr.images import Resolution
    from vlmocr.models.builtin import resolve_model

    seen: list[dict[str, Any]] = []

    class LLM:
        def __init__(self, **kwargs: Any) -> None:
            seen.append(kwargs)

    fake_vllm = types.ModuleType("vllm")
    fake_vllm.LLM = LLM  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm)
    model = Path(str(resolve_model("builtin")))
    job = Job(PromptContract(), Resolution(), None, 7, "defaults")
    offline.load_engine(model, job, ExtractConfig(offline=str(model), quantization="fp8", kv_cache_dtype="fp8"))
    offline.load_engine(model, job, ExtractConfig(offline=str(model)))
    assert seen[0]["quantization"] == "fp8" and seen[0]["kv_cache_dtype"] == "fp8"
    assert "quantization" not in seen[1] and "kv_cache_dtype" not in seen[1]  # the checkpoint's own
    assert {k: v for k, v in seen[0].items() if k not in ("quantization", "kv_cache_dtype")} == seen[1]


def test_engine_options_are_offline_only() -> None:
    import pytest

    from vlmocr.errors import ConfigError

    with pytest.raises(ConfigError, match=r"--kv-cache-dtype applies to --offline only.*vlmocr serve MODEL"):
        ExtractConfig(server="http://127.0.0.1:8000/v1", kv_cache_dtype="fp8")
    with pytest.raises(ConfigError, match=r"--quantization applies to --offline only"):
        ExtractConfig(server="http://127.0.0.1:8000/v1", quantization="fp8")
    with pytest.raises(ConfigError, match=r"--quantization must not be empty"):
        ExtractConfig(offline="m", quantization=" ")
    assert ExtractConfig(offline="m", kv_cache_dtype="fp8").kv_cache_dtype == "fp8"
