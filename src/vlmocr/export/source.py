"""Find what to export: a run folder, a checkpoint or a model folder → an `ExportSource`.

A run folder (written by `vlmocr train`) holds `best/` and/or `final/`; `best/` wins.
A checkpoint (`RUN/checkpoints/step-NNNNNN/`) counts only with its `COMPLETE` marker.
A model folder is a PEFT adapter (`adapter_config.json` + `adapter_model.safetensors`)
or full weights (`config.json` + `*.safetensors`). Pickle weights (`*.bin`, `*.pt`) are
refused, never loaded. The base of an adapter comes from `--base`, else the contract's
`base_model`, else the adapter's own `base_model_name_or_path`.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vlmocr.contract import CONTRACT_FILE, ModelContract, load_contract
from vlmocr.errors import ExportError

log = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
COMPLETE_MARKER = "COMPLETE"
#: Weight files that would need pickle to read: refused.
PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.ckpt")
#: Files that show a folder carries a tokenizer/processor of its own.
PROCESSOR_MARKERS = ("tokenizer.json", "tokenizer_config.json")
_STEP = re.compile(r"^(step|checkpoint)-\d+$")


@dataclass(frozen=True)
class ExportSource:
    """What `export_model` will read: the weights, their kind, the base and the contract."""

    model_dir: Path
    kind: Literal["lora", "full"]
    method: str
    base_model: str | None
    contract: ModelContract
    run_dir: Path | None
    processor_source: str


def resolve_source(source: Path, base: str | None = None) -> ExportSource:
    """Resolve a run folder, checkpoint or model folder into an `ExportSource`."""
    source = Path(source).expanduser()
    if not source.exists():
        raise ExportError(f"{source}: no such run or model folder")
    if not source.is_dir():
        raise ExportError(f"{source}: expected a folder (a training run, a checkpoint or a model)")
    run_dir: Path | None = None
    if _is_model_dir(source):
        model_dir = source
        run_dir = _run_of(source)
    else:
        candidates = [source / name for name in ("best", "final")]
        found = [c for c in candidates if c.is_dir() and _is_model_dir(c)]
        if not found:
            raise ExportError(
                f"{source}: neither a run folder with best/ or final/ model files nor a model folder "
                f"({ADAPTER_CONFIG} + {ADAPTER_WEIGHTS}, or config.json + *.safetensors)"
                + _pickle_hint(source, *candidates)
            )
        model_dir, run_dir = found[0], source
        log.info("exporting %s of run %s", model_dir.name, run_dir)
    if _STEP.match(model_dir.name) and not (model_dir / COMPLETE_MARKER).is_file():
        raise ExportError(
            f"{model_dir}: checkpoint is incomplete (no {COMPLETE_MARKER} marker); "
            "it may have been cut off while saving. Export another checkpoint or the run's best/ or final/."
        )
    kind: Literal["lora", "full"] = "lora" if (model_dir / ADAPTER_CONFIG).is_file() else "full"
    _check_safetensors(model_dir, kind)
    contract = _load_contract(model_dir, run_dir)
    method = str(contract.extra.get("method") or kind)
    if kind == "full" and method in ("lora", "qlora"):
        log.warning("%s holds full weights but the run says method=%s; re-saving them as is", model_dir, method)
        method = "full"
    if kind == "lora" and method == "full":
        method = "lora"
    base_model = _resolve_base(base, contract, model_dir, kind)
    return ExportSource(
        model_dir=model_dir.resolve(),
        kind=kind,
        method=method,
        base_model=base_model,
        contract=contract,
        run_dir=run_dir.resolve() if run_dir else None,
        processor_source=_processor_source(model_dir, run_dir, base_model),
    )


def _is_model_dir(path: Path) -> bool:
    return (path / ADAPTER_CONFIG).is_file() or (path / "config.json").is_file()


def _run_of(model_dir: Path) -> Path | None:
    """The run folder a model/checkpoint folder belongs to, if it sits in one."""
    parent = model_dir.parent
    if model_dir.name in ("best", "final") and (parent / CONTRACT_FILE).is_file():
        return parent
    if parent.name == "checkpoints" and (parent.parent / CONTRACT_FILE).is_file():
        return parent.parent
    return None


def _pickle_hint(*folders: Path) -> str:
    for folder in folders:
        if folder.is_dir() and any(any(folder.glob(p)) for p in PICKLE_PATTERNS):
            return f" ({folder} holds pickle weights, which vlmocr does not load: save them as safetensors)"
    return ""


def _check_safetensors(model_dir: Path, kind: str) -> None:
    if kind == "lora":
        if not (model_dir / ADAPTER_WEIGHTS).is_file():
            raise ExportError(
                f"{model_dir}: {ADAPTER_CONFIG} without {ADAPTER_WEIGHTS}"
                + _pickle_hint(model_dir)
                + "; save the adapter with safe_serialization (PEFT's default)"
            )
        return
    if not any(model_dir.glob("*.safetensors")):
        raise ExportError(
            f"{model_dir}: config.json but no *.safetensors weights" + _pickle_hint(model_dir)
        )


def _load_contract(model_dir: Path, run_dir: Path | None) -> ModelContract:
    for folder in (model_dir, run_dir):
        if folder is not None and (folder / CONTRACT_FILE).is_file():
            try:
                return load_contract(folder)
            except Exception as exc:  # ConfigError from a malformed vlmocr.json
                raise ExportError(f"{folder / CONTRACT_FILE}: {exc}") from exc
    log.warning("%s: no %s; using the default prompt and resolution", model_dir, CONTRACT_FILE)
    return ModelContract()


def _resolve_base(base: str | None, contract: ModelContract, model_dir: Path, kind: str) -> str | None:
    origin = "--base"
    if not base:
        base, origin = contract.base_model, f"{CONTRACT_FILE} base_model"
    if not base and kind == "lora":
        try:
            config = json.loads((model_dir / ADAPTER_CONFIG).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ExportError(f"{model_dir / ADAPTER_CONFIG}: unreadable ({exc})") from exc
        base, origin = config.get("base_model_name_or_path"), f"{ADAPTER_CONFIG} base_model_name_or_path"
    if not base:
        if kind == "lora":
            raise ExportError(f"{model_dir}: the adapter does not say which base it was trained on; pass --base")
        return None
    path = Path(base).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ExportError(f"base model {path} (from {origin}) has no config.json")
        return str(path.resolve())
    if base.startswith(("/", ".", "~")) or base.count("/") > 1:
        raise ExportError(f"base model {base} (from {origin}) does not exist; pass --base with its folder")
    return base  # a hub id: transformers resolves it (from its cache when offline)


def _processor_source(model_dir: Path, run_dir: Path | None, base_model: str | None) -> str:
    for folder in (model_dir, run_dir):
        if folder is not None and any((folder / m).is_file() for m in PROCESSOR_MARKERS):
            return str(folder.resolve())
    if base_model:
        log.warning("%s has no tokenizer/processor files; taking them from the base %s", model_dir, base_model)
        return base_model
    raise ExportError(f"{model_dir}: no tokenizer/processor files and no base model to take them from")


def local_paths(source: ExportSource) -> list[Path]:
    """Local folders the export reads from (the output may not overlap any of them)."""
    paths = [source.model_dir]
    if source.run_dir:
        paths.append(source.run_dir)
    for name in (source.base_model, source.processor_source):
        if name and Path(name).is_dir():
            paths.append(Path(name).resolve())
    return paths
