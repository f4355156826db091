"""The exported file set: processor files carrying the resolution, legacy files, weight headers.

transformers 5 saves a processor as `processor_config.json` (image + video processor
inside) + `chat_template.jinja` + `tokenizer.json` + `tokenizer_config.json`. The seed's
LLaMA-Factory listing (transformers 4) also had `preprocessor_config.json`,
`chat_template.json`, `vocab.json`, `merges.txt`, `added_tokens.json` and
`special_tokens_map.json`. Older tools read those, so they are written too (derived
from the current files, so they cannot disagree); docs/export.md explains each one.

Weight headers are read straight from the safetensors files (8-byte length + JSON), so
a truncated or mislabelled shard is caught without torch and without loading tensors.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmocr.errors import ExportError
from vlmocr.fileio import atomic_write_json, atomic_write_text
from vlmocr.images import Resolution

INDEX_FILE = "model.safetensors.index.json"
SINGLE_WEIGHTS = "model.safetensors"
#: Files every export has (weights are checked separately: one file or shards + index).
REQUIRED_FILES: tuple[str, ...] = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "preprocessor_config.json",
    "vlmocr.json",
)
#: Written for older tools (transformers 4, slow tokenizers, scripts that read the seed's layout).
LEGACY_FILES: tuple[str, ...] = (
    "chat_template.json",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "special_tokens_map.json",
)
#: safetensors dtype names for the export dtypes.
SAFETENSORS_DTYPES = {"fp32": "F32", "bf16": "BF16", "fp16": "F16"}
TORCH_DTYPE_NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
_FLOAT_DTYPES = {"F64", "F32", "BF16", "F16", "F8_E4M3", "F8_E5M2"}


def write_resolution(directory: Path, resolution: Resolution) -> list[str]:
    """Write min/max pixels into every processor file (both spellings); return files touched.

    `processor_config.json` (transformers 5) gets them in its image and video processors;
    `preprocessor_config.json` (what transformers 4, vLLM's docs and the seed use) is
    written from the image processor if missing.
    """
    sizes = {
        "min_pixels": resolution.min_pixels,
        "max_pixels": resolution.max_pixels,
        "size": {"shortest_edge": resolution.min_pixels, "longest_edge": resolution.max_pixels},
    }
    directory = Path(directory)
    touched: list[str] = []
    combined = directory / "processor_config.json"
    image_processor: dict[str, Any] | None = None
    if combined.is_file():
        data = _read_json(combined)
        for key in ("image_processor", "video_processor"):
            if isinstance(data.get(key), dict):
                data[key].update(sizes)
        atomic_write_json(combined, data)
        touched.append(combined.name)
        if isinstance(data.get("image_processor"), dict):
            image_processor = dict(data["image_processor"])
    single = directory / "preprocessor_config.json"
    if single.is_file():
        image_processor = {**_read_json(single), **sizes}
    if image_processor is None:
        raise ExportError(f"{directory}: the processor saved no image processor configuration")
    image_processor.setdefault("processor_class", "Qwen2_5_VLProcessor")
    atomic_write_json(single, {**image_processor, **sizes})
    touched.append(single.name)
    video = directory / "video_preprocessor_config.json"
    if video.is_file():
        atomic_write_json(video, {**_read_json(video), **sizes})
        touched.append(video.name)
    return touched


def write_legacy_files(directory: Path) -> list[str]:
    """Write the seed-layout files older tools read, derived from the current ones."""
    directory = Path(directory)
    written: list[str] = []
    template = directory / "chat_template.jinja"
    if template.is_file():
        atomic_write_json(directory / "chat_template.json", {"chat_template": template.read_text("utf-8")})
        written.append("chat_template.json")
    tok = _read_json(directory / "tokenizer.json")
    model = tok.get("model") or {}
    if model.get("type") == "BPE":
        atomic_write_json(directory / "vocab.json", model["vocab"], indent=None)
        merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
        atomic_write_text(directory / "merges.txt", "#version: 0.2\n" + "\n".join(merges) + "\n")
        written += ["vocab.json", "merges.txt"]
    added = {t["content"]: t["id"] for t in tok.get("added_tokens", [])}
    if added:
        atomic_write_json(directory / "added_tokens.json", added)
        written.append("added_tokens.json")
    config = _read_json(directory / "tokenizer_config.json")
    special: dict[str, Any] = {
        k: config[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token") if config.get(k)
    }
    extra = config.get("extra_special_tokens") or config.get("additional_special_tokens")
    if isinstance(extra, list) and extra:
        special["additional_special_tokens"] = extra
    atomic_write_json(directory / "special_tokens_map.json", special)
    written.append("special_tokens_map.json")
    return written


@dataclass(frozen=True)
class TensorInfo:
    file: str
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class WeightsInfo:
    """The weight files of a directory and every tensor's file, dtype and shape."""

    files: list[str]
    tensors: dict[str, TensorInfo]
    sharded: bool
    problems: list[str] = field(default_factory=list)

    @property
    def dtypes(self) -> set[str]:
        return {t.dtype for t in self.tensors.values() if t.dtype in _FLOAT_DTYPES}


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file, checked against the file's size."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise ExportError(f"{path.name}: too short to be a safetensors file")
        (n,) = struct.unpack("<Q", raw)
        if n > min(size - 8, 100_000_000):
            raise ExportError(f"{path.name}: header length {n} exceeds the file")
        try:
            header = json.loads(fh.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ExportError(f"{path.name}: unreadable safetensors header ({exc})") from exc
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise ExportError(f"{path.name}: truncated ({size} bytes, tensors need {8 + n + end})")
    return header


def inspect_weights(directory: Path) -> WeightsInfo:
    """Read every weight header (no tensor data); list problems instead of raising."""
    directory = Path(directory)
    problems: list[str] = []
    tensors: dict[str, TensorInfo] = {}
    index = directory / INDEX_FILE
    if index.is_file():
        try:
            weight_map: dict[str, str] = _read_json(index).get("weight_map") or {}
        except ExportError as exc:
            return WeightsInfo([], {}, True, [str(exc)])
        files = sorted(set(weight_map.values()))
        if not weight_map:
            problems.append(f"{INDEX_FILE} has an empty weight_map")
    elif (directory / SINGLE_WEIGHTS).is_file():
        weight_map, files = {}, [SINGLE_WEIGHTS]
    else:
        return WeightsInfo([], {}, False, [f"no {SINGLE_WEIGHTS} and no {INDEX_FILE}"])
    for name in files:
        path = directory / name
        if not path.is_file():
            problems.append(f"weight shard {name} is listed in {INDEX_FILE} but missing")
            continue
        try:
            header = read_safetensors_header(path)
        except ExportError as exc:
            problems.append(str(exc))
            continue
        for key, meta in header.items():
            if key != "__metadata__":
                tensors[key] = TensorInfo(name, meta["dtype"], tuple(meta["shape"]))
    for key, name in weight_map.items():
        if not (directory / name).is_file():
            continue  # reported above
        if key not in tensors:
            problems.append(f"{key}: listed in {INDEX_FILE} but not in {name}")
        elif tensors[key].file != name:
            problems.append(f"{key}: index says {name}, found in {tensors[key].file}")
    if weight_map:
        extra = sorted(set(tensors) - set(weight_map))
        if extra:
            problems.append(f"{len(extra)} tensors not in {INDEX_FILE} (e.g. {extra[0]})")
    stray = sorted(p.name for p in directory.glob("*.safetensors") if p.name not in files)
    if stray:
        problems.append(f"stray weight files not referenced by the index: {stray}")
    return WeightsInfo(files, tensors, index.is_file(), problems)


def missing_files(directory: Path, *, legacy: bool) -> list[str]:
    """Required (and, if asked, legacy) files absent from `directory`."""
    names = REQUIRED_FILES + (LEGACY_FILES if legacy else ())
    return [n for n in names if not (Path(directory) / n).is_file()]


def pickle_files(directory: Path) -> list[str]:
    return sorted(p.name for pat in ("*.bin", "*.pt", "*.pth", "*.pkl") for p in Path(directory).glob(pat))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ExportError(f"{path}: missing") from exc
    except json.JSONDecodeError as exc:
        raise ExportError(f"{path}: invalid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ExportError(f"{path}: expected a JSON object")
    return data
