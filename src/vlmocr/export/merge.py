"""`export_model`: merge an adapter (or re-save full weights) into a verified, servable directory.

LoRA and QLoRA: the base is loaded unquantized in fp32 (a QLoRA run merges into the
full-precision base, never into 4-bit weights), the adapter is applied with PEFT from
safetensors only, every adapter tensor is checked to have landed, and the sum is merged
and cast once to the requested dtype. A full fine-tune is loaded and re-saved the same
way. Remote code stays off throughout.

Written: sharded safetensors + index (`max_shard_size`), config.json,
generation_config.json, the processor, tokenizer and chat template, min/max pixels in
every processor file, the legacy files older tools read (files.py), `vlmocr.json` (the
contract, base model, versions) and `export_report.json` (config, source, every check).
Everything goes to a temp folder beside `out` that is renamed only after verification
passed: a failed export leaves no directory that looks finished.
"""

from __future__ import annotations

import gc
import logging
import re
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from vlmocr._deps import require
from vlmocr.contract import save_contract
from vlmocr.errors import ConfigError, ExportError
from vlmocr.export import files as F
from vlmocr.export.source import ADAPTER_WEIGHTS, ExportSource, local_paths, resolve_source
from vlmocr.export.verify import Reference, VerifyConfig, VerifyReport, forward_logits, load_model, probe_inputs
from vlmocr.fileio import atomic_directory, atomic_write_json, provenance
from vlmocr.models.builtin import resolve_model

log = logging.getLogger(__name__)

Dtype = Literal["bf16", "fp16", "fp32"]
REPORT_FILE = "export_report.json"
_SHARD = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(KB|MB|GB|KIB|MIB|GIB|B)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class ExportConfig:
    """What to export and how (defaults are the CLI's)."""

    base: str | None = None
    dtype: Dtype = "bf16"
    shard_size: str = "2GB"
    verify: bool = True
    verification: VerifyConfig = field(default_factory=VerifyConfig)
    legacy_files: bool = True
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in F.SAFETENSORS_DTYPES:
            raise ConfigError(f"dtype must be one of {sorted(F.SAFETENSORS_DTYPES)}, got {self.dtype!r}")
        parse_shard_size(self.shard_size)


@dataclass(frozen=True)
class ExportResult:
    """Where the export went, what it was made from, and what verification found."""

    path: Path
    source: Path
    kind: str
    method: str
    base_model: str | None
    dtype: str
    n_parameters: int
    weight_files: list[str]
    files: list[str]
    verification: VerifyReport | None
    seconds: float
    verify_seconds: float = 0.0


def parse_shard_size(value: str | int) -> int:
    """Bytes in a shard size like "2GB", "500MB" or 1000000 (decimal units, as transformers)."""
    if isinstance(value, int):
        size = value
    else:
        match = _SHARD.match(str(value))
        if not match:
            raise ConfigError(f"shard size must look like 2GB, 500MB or a byte count, got {value!r}")
        units = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
        size = int(float(match.group(1)) * units[(match.group(2) or "B").upper()])
    if size < 1:
        raise ConfigError(f"shard size must be positive, got {value!r}")
    return size


