"""Load the base model for a method (LoRA, QLoRA, full) and compute the answer-only loss.

- LoRA: adapters on the language model's linear layers, found by walking the model
  (`lora_targets`: never a hard-coded list; Qwen2.5-VL's vision MLP has gate/up/down_proj
  too, so names alone would adapt the vision tower). Vision tower and merger frozen.
- QLoRA: the same on a 4-bit (bitsandbytes NF4) base; needs a CUDA GPU, said clearly.
- Full: every weight trains (vision too unless `freeze_vision: true`), fp32 master weights.

`LossModel` wraps the model so DDP sees one forward: it runs the decoder, keeps only the
hidden states of answer tokens, and computes the cross-entropy in chunks through the LM
head (each chunk recomputed in backward), so full-vocabulary fp32 logits are never
materialised. `loss_chunk_size: 0` uses transformers' own loss over full logits (the
naive path, for comparison).
"""

from __future__ import annotations

import importlib.util
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmocr._deps import require
from vlmocr.contract import load_contract
from vlmocr.errors import ConfigError, ModelError
from vlmocr.images import Resolution

log = logging.getLogger(__name__)
PURPOSE = "Training"


@dataclass
class LoadedModel:
    model: Any  # what trains and generates: a PeftModel (LoRA/QLoRA) or the transformers model
    processor: Any
    resolution: Resolution
    device: Any
    autocast_dtype: Any  # torch dtype for autocast, or None (fp32)
    trainable_parameters: int
    total_parameters: int
    target_modules: str | None
    vision_attention: str = "per_window"  # the path the vision tower's attention runs (vision_attention.py)
    liger: bool = False  # whether Liger's kernels were applied (config.liger, or auto: speed_switches)
    compile: bool = False  # whether the language-model blocks were compiled (config.compile, or auto)


def resolve_device(name: str) -> Any:
    """`auto`: this process's GPU (LOCAL_RANK under torchrun/accelerate) if CUDA works, else CPU."""
    import os

    torch = require("torch", extra="train", purpose=PURPOSE)
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU does bf16 math in hardware (AVX512-BF16 or AMX), not by emulation."""
    torch = require("torch", extra="train", purpose=PURPOSE)
    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        fn = getattr(cpu, probe, None)
        try:
            if fn is not None and fn():
                return True
        except RuntimeError:
            continue
    return False


def resolve_precision(precision: str, device: Any) -> tuple[Any, Any]:
    """(autocast dtype or None, dtype to load frozen base weights in).

    auto: bf16 on a CUDA GPU that has it and on a CPU with bf16 in hardware (AVX512-BF16, AMX),
    where bf16 matrix products run 2-3x faster than fp32; else fp32.
    """
    torch = require("torch", extra="train", purpose=PURPOSE)
    if precision == "auto":
        if device.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        else:
            precision = "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"
    if precision == "fp32":
        return None, torch.float32
    if precision == "fp16":
        raise ConfigError("precision fp16 is not supported (no loss scaling); use bf16 or fp32")
    if device.type not in ("cuda", "cpu"):
        raise ConfigError(f"precision {precision} is not supported on {device.type}; use precision: fp32")
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("precision bf16 needs a GPU with bf16 (Ampere or newer); use precision: fp32 (or auto)")
    return torch.bfloat16, torch.bfloat16


def precision_name(autocast: Any) -> str:
    """What a run computes in, for logs and provenance: "bf16 autocast" or "fp32"."""
    return "fp32" if autocast is None else f"{str(autocast).removeprefix('torch.')} autocast"


def language_model_of(model: Any) -> tuple[str, Any]:
    """(qualified name, module) of the text decoder inside a Qwen2.5-VL model."""
    for name, module in model.named_modules():
        if name.endswith("language_model") and hasattr(module, "layers"):
            return name, module
    raise ModelError(f"{type(model).__name__}: no language_model with decoder layers found")


def lora_targets(model: Any, names: list[str] | None = None) -> str:
    """A PEFT regex matching the language model's linear layers (all, or those leaf names)."""
    torch = require("torch", extra="train", purpose=PURPOSE)
    prefix, lm = language_model_of(model)
    found: set[str] = set()
    for name, module in lm.layers.named_modules():
        if isinstance(module, torch.nn.Linear) or type(module).__name__.startswith("Linear"):
            found.add(name.split(".")[-1])
    found.discard("")
    if names:
        missing = sorted(set(names) - found)
        if missing:
            raise ConfigError(f"lora.target_modules {missing} are not linear layers of the language model "
                              f"(found: {sorted(found)})")
        found = set(names)
    if not found:
        raise ModelError("no linear layers found in the language model")
    leaves = "|".join(sorted(re.escape(n) for n in found))
    return rf"{re.escape(prefix)}\.layers\.\d+\.(?:.*\.)?(?:{leaves})"


def base_resolution(model: str, configured: Resolution | None) -> Resolution:
    """The resolution to train with: the config's, else the base model's contract, else the default."""
    if configured is not None:
        return configured
    return load_contract(model if Path(model).is_dir() else None).resolution


