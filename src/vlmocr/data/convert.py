"""Convert a Roboflow dataset to ShareGPT (LLaMA-Factory) or messages (TRL) files.

Output files are written atomically (temp file + rename); an existing
`dataset_info.json` in the output folder (e.g. LLaMA-Factory's `data/`) is updated in
place, keeping its other entries. The input is never touched.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vlmocr.data.messages import format_messages
from vlmocr.data.roboflow import DatasetReport, check_dataset, enforce_skip_threshold
from vlmocr.data.sharegpt import dataset_info_entry, format_sharegpt
from vlmocr.errors import ConfigError, DatasetError
from vlmocr.fileio import atomic_write_json, atomic_write_text
from vlmocr.images import DEFAULT_MAX_IMAGE_PIXELS
from vlmocr.prompts import PromptContract
from vlmocr.records import Record, Skip

Format = Literal["sharegpt", "messages"]
PathStyle = Literal["absolute", "relative"]


@dataclass(frozen=True)
class ConvertConfig:
    to: Format = "sharegpt"
    name: str = "manifest"
    splits: tuple[str, ...] = ("train",)
    image_paths: PathStyle = "absolute"
    keep_prefix: bool = False
    prompt: PromptContract = field(default_factory=PromptContract)
    max_skip_ratio: float = 0.05
    verify_images: bool = True
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS


@dataclass
class ConvertReport:
    out: Path
    files: dict[str, Path] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    skips: list[Skip] = field(default_factory=list)
    dataset_info: Path | None = None

    def to_dict(self) -> dict:
        return {
            "out": str(self.out),
            "files": {k: str(v) for k, v in self.files.items()},
            "written": self.written,
            "skipped": [str(s) for s in self.skips],
            "dataset_info": str(self.dataset_info) if self.dataset_info else None,
        }


def output_name(name: str, split: str) -> str:
    """Dataset name for a split: the bare name for train, `name_split` otherwise."""
    return name if split == "train" else f"{name}_{split}"


def _image_ref(record: Record, out: Path, style: PathStyle) -> str:
    if style == "absolute":
        return str(record.image_path)
    return os.path.relpath(record.image_path, out.resolve())


def convert_dataset(root: Path, out: Path, config: ConvertConfig | None = None) -> ConvertReport:
    """Convert the configured splits of `root` into `out`; return what was written and skipped."""
    config = config or ConvertConfig()
    if config.to not in ("sharegpt", "messages"):
        raise ConfigError(f"unknown format {config.to!r} (choose sharegpt or messages)")
    if not config.name or "/" in config.name or config.name.startswith("."):
        raise ConfigError(f"invalid dataset name {config.name!r}")
    out = Path(out)
    if out.resolve() == Path(root).resolve() or Path(root).resolve() in out.resolve().parents:
        raise ConfigError(f"--out {out} must not be inside the input dataset {root}")
    dataset: DatasetReport = check_dataset(
        root,
        config.splits,
        verify_images=config.verify_images,
        max_image_pixels=config.max_image_pixels,
    )
    enforce_skip_threshold(dataset, config.max_skip_ratio)
    report = ConvertReport(out=out, skips=dataset.skips)
    out.mkdir(parents=True, exist_ok=True)
    entries: dict[str, dict] = {}
    for split, split_report in dataset.splits.items():
        stem = output_name(config.name, split)
        refs = [_image_ref(r, out, config.image_paths) for r in split_report.records]
        if config.to == "sharegpt":
            samples = [
                format_sharegpt(r, ref, config.prompt, keep_prefix=config.keep_prefix)
                for r, ref in zip(split_report.records, refs)
            ]
            path = out / f"{stem}.json"
            atomic_write_text(path, json.dumps(samples, ensure_ascii=False, indent=4) + "\n")
            entries[stem] = dataset_info_entry(path.name)
        else:
            lines = [
                json.dumps(format_messages(r, ref, config.prompt, keep_prefix=config.keep_prefix), ensure_ascii=False)
                for r, ref in zip(split_report.records, refs)
            ]
            path = out / f"{stem}.jsonl"
            atomic_write_text(path, "".join(line + "\n" for line in lines))
        report.files[split] = path
        report.written[split] = len(split_report.records)
    if entries:
        report.dataset_info = update_dataset_info(out / "dataset_info.json", entries)
    return report


def update_dataset_info(path: Path, entries: dict[str, dict]) -> Path:
    """Add or replace `entries` in a LLaMA-Factory dataset_info.json, keeping the others."""
    existing: dict = {}
    if path.is_file():
        try:
            existing = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: existing file is not valid JSON ({exc.msg}); not touched") from exc
        if not isinstance(existing, dict):
            raise DatasetError(f"{path}: existing file is not a JSON object; not touched")
    existing.update(entries)
    atomic_write_json(path, existing)
    return path
