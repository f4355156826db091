"""`SynthConfig`: every choice that shapes a synthetic dataset, validated in one place."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from vlmocr.data.synth.augment import LEVELS
from vlmocr.data.synth.layouts import LAYOUTS
from vlmocr.errors import ConfigError
from vlmocr.schema import FILLABLE_FIELDS

#: Most product rows one document may have (the layouts are sized and tested for it).
MAX_PRODUCTS = 8
MIN_SIDE, MAX_SIDE = 320, 4096
MIN_CROP = 112
#: Header and footer fields a page may leave blank (the totals are sums, always filled).
N_FILLABLE = len(FILLABLE_FIELDS)
MAX_TYPE_SCALE = 4.0
#: What a sample asks: "extract" the manifest's JSON, or "read" every line of the page (a reading
#: pre-training task: every answer token depends on the image).
TASKS = ("extract", "read")


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. The same config and seed always give the same images and targets.

    layouts: names from LAYOUTS, or None for all (train on some, test on others).
    size: (width, height) of every image; 768x768 like the real data.
    augment: "none" (clean render), "light" (scan-like, mild) or "photo" (phone photo).
    photos_per_doc: images of each document (each a different augmentation).
    min_products / max_products: product rows a document has (uniform, 1..8).
    min_filled / max_filled: how many of the 11 header and footer fields that are not totals
        carry a value (uniform; the others are printed blank and are "" in the target). Below
        11 it makes pages with fewer values to read, for a curriculum that starts easy.
    type_scale: type up to this many times the layouts' sizes, the largest that fits the page
        (a page too full for it falls back to the usual sizes): larger text per visual token,
        for a curriculum's first stages.
    jpeg_quality: quality of the JPEG files generate_dataset writes.
    task: "extract" (the target is the manifest's JSON) or "read" (the target is
        {"lines": [...]}: every string printed on the page, labels included, line by line from the
        top, left to right within a line; pair it with a prompt that asks for that).
    crop: each image is a square of this many page pixels, or a [width, height] rectangle, cut from the
        paper at a random place (the type keeps its size; strings the edge would cut are erased): a small
        page of the manifest's own text, for a curriculum that grows the page (training stream only).
        With task "read" the answer lists the strings the crop shows; with task "extract" it is the part
        of the manifest the crop shows (`visible_target`: the fields whose values it shows, keys in the
        manifest's order, and the product rows it shows with those cells). A strip as wide as the page
        (e.g. [1536, 448] of a 1536 px page) keeps whole lines, so long strings (names, addresses,
        descriptions) appear whole, where a square cuts and erases most of them
        (benchmarks/read_task_field_exposure.py). None: the whole page.
    novel_names: the share of documents (0-1) whose salesman and destination names are random
        letters of the same lengths instead of Faker's names (`content.novel_names`): values no
        language prior can complete, so a model trained on them must read every letter. 0: none.
    """

    seed: int = 0
    layouts: tuple[str, ...] | None = None
    size: tuple[int, int] = (768, 768)
    augment: str = "light"
    photos_per_doc: int = 1
    min_products: int = 1
    max_products: int = MAX_PRODUCTS
    min_filled: int = N_FILLABLE
    max_filled: int = N_FILLABLE
    type_scale: float = 1.0
    jpeg_quality: int = 92
    task: str = "extract"
    crop: int | tuple[int, int] | None = None
    novel_names: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")
        if self.layouts is not None:
            names = tuple(self.layouts) if not isinstance(self.layouts, str) else (self.layouts,)
            if not names:
                raise ConfigError("layouts is empty; name at least one or pass None for all")
            unknown = [n for n in names if n not in LAYOUTS]
            if unknown:
                raise ConfigError(f"unknown layout(s) {unknown}; choose from {', '.join(LAYOUTS)}")
            object.__setattr__(self, "layouts", tuple(dict.fromkeys(names)))
        try:
            width, height = (int(v) for v in self.size)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"size must be (width, height), got {self.size!r}") from exc
        if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
            raise ConfigError(f"size {width}x{height}: each side must be within {MIN_SIDE}..{MAX_SIDE}")
        object.__setattr__(self, "size", (width, height))
        if self.augment not in LEVELS:
            raise ConfigError(f"augment must be one of {', '.join(LEVELS)}, got {self.augment!r}")
        if not isinstance(self.photos_per_doc, int) or not 1 <= self.photos_per_doc <= 100:
            raise ConfigError(f"photos_per_doc must be an integer in 1..100, got {self.photos_per_doc!r}")
        if not 1 <= self.min_products <= self.max_products <= MAX_PRODUCTS:
            raise ConfigError(
                f"need 1 <= min_products <= max_products <= {MAX_PRODUCTS}, "
                f"got {self.min_products}..{self.max_products}"
            )
        if not 0 <= self.min_filled <= self.max_filled <= N_FILLABLE:
            raise ConfigError(
                f"need 0 <= min_filled <= max_filled <= {N_FILLABLE}, "
                f"got {self.min_filled}..{self.max_filled}"
            )
        if (isinstance(self.type_scale, bool) or not isinstance(self.type_scale, (int, float))
                or not 1.0 <= self.type_scale <= MAX_TYPE_SCALE):
            raise ConfigError(f"type_scale must be a number within 1..{MAX_TYPE_SCALE}, got {self.type_scale!r}")
        object.__setattr__(self, "type_scale", float(self.type_scale))
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.crop is not None:
            sides = tuple(self.crop) if isinstance(self.crop, (list, tuple)) else (self.crop, self.crop)
            if (len(sides) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in sides)
                    or not (MIN_CROP <= sides[0] <= width and MIN_CROP <= sides[1] <= height)):
                raise ConfigError(f"crop must be a whole number of pixels within {MIN_CROP}..{min(width, height)} "
                                  f"(the page's shorter side), or [width, height] within {MIN_CROP}..{width} and "
                                  f"{MIN_CROP}..{height}, got {self.crop!r}")
            if isinstance(self.crop, (list, tuple)):
                object.__setattr__(self, "crop", sides)
        if isinstance(self.novel_names, bool) or not isinstance(self.novel_names, (int, float)) \
                or not 0.0 <= self.novel_names <= 1.0:
            raise ConfigError(f"novel_names must be a share within 0..1, got {self.novel_names!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"jpeg_quality must be within 1..100, got {self.jpeg_quality}")

    @property
    def layout_names(self) -> tuple[str, ...]:
        """The layouts in use (all of LAYOUTS when `layouts` is None)."""
        return self.layouts or LAYOUTS

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["layouts"] = list(self.layouts) if self.layouts else None
        data["size"] = list(self.size)
        if isinstance(self.crop, tuple):
            data["crop"] = list(self.crop)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SynthConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown synth config key(s) {unknown}; known: {sorted(known)}")
        values = dict(data)
        if values.get("layouts") is not None:
            values["layouts"] = tuple(values["layouts"])
        if "size" in values:
            values["size"] = tuple(values["size"])
        return cls(**values)