def check_method_supported(config: Any, device: Any) -> None:
    """Fail early, with the fix, where the method cannot run (QLoRA without CUDA, ...)."""
    if config.method == "qlora" and device.type != "cuda":
        raise ConfigError(
            "method qlora needs a CUDA GPU: bitsandbytes 4-bit weights do not train on CPU. "
            "Use method: lora (or full) here, or run on a machine with an NVIDIA GPU."
        )
    if config.method != "full" and config.freeze_vision is False:
        raise ConfigError(f"freeze_vision: false needs method full ({config.method} adapts the language model)")
    resolve_precision(config.precision, device)


def load_processor(config: Any) -> tuple[Any, Resolution]:
    """The base model's processor, its resizing set to the run's resolution contract."""
    transformers = require("transformers", extra="train", purpose=PURPOSE)
    from vlmocr.train.collate import set_processor_resolution

    try:
        processor = transformers.AutoProcessor.from_pretrained(config.model)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the processor of base model {config.model!r}: {exc}") from exc
    resolution = base_resolution(config.model, config.resolution_contract())
    set_processor_resolution(processor, resolution)
    return processor, resolution


#: Batches a run must plan for `compile: null` to compile: on the Qwen2.5-VL-3B shape (LoRA, batch 4,
#: one H200) compiling cost 64 s once and saved 0.085 s a batch (0.489 against 0.574 s), so it pays
#: back after ≈ 760 batches; shorter runs would be slower.
COMPILE_MIN_BATCHES = 1000


def speed_switches(config: Any, device: Any, planned_batches: int | None = None) -> tuple[bool, bool]:
    """(liger, compile) for this run: the config's values, with None resolved for `device`.

    compile None: on for LoRA on a CUDA GPU without gradient checkpointing and without liger: true,
    when the run plans at least COMPILE_MIN_BATCHES batches (optimizer steps x grad_accum): the
    configuration it was measured in (8.19 against 6.93 samples/s with Liger, 35.7 against 38.7 GiB,
    on the Qwen2.5-VL-3B shape, docs/train.md). liger None: on a CUDA GPU when liger-kernel is
    installed and nothing is compiled (its RMSNorm kernel fails to build under torch.compile:
    measured with liger-kernel 0.8.5 and torch 2.11).
    """
    cuda = getattr(device, "type", str(device)) == "cuda"
    compile_ = config.compile
    if compile_ is None:
        compile_ = (cuda and config.method == "lora" and not config.gradient_checkpointing
                    and config.liger is not True and (planned_batches or 0) >= COMPILE_MIN_BATCHES)
    liger = config.liger
    if liger is None:
        liger = cuda and not compile_ and importlib.util.find_spec("liger_kernel") is not None
    if liger and compile_:
        raise ConfigError("liger and compile do not combine (Liger's RMSNorm kernel fails to build under "
                          "torch.compile); set one of them to false")
    return bool(liger), bool(compile_)


def compile_blocks(layers: Any, *, automatic: bool, backend: Any = "inductor") -> None:
    """torch.compile each block (dynamic shapes: the sequence length changes every batch).

    When the compile was chosen automatically (`compile: null`) a block that fails to compile runs
    uncompiled instead of stopping the run (dynamo's suppress_errors, with its warning); with
    `compile: true` a failure stops the run, as asked.
    """
    import torch

    if automatic:
        torch._dynamo.config.suppress_errors = True
    log.info("compiling the %d language-model blocks (torch.compile%s: the first batch takes about a "
             "minute longer; compile: false turns it off)", len(layers),
             ", falling back to uncompiled blocks on an error" if automatic else "")
    for layer in layers:
        layer.compile(dynamic=True, backend=backend)


def use_liger_kernels(device: Any) -> None:
    """Patch transformers' Qwen2.5-VL classes with Liger's fused RMSNorm, SwiGLU and RoPE.

    The loss keeps vlmocr's chunked cross-entropy (same memory effect as Liger's fused
    linear cross-entropy, and it honours the answer-only labels the same way).
    """
    if device.type != "cuda":
        raise ConfigError("liger: true needs a CUDA GPU (its kernels are Triton); set liger: false here")
    liger = require("liger_kernel.transformers", extra="train", purpose="Liger kernels", package="liger-kernel")
    try:
        liger.apply_liger_kernel_to_qwen2_5_vl(rope=True, rms_norm=True, swiglu=True, cross_entropy=False,
                                               fused_linear_cross_entropy=False)
    except Exception as exc:  # a Liger release that does not know this transformers
        raise ConfigError(f"liger: true failed to patch Qwen2.5-VL ({type(exc).__name__}: {exc}); "
                          "set liger: false or install a liger-kernel release for this transformers") from exc