def export_model(source: Path, out: Path, config: ExportConfig | None = None) -> ExportResult:
    """Export `source` (a run folder, a checkpoint or a model folder) to `out`, verified."""
    config = config or ExportConfig()
    start = time.perf_counter()
    src = resolve_source(Path(source), resolve_model(config.base))
    out = Path(out).expanduser()
    _check_out(out, src, config.overwrite)
    torch = require("torch", extra="train", purpose="Exporting a model")
    require("transformers", extra="train", purpose="Exporting a model")
    log.info("exporting %s (%s, method %s) → %s as %s", src.model_dir, src.kind, src.method, out, config.dtype)
    try:
        with atomic_directory(out, overwrite=config.overwrite) as tmp:
            model, reference = _merged_model(src, config)
            n_parameters = sum(p.numel() for p in model.parameters())
            model.to(getattr(torch, F.TORCH_DTYPE_NAMES[config.dtype]))
            model.save_pretrained(tmp, max_shard_size=parse_shard_size(config.shard_size))
            del model
            gc.collect()
            _write_side_files(tmp, src, config)
            report, verify_start = None, time.perf_counter()
            if config.verify:
                from vlmocr.export.verify import verify_export

                report = verify_export(tmp, reference, contract=src.contract, dtype=config.dtype,
                                       legacy_files=config.legacy_files, config=config.verification)
                if not report.ok:
                    lines = "\n".join(f"  {c.name}: {c.detail}" for c in report.failures)
                    raise ExportError(f"verification failed; nothing was written to {out}:\n{lines}")
            verify_seconds = time.perf_counter() - verify_start
            atomic_write_json(tmp / REPORT_FILE, {
                "source": _source_dict(src),
                "config": _config_dict(config),
                "verification": report.to_dict() if report else None,
                "verify_seconds": verify_seconds,
                "provenance": provenance(),
            })
            written = sorted(p.name for p in tmp.iterdir())
            weights = F.inspect_weights(tmp).files
    except FileExistsError as exc:
        raise ExportError(f"{out} already exists (pass --overwrite to replace it)") from exc
    seconds = time.perf_counter() - start
    log.info("exported %d parameters to %s in %.1f s", n_parameters, out, seconds)
    return ExportResult(out, src.model_dir, src.kind, src.method, src.base_model, config.dtype,
                        n_parameters, weights, written, report, seconds, verify_seconds)


def verify_model(directory: Path, source: Path, config: ExportConfig | None = None) -> VerifyReport:
    """Verify an existing export against the run/model it was made from (writes nothing).

    The dtype checked is the one config.json records; the contract is the source's.
    """
    import json

    from vlmocr.export.verify import verify_export

    config = config or ExportConfig()
    directory = Path(directory)
    if not directory.is_dir():
        raise ExportError(f"{directory}: no such exported model folder")
    src = resolve_source(Path(source), resolve_model(config.base))
    model, reference = _merged_model(src, replace(config, verify=True))
    del model
    gc.collect()
    try:
        stored = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        stored = {}
    names = {v: k for k, v in F.TORCH_DTYPE_NAMES.items()}
    dtype = names.get(str(stored.get("dtype") or stored.get("torch_dtype")), config.dtype)
    return verify_export(directory, reference, contract=src.contract, dtype=dtype,
                         legacy_files=config.legacy_files, config=config.verification)


def _check_out(out: Path, src: ExportSource, overwrite: bool) -> None:
    target = out.resolve()
    for path in local_paths(src):
        if target == path or target in path.parents:
            raise ExportError(f"--out {out} would overwrite {path}, which the export reads; choose another folder")
    if out.exists() and not overwrite:
        raise ExportError(f"{out} already exists (pass --overwrite to replace it)")


def _merged_model(src: ExportSource, config: ExportConfig) -> tuple[Any, Reference | None]:
    """The model to save (fp32) and, when verifying, the reference outputs measured on the way."""
    inputs = None
    if config.verify:
        processor = _load_processor(src.processor_source)
        inputs = probe_inputs(processor, src.contract)
    if src.kind == "full":
        model = _load(src.model_dir, "fine-tuned model")
        if inputs is None:
            return model, None
        reference = Reference(inputs, forward_logits(model, inputs), None, tied=_tied(model))
        reference.base_logits, reference.base_skip_reason = _base_logits(src, inputs)
        return model, reference
    if not src.base_model:
        raise ExportError(f"{src.model_dir}: no base model for the adapter; pass --base")
    _refuse_quantized_base(src.base_model)
    model = _load(src.base_model, "base model")
    tied = _tied(model)
    base_logits = forward_logits(model, inputs) if inputs is not None else None
    peft_model = _apply_adapter(model, src.model_dir)
    logits = forward_logits(peft_model, inputs) if inputs is not None else None
    merged = peft_model.merge_and_unload()
    merged.eval()
    reference = Reference(inputs, logits, base_logits, tied=tied) if inputs is not None else None
    return merged, reference


def _load(path: str | Path, what: str) -> Any:
    """Load a model in fp32, turning loader failures into an ExportError that names it."""
    try:
        return load_model(path, "fp32")
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        hint = " (a hub id needs network access or the model in the local cache; pass --base DIR)"
        raise ExportError(f"cannot load the {what} {path}: {exc}"
                          + (hint if not Path(path).exists() else "")) from exc


def _load_processor(source: str) -> Any:
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(source, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"cannot load the processor/tokenizer from {source}: {exc}") from exc


