"""Read and validate Roboflow JSONL datasets (`train/ valid/ test/`, each `annotations.jsonl`).

Every line is checked: valid JSON object, string keys image/prefix/suffix, a suffix that
parses as JSON, an image path that stays inside its split folder, and an image that
opens with an allowed format under the pixel cap (checked before decoding). Bad lines
become `Skip`s with file, line number and reason; nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vlmocr.errors import DatasetError, ImageError
from vlmocr.images import DEFAULT_MAX_IMAGE_PIXELS, open_image, resolve_inside
from vlmocr.records import Record, Skip

ANNOTATIONS = "annotations.jsonl"
SPLITS: tuple[str, ...] = ("train", "valid", "test")
REQUIRED_KEYS: tuple[str, ...] = ("image", "prefix", "suffix")


@dataclass
class SplitReport:
    """What reading one split gave: the usable records and every skip with its reason."""

    split: str
    records: list[Record] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.records) + len(self.skips)


@dataclass
class DatasetReport:
    """The result of checking a dataset: one SplitReport per split found."""

    root: Path
    splits: dict[str, SplitReport] = field(default_factory=dict)

    @property
    def records(self) -> list[Record]:
        return [r for s in self.splits.values() for r in s.records]

    @property
    def skips(self) -> list[Skip]:
        return [k for s in self.splits.values() for k in s.skips]

    @property
    def total(self) -> int:
        return sum(s.total for s in self.splits.values())

    @property
    def skip_ratio(self) -> float:
        return len(self.skips) / self.total if self.total else 0.0

    def to_dict(self) -> dict:
        return {
            "root": str(self.root),
            "splits": {
                name: {"records": len(s.records), "skipped": len(s.skips)}
                for name, s in self.splits.items()
            },
            "skips": [{"file": k.file, "line": k.line, "reason": k.reason} for k in self.skips],
        }


def document_id(target: object) -> str:
    """A stable id for the document a target describes (same target, same document).

    Roboflow photographs one document several times; grouping by the canonical JSON of
    the target keeps all photos of a document in one split.
    """
    canonical = json.dumps(target, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha1(canonical.encode("utf-8")).hexdigest()[:16]


def parse_line(
    text: str,
    *,
    split: str,
    line: int,
    split_dir: Path,
    verify_image: bool = True,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> Record:
    """Parse and validate one annotation line; raise DatasetError saying what is wrong."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"not valid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(obj, dict):
        raise DatasetError(f"expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in obj]
    if missing:
        raise DatasetError(f"missing key(s): {', '.join(missing)}")
    for key in REQUIRED_KEYS:
        if not isinstance(obj[key], str):
            raise DatasetError(f"key '{key}' must be a string, got {type(obj[key]).__name__}")
    try:
        target = json.loads(obj["suffix"])
    except json.JSONDecodeError as exc:
        raise DatasetError(f"suffix is not valid JSON ({exc.msg} at column {exc.colno})") from exc
    image_path = resolve_inside(split_dir, obj["image"])
    if verify_image:
        if not image_path.is_file():
            raise ImageError(f"image not found: {obj['image']}")
        open_image(image_path, max_image_pixels=max_image_pixels)
    doc = obj.get("doc_id")
    return Record(
        split=split,
        line=line,
        image=obj["image"],
        image_path=image_path,
        prefix=obj["prefix"],
        suffix=obj["suffix"],
        target=target,
        doc_id=str(doc) if isinstance(doc, (str, int)) else document_id(target),
    )


def read_split(
    root: Path,
    split: str,
    *,
    verify_images: bool = True,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> SplitReport:
    """Read `root/split/annotations.jsonl`, validating every line."""
    split_dir = Path(root) / split
    ann = split_dir / ANNOTATIONS
    report = SplitReport(split=split)
    if not ann.is_file():
        raise DatasetError(f"{ann}: not found (expected {ANNOTATIONS} in each split folder)")
    rel = f"{split}/{ANNOTATIONS}"
    with ann.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                report.skips.append(Skip(rel, number, f"not valid UTF-8 ({exc.reason})"))
                continue
            if not text.strip():
                continue
            try:
                report.records.append(
                    parse_line(
                        text,
                        split=split,
                        line=number,
                        split_dir=split_dir,
                        verify_image=verify_images,
                        max_image_pixels=max_image_pixels,
                    )
                )
            except DatasetError as exc:
                report.skips.append(Skip(rel, number, str(exc)))
    return report


def check_dataset(
    root: Path,
    splits: Iterable[str] | None = None,
    *,
    verify_images: bool = True,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> DatasetReport:
    """Read every split of a Roboflow dataset (the ones present, or the ones named)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    names = list(splits) if splits else [s for s in SPLITS if (root / s / ANNOTATIONS).is_file()]
    if not names:
        raise DatasetError(
            f"{root}: no split found (expected {', '.join(SPLITS)} folders with {ANNOTATIONS})"
        )
    report = DatasetReport(root=root)
    for split in names:
        report.splits[split] = read_split(
            root, split, verify_images=verify_images, max_image_pixels=max_image_pixels
        )
    return report


def enforce_skip_threshold(report: DatasetReport, max_skip_ratio: float) -> None:
    """Raise DatasetError if more than `max_skip_ratio` of the lines were skipped."""
    if report.total == 0:
        raise DatasetError(f"{report.root}: no annotation lines found")
    if report.skip_ratio > max_skip_ratio:
        raise DatasetError(
            f"{len(report.skips)} of {report.total} lines skipped "
            f"({report.skip_ratio:.1%} > allowed {max_skip_ratio:.1%}); first: {report.skips[0]}"
        )