def load_for_training(config: Any, processor: Any, resolution: Resolution, *, device: Any,
                      resume_from: Path | None = None, planned_batches: int | None = None) -> LoadedModel:
    """The base model ready for `config.method` on `device` (weights from `resume_from` if given).

    planned_batches: the batches this process will run (compile: null compiles only long runs).
    """
    torch = require("torch", extra="train", purpose=PURPOSE)
    transformers = require("transformers", extra="train", purpose=PURPOSE)

    check_method_supported(config, device)
    freeze_vision = config.freeze_vision if config.freeze_vision is not None else config.method != "full"
    autocast, load_dtype = resolve_precision(config.precision, device)
    if config.method == "full":
        load_dtype = torch.float32  # fp32 master weights; autocast does the bf16 math
    kwargs: dict[str, Any] = {"dtype": load_dtype, "attn_implementation": config.attn_implementation}
    if config.method == "qlora":
        require("bitsandbytes", extra="qlora", purpose="QLoRA")
        kwargs["quantization_config"] = transformers.BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16, llm_int8_skip_modules=["visual", "lm_head"],
        )
        kwargs["device_map"] = {"": device}
    liger, compile_ = speed_switches(config, device, planned_batches)
    if liger:
        use_liger_kernels(device)
    source = str(resume_from) if resume_from is not None and config.method == "full" else config.model
    try:
        model = transformers.AutoModelForImageTextToText.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model {source!r}: {exc}") from exc
    if config.method != "qlora":
        model.to(device)
    model.config.use_cache = False
    from vlmocr.train.vision_attention import use_vision_attention

    if device.type == "cuda" and not config.cudnn_attention:
        # cuDNN's SDPA builds an execution plan for every new (batch, length) shape, ~2 ms of
        # CPU per call on the 3B shape and ~110 ms on the small model: with lengths that change
        # every batch that is most of a step. The memory-efficient kernel needs no plan.
        torch.backends.cuda.enable_cudnn_sdp(False)

    vision_path = use_vision_attention(model, config.vision_attention, device)

    prefix, lm = language_model_of(model)
    target = None
    if config.method in ("lora", "qlora"):
        peft = require("peft", extra="train", purpose="LoRA training")
        if config.method == "qlora":
            model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        for p in model.parameters():
            p.requires_grad_(False)
        target = lora_targets(model, config.lora.target_modules)
        if resume_from is not None:
            model = peft.PeftModel.from_pretrained(model, str(resume_from), is_trainable=True)
        else:
            lora = peft.LoraConfig(r=config.lora.r, lora_alpha=config.lora.alpha,
                                   lora_dropout=config.lora.dropout, target_modules=target, bias="none",
                                   task_type="CAUSAL_LM")
            model = peft.get_peft_model(model, lora)
    else:
        for name, p in model.named_parameters():
            p.requires_grad_(not (freeze_vision and ".visual." in f".{name}"))
    if config.gradient_checkpointing:
        # Language-model blocks only, non-reentrant: checkpointing the frozen vision tower too
        # (the usual model.gradient_checkpointing_enable()) costs 2.3x more time for little memory.
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if config.checkpoint_every > 1:  # recompute only every k-th block: memory vs time in between
            for i, layer in enumerate(lm.layers):
                layer.gradient_checkpointing = i % config.checkpoint_every == 0
    if compile_:
        compile_blocks(lm.layers, automatic=config.compile is None)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log.info("%s on %s: %d of %d parameters train (%s); %s; vision attention %s", config.method, device,
             trainable, total, prefix, precision_name(autocast), vision_path)
    return LoadedModel(model, processor, resolution, device, autocast, trainable, total, target, vision_path, liger,
                       compile_)


def hf_model_of(model: Any) -> Any:
    """The transformers model inside a PeftModel (with its LoRA layers), or the model itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def make_loss_model(model: Any, chunk_size: int) -> Any:
    """Wrap `model` in a module whose forward returns (sum of answer-token losses, their count)."""
    torch = require("torch", extra="train", purpose=PURPOSE)
    from torch.utils.checkpoint import checkpoint

    class LossModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, labels, pixel_values, image_grid_thw,  # type: ignore[no-untyped-def]
                    position_ids=None):
            # position_ids: the M-RoPE positions from the collator (vlmocr.train.collate); without
            # them transformers 5 falls back to 1-D positions unless mm_token_type_ids are given.
            n_tokens = (labels[:, 1:] != -100).sum()
            if chunk_size == 0:
                out = self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels,
                                 pixel_values=pixel_values, image_grid_thw=image_grid_thw,
                                 position_ids=position_ids, use_cache=False)
                return out.loss.float() * n_tokens, n_tokens
            inner = hf_model_of(self.model)
            out = inner.model(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values,
                              image_grid_thw=image_grid_thw, position_ids=position_ids, use_cache=False,
                              return_dict=True)
            hidden = out.last_hidden_state[:, :-1]
            target = labels[:, 1:]
            keep = target != -100
            hidden = hidden[keep]
            target = target[keep]
            head = inner.lm_head

            def chunk_loss(h: Any, y: Any) -> Any:
                logits = head(h).float()
                return torch.nn.functional.cross_entropy(logits, y, reduction="sum")

            total = hidden.new_zeros((), dtype=torch.float32)
            for start in range(0, hidden.shape[0], chunk_size):
                h, y = hidden[start:start + chunk_size], target[start:start + chunk_size]
                if torch.is_grad_enabled():
                    total = total + checkpoint(chunk_loss, h, y, use_reentrant=False)
                else:
                    total = total + chunk_loss(h, y)
            return total, n_tokens

    return LossModel()
