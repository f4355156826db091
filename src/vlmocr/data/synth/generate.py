"""Streams of synthetic samples and Roboflow-format datasets written from them.

Every document is a pure function of (config, split, index): its seed is a hash of the
three, so a split's documents never depend on how many documents other splits have,
documents of different splits are different, workers can render any document in any
order, and the same arguments write byte-identical files.

`iter_samples` is for trainers (images in memory, no files); `generate_dataset` writes
`train/ valid/ test/` folders with `annotations.jsonl` (image, prefix "<JSON>", suffix =
the target as a JSON string, doc_id) and JPEG images, through a temporary folder that is
renamed into place only when everything is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlmocr.data.synth.augment import photograph
from vlmocr.data.synth.canvas import Box, TextBox
from vlmocr.data.synth.config import N_FILLABLE, SynthConfig
from vlmocr.data.synth.content import Document, blank_fields, make_document, novel_names
from vlmocr.data.synth.layouts import Page, render_page
from vlmocr.errors import ConfigError
from vlmocr.fileio import atomic_directory, atomic_write_json, provenance

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger(__name__)

PREFIX = "<JSON>"
SPLITS: tuple[str, ...] = ("train", "valid", "test")
#: Documents per task handed to a worker process.
CHUNK_DOCS = 8


@dataclass(frozen=True)
class SynthSample:
    """One image of one synthetic document and its exact JSON target.

    `boxes` are the strings the renderer placed, in page pixels; `matrix` maps page pixels
    to image pixels (3x3, row-major) and `quad` is where the paper's corners landed.
    """

    image: Image
    target: dict[str, Any]
    doc_id: str
    layout: str
    photo: int = 0
    boxes: tuple[TextBox, ...] = ()
    matrix: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    quad: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class SynthReport:
    """What generate_dataset wrote: images and documents per split, images per layout."""

    root: Path
    config: SynthConfig
    images: dict[str, int] = field(default_factory=dict)
    documents: dict[str, int] = field(default_factory=dict)
    layouts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total_images(self) -> int:
        return sum(self.images.values())

    @property
    def images_per_second(self) -> float:
        return self.total_images / self.seconds if self.seconds > 0 else 0.0


def _seed_of(*parts: object) -> int:
    digest = hashlib.blake2b("/".join(map(str, parts)).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def doc_id_of(config: SynthConfig, split: str, index: int) -> str:
    """The id of document `index` of `split` (unique across splits and seeds)."""
    return f"s{config.seed}-{split}-{index:06d}"


def render_document(config: SynthConfig, split: str, index: int) -> tuple[Document, Page]:
    """Document `index` of `split`: its content and its rendered (grayscale) page."""
    if index < 0:
        raise ConfigError(f"document index must be >= 0, got {index}")
    seed = _seed_of(config.seed, split, index)
    rng = random.Random(seed)
    layout = rng.choice(config.layout_names)
    doc = make_document(rng, rng.randint(config.min_products, config.max_products), seed % 2**32)
    if config.novel_names > 0:
        # Its own stream too: the share decides per document, and the rest of the page is unchanged.
        novel = random.Random(_seed_of(config.seed, split, index, "novel"))
        if novel.random() < config.novel_names:
            doc = novel_names(doc, novel)
    if config.min_filled < N_FILLABLE:
        # Its own random stream, so that full documents (the default) stay what they always were.
        blanks = random.Random(_seed_of(config.seed, split, index, "blank"))
        doc = blank_fields(doc, blanks, blanks.randint(config.min_filled, config.max_filled))
    page = render_page(doc, layout, rng.getrandbits(32), config.size, config.type_scale)
    return doc, page


def reading_line_boxes(boxes: tuple[TextBox, ...] | list[TextBox]) -> list[list[TextBox]]:
    """The page's strings grouped into printed lines, top to bottom, each left to right.

    A string joins the line above it when its vertical centre lies within that line's first
    string's box (strings of one printed line share a top only when they share a size). Blank
    values (printed as nothing) are left out.
    """
    lines: list[list[TextBox]] = []
    for box in sorted((b for b in boxes if b.text.strip()), key=lambda b: ((b.box[1] + b.box[3]) / 2, b.box[0])):
        centre = (box.box[1] + box.box[3]) / 2
        if lines and lines[-1][0].box[1] <= centre <= lines[-1][0].box[3]:
            lines[-1].append(box)
        else:
            lines.append([box])
    return [sorted(line, key=lambda b: b.box[0]) for line in lines]


def reading_lines(boxes: tuple[TextBox, ...] | list[TextBox]) -> list[str]:
    """The read task's answer: each printed line's strings joined by one space (`reading_line_boxes`)."""
    return [" ".join(b.text.strip() for b in line) for line in reading_line_boxes(boxes)]


#: Places a crop tries for one that shows at least one value.
CROP_TRIES = 8


def crop_page(page: Page, side: int | tuple[int, int], rng: random.Random, *,
              whole_fields: bool = False) -> tuple[Image, tuple[TextBox, ...], Box]:
    """A `side`-pixel square (or a (width, height) rectangle) of the page's paper, the strings wholly inside
    it (in its pixels) and where it is on the page.

    A string the crop's edge would cut is erased (filled with the brightest gray under its box, the
    paper or the shading it sits on), so every string the image shows is one the answer lists. With
    `whole_fields` (the extraction answer, whose values are whole), a value printed over several lines
    counts only when all its lines are inside: the lines of one the crop shows in part are erased too.
    """
    printed = Counter(b.field for b in page.boxes if b.field) if whole_fields else Counter()
    width, height = side if isinstance(side, tuple) else (side, side)
    x0, y0, x1, y1 = page.paper
    if x1 - x0 < width or y1 - y0 < height:  # a paper smaller than the crop: anywhere on the page
        x0, y0, x1, y1 = 0, 0, page.image.width, page.image.height
    for _ in range(CROP_TRIES):
        left, top = rng.randint(x0, x1 - width), rng.randint(y0, y1 - height)
        right, bottom = left + width, top + height
        inside = [b for b in page.boxes if left <= b.box[0] and top <= b.box[1] and b.box[2] <= right
                  and b.box[3] <= bottom]
        if whole_fields:
            shown = Counter(b.field for b in inside if b.field)
            inside = [b for b in inside if not b.field or shown[b.field] == printed[b.field]]
        if any(b.field and b.text.strip() for b in inside):
            break
    image = page.image.crop((left, top, right, bottom))
    kept_ids = {id(b) for b in inside}
    for b in page.boxes:
        if id(b) in kept_ids or b.box[2] <= left or b.box[0] >= right or b.box[3] <= top or b.box[1] >= bottom:
            continue
        region = (max(b.box[0], left) - left, max(b.box[1], top) - top,
                  min(b.box[2], right) - left, min(b.box[3], bottom) - top)
        image.paste(image.crop(region).getextrema()[1], region)
    kept = tuple(TextBox(b.text, (b.box[0] - left, b.box[1] - top, b.box[2] - left, b.box[3] - top), b.field, b.size)
                 for b in inside)
    return image, kept, (left, top, right, bottom)


def visible_target(target: dict[str, Any], boxes: tuple[TextBox, ...] | list[TextBox]) -> dict[str, Any]:
    """The part of a manifest's target that a crop shows: the extraction answer for that crop.

    A field is in it when the crop shows its value (`boxes`: the strings the crop shows, from
    `crop_page(..., whole_fields=True)`, which keeps a value printed over several lines only when it
    shows all of them); a blank value, printed as nothing, is in it when its (empty) box is. Keys
    keep the manifest's order. Product rows the crop shows are listed in order, each with the cells it
    shows; `products` is left out when it shows none.
    """
    shown = {b.field for b in boxes if b.field}
    part: dict[str, Any] = {}
    for key, value in target.items():
        if key == "products":
            rows = []
            for i, row in enumerate(value):
                cells = {cell: text for cell, text in row.items() if f"products.{i}.{cell}" in shown}
                if cells:
                    rows.append(cells)
            if rows:
                part["products"] = rows
        elif key in shown:
            part[key] = value
    return part


def _photo(config: SynthConfig, split: str, index: int, doc: Document, page: Page, k: int) -> SynthSample:
    rng = random.Random(_seed_of(config.seed, split, index, "photo", k))
    image, paper, boxes = page.image, page.paper, page.boxes
    if config.crop is not None:
        image, boxes, _ = crop_page(page, config.crop, rng, whole_fields=config.task == "extract")
        paper = (0, 0, image.width, image.height)
    shot = photograph(image, paper, page.tint, config.augment, rng)
    if config.task != "extract":
        target: dict[str, Any] = {"lines": reading_lines(boxes)}
    else:
        target = doc.target if config.crop is None else visible_target(doc.target, boxes)
    return SynthSample(image=shot.image, target=target, doc_id=doc_id_of(config, split, index),
                       layout=page.layout, photo=k, boxes=boxes, matrix=shot.matrix, quad=shot.quad)


def document_samples(config: SynthConfig, split: str, index: int,
                     photos: int | None = None) -> list[SynthSample]:
    """All images (`photos`, default config.photos_per_doc) of document `index` of `split`."""
    doc, page = render_document(config, split, index)
    count = config.photos_per_doc if photos is None else photos
    return [_photo(config, split, index, doc, page, k) for k in range(count)]


def sample_at(config: SynthConfig, split: str, index: int) -> SynthSample:
    """Sample `index` of the stream of `split` (photo index % K of document index // K), alone.

    Random access for trainers: equal to the index-th item of `iter_samples(config,
    split=split)` without rendering the document's other photos.
    """
    if index < 0:
        raise ConfigError(f"sample index must be >= 0, got {index}")
    doc_index, photo = divmod(index, config.photos_per_doc)
    doc, page = render_document(config, split, doc_index)
    return _photo(config, split, doc_index, doc, page, photo)


def iter_samples(config: SynthConfig | None = None, *, split: str = "train", limit: int | None = None,
                 start: int = 0, step: int = 1) -> Iterator[SynthSample]:
    """Yield samples of documents start, start+step, ... (endless unless `limit` images).

    Each document gives config.photos_per_doc consecutive samples. Data-loader workers
    can share one stream without overlap: worker i of n passes start=i, step=n.
    """
    config = config or SynthConfig()
    if not split or "/" in split:
        raise ConfigError(f"split must be a plain name like 'train', got {split!r}")
    if step < 1 or start < 0:
        raise ConfigError(f"need start >= 0 and step >= 1, got start={start}, step={step}")
    if limit is not None and limit < 0:
        raise ConfigError(f"limit must be >= 0, got {limit}")
    produced = 0
    index = start
    while limit is None or produced < limit:
        for sample in document_samples(config, split, index):
            if limit is not None and produced >= limit:
                return
            yield sample
            produced += 1
        index += step


def _plan(images: int, photos_per_doc: int) -> list[int]:
    """Photos of each document so that they add up to `images` (the last may have fewer)."""
    docs = math.ceil(images / photos_per_doc)
    return [min(photos_per_doc, images - i * photos_per_doc) for i in range(docs)]


def _write_chunk(config_data: dict[str, Any], split: str, folder: str,
                 jobs: list[tuple[int, int]]) -> list[tuple[str, str]]:
    """Render documents (index, photos) into `folder`; return (annotation line, layout) each."""
    config = SynthConfig.from_dict(config_data)
    lines = []
    for index, photos in jobs:
        for sample in document_samples(config, split, index, photos):
            name = f"{sample.doc_id}-p{sample.photo}.jpg"
            sample.image.save(Path(folder) / name, format="JPEG", quality=config.jpeg_quality)
            row = {"image": name, "prefix": PREFIX, "suffix": json.dumps(sample.target, ensure_ascii=False),
                   "doc_id": sample.doc_id}
            lines.append((json.dumps(row, ensure_ascii=False), sample.layout))
    return lines


def generate_dataset(
    out: Path,
    train: int,
    valid: int,
    test: int,
    config: SynthConfig | None = None,
    *,
    workers: int = 1,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> SynthReport:
    """Write a Roboflow-format dataset of train/valid/test images (N images = N/K documents).

    Output is byte-identical for the same arguments whatever `workers` is. The folder
    appears only when complete; an existing `out` is replaced only with `overwrite`.
    `progress` is called with the number of images finished after each chunk.
    """
    config = config or SynthConfig()
    out = Path(out)
    counts = {"train": train, "valid": valid, "test": test}
    for split, n in counts.items():
        if not isinstance(n, int) or n < 0:
            raise ConfigError(f"--{split} must be a non-negative integer, got {n!r}")
    if not any(counts.values()):
        raise ConfigError("nothing to generate: give --train, --valid or --test a positive count")
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if config.task != "extract":
        raise ConfigError(f"task {config.task!r} is for the training stream (data.synth in a train config); "
                          "written datasets hold manifests (task 'extract')")
    if config.crop is not None:
        raise ConfigError("crop is for the training stream (data.synth in a train config): written datasets "
                          "hold whole pages, whose answers are whole manifests")
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} already exists; choose another --out or pass --overwrite to replace it")

    started = time.perf_counter()
    report = SynthReport(root=out, config=config)
    layouts: Counter[str] = Counter()
    with atomic_directory(out, overwrite=overwrite) as tmp:
        tasks = []
        for split, n in counts.items():
            if n == 0:
                continue
            (tmp / split).mkdir()
            plan = list(enumerate(_plan(n, config.photos_per_doc)))
            report.images[split], report.documents[split] = n, len(plan)
            for i in range(0, len(plan), CHUNK_DOCS):
                tasks.append((split, plan[i:i + CHUNK_DOCS]))
        results: dict[str, list[str]] = {split: [] for split in report.images}
        done = 0
        for (split, jobs), lines in zip(tasks, _run(config, tmp, tasks, workers)):
            results[split].extend(line for line, _ in lines)
            layouts.update(layout for _, layout in lines)
            done += len(lines)
            if progress is not None:
                progress(done)
        for split, lines in results.items():
            (tmp / split / "annotations.jsonl").write_text("".join(f"{x}\n" for x in lines), encoding="utf-8")
        report.layouts.update(sorted(layouts.items()))
        atomic_write_json(tmp / "synth.json", {
            "generator": "vlmocr.data.synth",
            "config": config.to_dict(),
            "images": report.images,
            "documents": report.documents,
            "layouts": report.layouts,
            "provenance": provenance(),
        })
    seconds = time.perf_counter() - started
    log.info("wrote %d images to %s in %.1f s", report.total_images, out, seconds)
    return SynthReport(root=out, config=config, images=report.images, documents=report.documents,
                       layouts=report.layouts, seconds=seconds)


def _run(config: SynthConfig, tmp: Path, tasks: list[tuple[str, list[tuple[int, int]]]],
         workers: int) -> Iterator[list[tuple[str, str]]]:
    """Results of every task, in task order (in this process, or in `workers` processes)."""
    data = config.to_dict()
    if workers == 1 or len(tasks) == 1:
        for split, jobs in tasks:
            yield _write_chunk(data, split, str(tmp / split), jobs)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context) as pool:
        futures = [pool.submit(_write_chunk, data, split, str(tmp / split), jobs) for split, jobs in tasks]
        try:
            for future in futures:
                yield future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
