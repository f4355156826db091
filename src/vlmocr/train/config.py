"""The training configuration: one dataclass tree, YAML on top of it, CLI overrides on top of YAML.

`TrainConfig` holds every default (the single source of truth). `load_config(path,
overrides)` reads a YAML file, applies `section.key=value` overrides (values parsed as
YAML, so `optim.learning_rate=1e-4` is a float), and rejects unknown keys with their
dotted path. `TrainConfig.to_dict()` is what the run folder's config.yaml holds, and
`TrainConfig.from_dict(that)` gives the same config back.

Defaults follow the issue: LoRA on Qwen/Qwen2.5-VL-3B-Instruct (Qwen Research licence,
non-commercial; the 7B is Apache-2.0), loss on the answer only, compact JSON targets,
the seed's prompt, and the base model's resolution contract. GPU levers (bf16,
gradient checkpointing on the language model only, chunked loss, length-grouped
batches, fused AdamW, torch.compile) are switches here, off or automatic on CPU.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmocr.errors import ConfigError
from vlmocr.images import Resolution
from vlmocr.prompts import PromptContract

#: The default base model for users with a network (Qwen Research licence: non-commercial).
DEFAULT_BASE_MODEL = "Qwen/Qwen2.5-VL-3B-Instruct"
METHODS = ("lora", "qlora", "full")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
TARGET_FORMATS = ("compact", "verbatim")
SCHEDULERS = ("cosine", "linear", "constant")


#: Added to the main stream's synth seed for data.mix's stream (unless it names a seed), so that the two
#: streams draw different documents.
MIX_SEED_OFFSET = 7919


@dataclass
class DataConfig:
    """Where samples come from: exactly one of dataset, train_file or synth."""

    dataset: str | None = None  # a Roboflow folder (train/ valid/ test/ with annotations.jsonl)
    train_file: str | None = None  # our converted ShareGPT .json or messages .jsonl
    valid_file: str | None = None
    synth: dict[str, Any] | None = None  # vlmocr.data.synth.SynthConfig keys: an endless stream
    # A second synthetic stream mixed into `synth`'s, e.g. the read task beside extraction:
    # {share: 0.25, synth: {task: read, size: [1536, 1536], crop: [1536, 448]}, prompt: {system, question}}.
    # `share` of the training samples come from it, evenly spaced (vlmocr.train.data.mixed); its synth
    # keys override the main stream's (a different seed unless it names one), its prompt is its own (the
    # run's when absent). Evaluation and the stored contract stay the main stream's.
    mix: dict[str, Any] | None = None
    train_split: str = "train"
    valid_split: str = "valid"
    keep_prefix: bool = False  # use each Roboflow line's prefix as the question
    target_format: str = "compact"  # compact (vlmocr.schema.dumps_target) or verbatim (the suffix as is)
    max_train_samples: int | None = None
    max_skip_ratio: float = 0.05
    num_workers: int = 0  # data-loader worker processes (image decoding and processing)
    # Batches each worker keeps ready. Host memory ≈ workers × this × batch × the pixels of a sample:
    # ≈ 13 MiB a 768×768 sample as the processor's float32 patches (14 workers × 4 × 48 filled a 128 GB
    # host), 1.6 MiB with compact_pixels; 2 is enough to keep a GPU fed.
    prefetch_factor: int = 2
    # The workers send uint8 patches of one frame (1/8 of the bytes, ≈ 3.6x less pixel work a sample),
    # normalized and repeated over the temporal patch on the training device; the same pixel values
    # within float rounding (vlmocr.train.collate.QwenPixels). false: the processor's float32 pixels.
    compact_pixels: bool = True
    group_by_length: bool = False  # batches of similar length (less padding)

    def mix_synth(self) -> dict[str, Any]:
        """data.mix's synth settings: the main stream's, another seed (unless it names one), its own keys."""
        assert self.synth is not None and self.mix is not None
        seed = int(self.synth.get("seed", 0)) + MIX_SEED_OFFSET
        return {**self.synth, "seed": seed, **(self.mix.get("synth") or {})}


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0  # 0.05 made a 3B LoRA step 38% slower and 6 GiB larger (benchmarks/results)
    #: Leaf names of the language model's linear layers to adapt; None = all of them.
    target_modules: list[str] | None = None


@dataclass
class OptimConfig:
    learning_rate: float = 2e-4
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    warmup_steps: int | None = None  # None: warmup_ratio of the total steps
    warmup_ratio: float = 0.03
    scheduler: str = "cosine"
    #: Warm restarts: the steps split into this many equal cycles, each with its own warm-up and decay to zero.
    cycles: int = 1
    #: With cycles > 1: each cycle's peak learning rate is this times the one before (1.0: all alike).
    cycle_decay: float = 1.0
    max_grad_norm: float = 1.0
    fused: bool | None = None  # fused AdamW; None = on CUDA only


@dataclass
class EvalConfig:
    every_steps: int = 0  # 0: only at the end
    n_samples: int = 8  # validation images generated and scored each time
    batch_size: int = 4
    max_new_tokens: int | None = None  # None: longest validation target + 32
    metric: str = "field_f1"  # the score that picks the best checkpoint
    image_use: bool = True  # also the answer loss with each sample's own image vs another's (image_use.py)


@dataclass
class CheckpointConfig:
    every_steps: int = 100  # 0: only the final one
    keep_last: int = 2  # complete step-* checkpoints kept (best/ and final/ are separate)


@dataclass
class TrainConfig:
    model: str = DEFAULT_BASE_MODEL  # a Qwen2.5-VL directory or hub id
    method: str = "lora"
    out: str = "runs/train"
    data: DataConfig = field(default_factory=DataConfig)
    prompt: dict[str, str] | None = None  # {system, question}; None: the seed's (or the data's)
    resolution: dict[str, int] | None = None  # {min_pixels, max_pixels}; None: the base model's
    lora: LoraSettings = field(default_factory=LoraSettings)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    batch_size: int = 4  # per device
    grad_accum: int = 1
    max_steps: int | None = None  # optimizer steps; required for a synth stream
    epochs: float = 3.0  # used when max_steps is None
    max_length: int = 4096  # image tokens + prompt + answer; longer samples fail pre-flight
    seed: int = 0
    precision: str = "auto"  # auto: bf16 on a CUDA GPU / a CPU that has it in hardware, else fp32
    freeze_vision: bool | None = None  # None: frozen for lora/qlora, trained for full
    gradient_checkpointing: bool = False  # language-model blocks only, non-reentrant
    checkpoint_every: int = 1  # with gradient_checkpointing: recompute every k-th block (2: half the blocks)
    cudnn_attention: bool = False  # let SDPA pick cuDNN (it plans per new sequence length: slow with varying lengths)
    loss_chunk_size: int = 1024  # answer tokens per logits chunk; 0: plain loss over full logits
    attn_implementation: str = "sdpa"
    # liger: Liger's Triton RMSNorm/SwiGLU/RoPE kernels. None: on a CUDA GPU when installed and
    # compile is off (its RMSNorm kernel fails to build under torch.compile).
    liger: bool | None = None
    vision_attention: str = "auto"  # auto: one varlen flash call per vision layer on CUDA; per_window
    # compile: torch.compile each language-model block. None: on for LoRA on a CUDA GPU without
    # gradient checkpointing when the run plans >= 1,000 batches (the measured case: 8.2 vs 6.9
    # samples/s on the 3B shape, after a one-off 64 s; docs/train.md, modeling.speed_switches).
    compile: bool | None = None
    device: str = "auto"
    cpu_threads: int | None = None  # torch intra-op threads on CPU; None: torch's default
    log_every: int = 10

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)

        check(self.method in METHODS, f"method must be one of {METHODS}, got {self.method!r}")
        check(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        check(bool(self.model), "model: give a Qwen2.5-VL directory or hub id")
        check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        check(self.grad_accum >= 1, f"grad_accum must be >= 1, got {self.grad_accum}")
        check(self.max_steps is None or self.max_steps >= 1, f"max_steps must be >= 1, got {self.max_steps}")
        check(self.epochs > 0, f"epochs must be > 0, got {self.epochs}")
        check(self.max_length >= 32, f"max_length must be >= 32, got {self.max_length}")
        check(self.loss_chunk_size >= 0, "loss_chunk_size must be >= 0")
        check(self.log_every >= 1, "log_every must be >= 1")
        check(self.cpu_threads is None or self.cpu_threads >= 1, "cpu_threads must be >= 1")
        check(self.checkpoint_every >= 1, "checkpoint_every must be >= 1")
        check(not (self.liger is True and self.compile is True),
              "liger: true and compile: true do not combine (Liger's RMSNorm kernel fails to build under "
              "torch.compile); choose one, or leave one unset")
        check(self.vision_attention in ("auto", "varlen", "per_window"),
              f"vision_attention must be auto, varlen or per_window, got {self.vision_attention!r}")
        d = self.data
        sources = [name for name in ("dataset", "train_file", "synth") if getattr(d, name) is not None]
        check(len(sources) <= 1, f"data: give one of dataset, train_file or synth, not {sources}")
        check(d.target_format in TARGET_FORMATS, f"data.target_format must be one of {TARGET_FORMATS}")
        check(d.num_workers >= 0, "data.num_workers must be >= 0")
        check(d.prefetch_factor >= 1, "data.prefetch_factor must be >= 1")
        check(d.synth is None or self.max_steps is not None, "data.synth is an endless stream: set max_steps")
        if d.mix is not None:
            _check_mix(d)
        check(self.lora.r >= 1 and self.lora.alpha > 0, "lora.r must be >= 1 and lora.alpha > 0")
        check(0 <= self.lora.dropout < 1, "lora.dropout must be within [0, 1)")
        o = self.optim
        check(o.learning_rate > 0, f"optim.learning_rate must be > 0, got {o.learning_rate}")
        check(o.scheduler in SCHEDULERS, f"optim.scheduler must be one of {SCHEDULERS}")
        check(o.cycles >= 1, f"optim.cycles must be at least 1, got {o.cycles}")
        check(0 < o.cycle_decay <= 1, f"optim.cycle_decay must be within (0, 1], got {o.cycle_decay}")
        check(0 <= o.warmup_ratio < 1, "optim.warmup_ratio must be within [0, 1)")
        check(self.eval.every_steps >= 0 and self.eval.n_samples >= 0, "eval.every_steps/n_samples must be >= 0")
        check(self.eval.batch_size >= 1, "eval.batch_size must be >= 1")
        check(self.checkpoint.every_steps >= 0, "checkpoint.every_steps must be >= 0")
        check(self.checkpoint.keep_last >= 1, "checkpoint.keep_last must be >= 1")
        self.prompt_contract()
        self.resolution_contract()

    def prompt_contract(self) -> PromptContract:
        return PromptContract.from_dict(self.prompt)

    def resolution_contract(self) -> Resolution | None:
        return Resolution.from_dict(self.resolution) if self.resolution else None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return _build(cls, data, "")


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = _hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        names = ", ".join(f"{where}{k}" for k in unknown)
        raise ConfigError(f"unknown config key(s): {names} (known here: {', '.join(sorted(known))})")
    values = {}
    for key, value in data.items():
        values[key] = _coerce(hints[key], value, f"{where}{key}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{where or 'config'}: {exc}") from exc


MIX_KEYS = ("share", "synth", "prompt")


def _check_mix(d: DataConfig) -> None:
    """data.mix: a share in (0, 1), SynthConfig keys that make a valid config with the main stream's, a prompt."""
    from vlmocr.data.synth import SynthConfig

    mix = d.mix
    assert mix is not None
    if d.synth is None:
        raise ConfigError("data.mix mixes a second synthetic stream into data.synth's; set data.synth too")
    unknown = sorted(set(mix) - set(MIX_KEYS))
    if unknown:
        raise ConfigError(f"data.mix: unknown key(s) {unknown} (known: {', '.join(MIX_KEYS)})")
    share = mix.get("share")
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share < 1:
        raise ConfigError(f"data.mix.share must be a number between 0 and 1 (the extra stream's part of the "
                          f"samples), got {share!r}")
    extra = mix.get("synth") or {}
    if not isinstance(extra, dict):
        raise ConfigError(f"data.mix.synth must be a mapping of synth keys, got {extra!r}")
    try:
        SynthConfig.from_dict(d.mix_synth())
    except ConfigError as exc:
        raise ConfigError(f"data.mix.synth: {exc}") from exc
    if mix.get("prompt") is not None:
        if not isinstance(mix["prompt"], dict):
            raise ConfigError(f"data.mix.prompt must be a mapping (system, question), got {mix['prompt']!r}")
        PromptContract.from_dict(mix["prompt"])


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """Check/convert one YAML value against its annotation (dataclass, optional, scalar)."""
    if dataclasses.is_dataclass(hint):
        return _build(hint, value if value is not None else {}, where + ".")
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where) if len(inner) == 1 else value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from exc
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [str(v) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    return value


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=value` → (["a", "b"], parsed value); the value is read as YAML."""
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} must look like section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from exc
    return [p for p in key.strip().split(".") if p], value


def apply_overrides(data: dict[str, Any], overrides: list[str] | dict[str, Any]) -> dict[str, Any]:
    """Return a copy of `data` with `section.key=value` overrides applied."""
    import copy

    result = copy.deepcopy(data)
    items = overrides.items() if isinstance(overrides, dict) else (parse_override(o) for o in overrides)
    for key, value in items:
        parts = key.split(".") if isinstance(key, str) else list(key)
        node = result
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {'.'.join(parts)}: {part} is not a section")
            node = child
        node[parts[-1]] = value
    return result


def load_config(path: Path | None = None, overrides: list[str] | dict[str, Any] | None = None) -> TrainConfig:
    """Defaults ← YAML file ← overrides. Relative data/model paths stay relative to the cwd."""
    import yaml

    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        data = loaded or {}
    if overrides:
        data = apply_overrides(data, overrides)
    try:
        return TrainConfig.from_dict(data)
    except ConfigError as exc:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}{exc}") from exc


def dump_config(config: TrainConfig) -> str:
    """The resolved config as YAML (what RUN/config.yaml holds)."""
    import yaml

    return yaml.safe_dump(config.to_dict(), sort_keys=False, allow_unicode=True)