def _tied(model: Any) -> bool:
    return bool(getattr(model.config, "tie_word_embeddings", False))


def _base_logits(src: ExportSource, inputs: Any) -> tuple[Any | None, str]:
    """Logits of the base a full fine-tune started from, if it is a local folder."""
    base = src.base_model
    if not base or not Path(base).is_dir():
        return None, f"the base ({base or 'unknown'}) is not a local folder (pass --base to compare with it)"
    model = _load(base, "base model")
    logits = forward_logits(model, inputs)
    del model
    gc.collect()
    return logits, ""


def _refuse_quantized_base(base: str) -> None:
    config = Path(base) / "config.json"
    if config.is_file() and '"quantization_config"' in config.read_text(encoding="utf-8"):
        raise ExportError(
            f"base {base} is a quantized checkpoint; merge into the full-precision base "
            "(pass --base with the unquantized model a QLoRA run was trained from)"
        )


def _apply_adapter(model: Any, adapter_dir: Path) -> Any:
    """Apply a PEFT adapter from safetensors and check that every tensor in the file landed."""
    import torch

    peft = require("peft", extra="train", purpose="Merging a LoRA adapter")
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import load_file

    try:
        peft_model = peft.PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
    except (ValueError, KeyError, RuntimeError, OSError) as exc:
        raise ExportError(f"{adapter_dir}: the adapter does not fit the base model ({exc})") from exc
    peft_model.eval()
    saved = load_file(str(adapter_dir / ADAPTER_WEIGHTS))
    loaded = get_peft_model_state_dict(peft_model)
    absent = sorted(set(saved) - set(loaded))
    if absent:
        raise ExportError(
            f"{adapter_dir}: {len(absent)} adapter tensors match no module of the base "
            f"(e.g. {absent[0]}); is --base the model this adapter was trained on?"
        )
    differ = [k for k, v in saved.items() if not torch.equal(loaded[k].to(v.dtype).cpu(), v)]
    if differ:
        raise ExportError(f"{adapter_dir}: {len(differ)} adapter tensors did not load as saved (e.g. {differ[0]})")
    log.info("applied %d adapter tensors from %s", len(saved), adapter_dir)
    return peft_model


def _write_side_files(tmp: Path, src: ExportSource, config: ExportConfig) -> None:
    processor = _load_processor(src.processor_source)
    processor.save_pretrained(tmp)
    F.write_resolution(tmp, src.contract.resolution)
    generation = src.model_dir / "generation_config.json"
    if generation.is_file():  # what the run saved wins over the base's
        shutil.copyfile(generation, tmp / "generation_config.json")
    if config.legacy_files:
        F.write_legacy_files(tmp)
    _fix_config_dtype(tmp / "config.json", config.dtype, legacy=config.legacy_files)
    extra = {
        **src.contract.extra,
        "method": src.method,
        "export": {
            "source": str(src.model_dir),
            "run": str(src.run_dir) if src.run_dir else None,
            "kind": src.kind,
            "merged": src.kind == "lora",
            "dtype": config.dtype,
        },
    }
    save_contract(tmp, replace(src.contract, base_model=src.base_model, extra=extra))


def _fix_config_dtype(path: Path, dtype: str, *, legacy: bool) -> None:
    """Make every `dtype` in config.json the exported one (sub-configs keep the load dtype otherwise).

    With legacy files, `torch_dtype` is written too: older transformers 4.x releases (and
    the vLLM releases built on them) read that key, not `dtype`.
    """
    import json

    data = json.loads(path.read_text(encoding="utf-8"))
    name = F.TORCH_DTYPE_NAMES[dtype]
    data["dtype"] = name
    for value in data.values():
        if isinstance(value, dict) and "dtype" in value:
            value["dtype"] = name
    if legacy:
        data["torch_dtype"] = name
    atomic_write_json(path, data)


def _source_dict(src: ExportSource) -> dict[str, Any]:
    """The source as JSON (its contract is stored in vlmocr.json)."""
    return {
        "model_dir": str(src.model_dir),
        "kind": src.kind,
        "method": src.method,
        "base_model": src.base_model,
        "run_dir": str(src.run_dir) if src.run_dir else None,
        "processor_source": src.processor_source,
    }


def _config_dict(config: ExportConfig) -> dict[str, Any]:
    return asdict(config)
