"""The streaming API and the dataset writer: determinism, document-level splits, `data check`."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import pytest
from PIL import Image

from vlmocr.data.roboflow import check_dataset
from vlmocr.data.synth import SynthConfig, generate_dataset, iter_samples, sample_at
from vlmocr.data.synth import generate as generate_module
from vlmocr.data.synth.content import check_target
from vlmocr.errors import ConfigError
from vlmocr.schema import FIELD_ORDER


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_stream_is_deterministic_limited_and_shardable() -> None:
    config = SynthConfig(seed=2, augment="photo", photos_per_doc=2)
    a = list(iter_samples(config, limit=6))
    b = list(iter_samples(config, limit=6))
    assert [s.image.tobytes() for s in a] == [s.image.tobytes() for s in b]
    assert [s.doc_id for s in a] == ["s2-train-000000"] * 2 + ["s2-train-000001"] * 2 + ["s2-train-000002"] * 2
    assert a[0].target == a[1].target and a[0].image.tobytes() != a[1].image.tobytes()
    assert [s.photo for s in a] == [0, 1] * 3
    odd = list(iter_samples(config, limit=4, start=1, step=2))
    assert [s.doc_id for s in odd] == ["s2-train-000001"] * 2 + ["s2-train-000003"] * 2
    assert odd[0].image.tobytes() == a[2].image.tobytes()
    assert len(list(iter_samples(config, limit=3))) == 3
    for i in (0, 3, 5):
        alone = sample_at(config, "train", i)
        assert alone.image.tobytes() == a[i].image.tobytes() and (alone.doc_id, alone.photo) == (a[i].doc_id, a[i].photo)


def test_stream_is_endless_and_respects_layouts_size_and_splits() -> None:
    config = SynthConfig(layouts=("receipt", "dense"), size=(640, 800))
    train = list(islice(iter_samples(config), 25))
    valid = list(islice(iter_samples(config, split="valid"), 25))
    assert {s.layout for s in train + valid} == {"receipt", "dense"}
    assert all(s.image.size == (640, 800) and s.image.mode == "RGB" for s in train)
    assert all(check_target(s.target) == [] for s in train + valid)
    assert not {s.doc_id for s in train} & {s.doc_id for s in valid}
    assert not {json.dumps(s.target) for s in train} & {json.dumps(s.target) for s in valid}
    with pytest.raises(ConfigError):
        next(iter_samples(config, step=0))


def test_dataset_passes_check_with_document_level_splits(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    report = generate_dataset(out, 9, 3, 3, SynthConfig(seed=1, photos_per_doc=3))
    assert report.images == {"train": 9, "valid": 3, "test": 3}
    assert report.documents == {"train": 3, "valid": 1, "test": 1}
    assert sum(report.layouts.values()) == 15
    checked = check_dataset(out)
    assert checked.skips == [] and len(checked.records) == 15
    docs: dict[str, set[str]] = {}
    for record in checked.records:
        docs.setdefault(record.split, set()).add(record.doc_id)
        assert list(json.loads(record.suffix)) == list(FIELD_ORDER)
        assert record.prefix == "<JSON>" and check_target(record.target) == []
        with Image.open(record.image_path) as image:
            assert image.format == "JPEG" and image.size == (768, 768)
    assert docs["train"].isdisjoint(docs["valid"]) and docs["train"].isdisjoint(docs["test"])
    assert docs["valid"].isdisjoint(docs["test"])
    per_doc = [r.doc_id for r in checked.splits["train"].records]
    assert sorted(per_doc.count(d) for d in set(per_doc)) == [3, 3, 3]
    meta = json.loads((out / "synth.json").read_text())
    assert meta["config"]["photos_per_doc"] == 3 and meta["images"]["train"] == 9


def test_same_arguments_give_byte_identical_files_with_any_worker_count(tmp_path: Path) -> None:
    config = SynthConfig(seed=5, augment="photo", photos_per_doc=2)
    generate_dataset(tmp_path / "a", 12, 4, 0, config, workers=1)
    generate_dataset(tmp_path / "b", 12, 4, 0, config, workers=2)
    a, b = files_of(tmp_path / "a"), files_of(tmp_path / "b")
    assert a == b and "valid/annotations.jsonl" in a and "test/annotations.jsonl" not in a
    generate_dataset(tmp_path / "c", 12, 4, 0, SynthConfig(seed=6, augment="photo", photos_per_doc=2))
    assert files_of(tmp_path / "c")["train/annotations.jsonl"] != a["train/annotations.jsonl"]


def test_uneven_counts_give_a_last_document_with_fewer_photos(tmp_path: Path) -> None:
    report = generate_dataset(tmp_path / "d", 7, 0, 0, SynthConfig(photos_per_doc=3, augment="none"))
    assert report.documents == {"train": 3}
    ids = [r.doc_id for r in check_dataset(tmp_path / "d").records]
    assert [ids.count(d) for d in dict.fromkeys(ids)] == [3, 3, 1]


def test_existing_output_is_kept_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "keep"
    out.mkdir()
    (out / "mine.txt").write_text("precious")
    with pytest.raises(ConfigError, match="already exists"):
        generate_dataset(out, 2, 0, 0)
    assert (out / "mine.txt").read_text() == "precious"
    generate_dataset(out, 2, 0, 0, overwrite=True)
    assert not (out / "mine.txt").exists() and len(check_dataset(out).records) == 2
    with pytest.raises(ConfigError, match="nothing to generate"):
        generate_dataset(tmp_path / "none", 0, 0, 0)
    with pytest.raises(ConfigError, match="non-negative"):
        generate_dataset(tmp_path / "neg", -1, 0, 0)


def test_a_failure_midway_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = generate_module.document_samples
    calls = []

    def failing(config, split, index, photos=None):  # type: ignore[no-untyped-def]
        calls.append(index)
        if len(calls) > 3:
            raise OSError("disk full")
        return real(config, split, index, photos)

    monkeypatch.setattr(generate_module, "document_samples", failing)
    with pytest.raises(OSError, match="disk full"):
        generate_dataset(tmp_path / "half", 10, 0, 0)
    assert list(tmp_path.iterdir()) == []


def test_threads_draw_the_same_samples_as_one_thread() -> None:
    from concurrent.futures import ThreadPoolExecutor

    config = SynthConfig(seed=3)
    alone = [sample_at(config, "train", i) for i in range(12)]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda i: sample_at(config, "train", i), range(12)))
    assert [s.target for s in threaded] == [s.target for s in alone]
    assert [s.image.tobytes() for s in threaded] == [s.image.tobytes() for s in alone]


def test_read_task_targets_every_printed_string_in_reading_order(tmp_path: Path) -> None:
    easy = {"type_scale": 2.0, "max_products": 1, "min_filled": 0, "max_filled": 2, "augment": "none"}
    extract, read = SynthConfig(**easy), SynthConfig(task="read", **easy)
    for i in range(6):
        a, b = sample_at(extract, "train", i), sample_at(read, "train", i)
        assert a.image.tobytes() == b.image.tobytes() and a.boxes == b.boxes  # same page, other answer
        lines = b.target["lines"]
        assert set(b.target) == {"lines"} and all(line and line == line.strip() for line in lines)
        printed = [box.text for box in b.boxes if box.text.strip()]
        assert sorted(" ".join(lines).split()) == sorted(" ".join(printed).split())  # every string, once
        # the values the manifest asks for are among the lines
        for value in (a.target["route"], a.target["products"][0]["description"].split()[0]):
            assert not value or value in " ".join(lines)
    with pytest.raises(ConfigError, match="task must be one of"):
        SynthConfig(task="transcribe")
    with pytest.raises(ConfigError, match="training stream"):
        generate_dataset(tmp_path / "r", 1, 0, 0, read)


def test_reading_lines_joins_a_printed_line_and_orders_top_down_left_right() -> None:
    from vlmocr.data.synth.canvas import TextBox
    from vlmocr.data.synth.generate import reading_lines

    boxes = [
        TextBox("12", (300, 52, 330, 72), "route", 20),        # a value beside its label, its box lower
        TextBox("Route #:", (10, 50, 120, 75), None, 24),
        TextBox("", (400, 50, 420, 75), "dock", 24),           # a blank value: left out
        TextBox("ACME", (200, 5, 300, 40), None, 34),
        TextBox("Total: 7", (10, 120, 150, 140), None, 20),
        TextBox("Page 1", (500, 121, 600, 139), None, 18),
    ]
    assert reading_lines(boxes) == ["ACME", "Route #: 12", "Total: 7 Page 1"]


def test_read_crops_show_only_whole_strings_and_list_them() -> None:
    import random

    from vlmocr.data.synth.generate import crop_page, reading_lines, render_document

    config = SynthConfig(task="read", crop=448, size=(1536, 1536), augment="none")
    erased = 0
    for i in range(4):
        _, page = render_document(config, "train", i)
        image, kept, (left, top, right, bottom) = crop_page(page, 448, random.Random(i))
        assert image.size == (448, 448) == (right - left, bottom - top)
        assert kept and any(b.field for b in kept)  # it looked for a place with a value
        for b in kept:  # inside, and drawn as on the page
            assert 0 <= b.box[0] and 0 <= b.box[1] and b.box[2] <= 448 and b.box[3] <= 448
            assert image.crop(b.box).tobytes() == page.image.crop(
                (b.box[0] + left, b.box[1] + top, b.box[2] + left, b.box[3] + top)).tobytes()
        cut = [b for b in page.boxes if b.text.strip() and not (left <= b.box[0] and top <= b.box[1]
               and b.box[2] <= right and b.box[3] <= bottom) and b.box[0] < right and b.box[2] > left
               and b.box[1] < bottom and b.box[3] > top]
        for b in cut:  # the edge would cut it: erased, one flat tone where it was
            region = (max(b.box[0], left) - left, max(b.box[1], top) - top,
                      min(b.box[2], right) - left, min(b.box[3], bottom) - top)
            low, high = image.crop(region).getextrema()
            assert low == high, (b.text, region)
            erased += 1
        sample = sample_at(config, "train", i)
        assert sample.image.size == (448, 448) and sample.target == {"lines": reading_lines(sample.boxes)}
    assert erased > 0  # a 448 px square of a 1536 px page cuts strings: the check above is not empty


def test_strip_crops_keep_long_strings_whole() -> None:
    """A [width, height] crop as wide as the page shows whole lines: names and addresses appear, unlike
    in squares of the same height, whose edges cut and erase them."""
    from vlmocr.data.synth.generate import reading_lines

    config = SynthConfig(task="read", crop=[1536, 448], size=(1536, 1536), augment="none")
    assert config.crop == (1536, 448) and SynthConfig.from_dict(config.to_dict()).crop == (1536, 448)
    square = SynthConfig(task="read", crop=448, size=(1536, 1536), augment="none")
    letters = {"strip": 0, "square": 0}
    for i in range(24):
        strip = sample_at(config, "train", i)
        assert strip.image.size == (1536, 448) and strip.target == {"lines": reading_lines(strip.boxes)}
        for name, sample in (("strip", strip), ("square", sample_at(square, "train", i))):
            letters[name] += sum(ch.isalpha() for b in sample.boxes if b.field for ch in b.text)
    assert letters["strip"] > 4 * letters["square"] > 0, letters


def test_extraction_on_strips_answers_the_fields_the_strip_shows() -> None:
    """task extract with a crop: the answer is the part of the manifest the crop shows, in its order."""
    from collections import Counter

    from vlmocr.data.synth.generate import render_document, visible_target

    config = SynthConfig(crop=[1536, 448], size=(1536, 1536), augment="none")
    assert config.task == "extract"
    partial = letters = 0
    for i in range(40):
        sample = sample_at(config, "train", i)
        doc, page = render_document(config, "train", i)
        full, part = doc.target, sample.target
        assert sample.image.size == (1536, 448) and part == visible_target(full, sample.boxes)
        # a value printed over several lines (an address, a long description) is in the answer only when
        # the strip shows all its lines: the answer never holds text the image does not show
        printed = Counter(b.field for b in page.boxes if b.field)
        shown = Counter(b.field for b in sample.boxes if b.field)
        assert all(n == printed[f] for f, n in shown.items()), i
        # every field whose value the strip shows, nothing else, keys in the manifest's order
        assert [k for k in part if k != "products"] == [k for k in full if k != "products" and k in shown]
        assert all(part[k] == full[k] for k in part if k != "products")
        rows = [i for i in range(len(full["products"])) if any(f.startswith(f"products.{i}.") for f in shown)]
        assert part.get("products", []) == [
            {c: v for c, v in full["products"][r].items() if f"products.{r}.{c}" in shown} for r in rows]
        assert part  # crop_page looks for a place that shows a value
        partial += len(part) < len(full)
        letters += sum(ch.isalpha() for k in ("salesman", "destination") for ch in part.get(k, ""))
    assert partial >= 20 and letters > 0  # most strips show part of the fields; names and addresses appear


def test_extraction_crops_erase_a_value_they_show_in_part() -> None:
    import random

    from vlmocr.data.synth.generate import crop_page, render_document

    config = SynthConfig(crop=[1536, 448], size=(1536, 1536), augment="none")
    _, page = render_document(config, "train", 33)  # its destination is printed over four lines
    lines = [b for b in page.boxes if b.field == "destination"]
    assert len(lines) > 1
    found = 0
    for seed in range(60):
        # the same place twice (same random stream): as the read task cuts it, and as extraction does
        image, kept, (left, top, right, bottom) = crop_page(page, (1536, 448), random.Random(seed))
        whole_image, whole_kept, where = crop_page(page, (1536, 448), random.Random(seed), whole_fields=True)
        assert where == (left, top, right, bottom)
        inside = [b for b in lines if top <= b.box[1] and b.box[3] <= bottom]
        if not inside or len(inside) == len(lines):
            continue
        found += 1  # the strip shows some lines of the address, not all
        assert {b.text for b in kept if b.field == "destination"} == {b.text for b in inside}
        assert not any(b.field == "destination" for b in whole_kept)
        for b in inside:  # erased: one flat tone where the line was
            region = (b.box[0] - left, b.box[1] - top, b.box[2] - left, b.box[3] - top)
            assert image.crop(region).getextrema()[0] != image.crop(region).getextrema()[1]
            low, high = whole_image.crop(region).getextrema()
            assert low == high, b.text
    assert found > 0


def test_visible_target_keeps_blank_values_and_leaves_out_unseen_rows() -> None:
    from vlmocr.data.synth.canvas import TextBox
    from vlmocr.data.synth.generate import visible_target

    target = {"route": "A1", "dock": "", "salesman": "ANA", "products": [
        {"description": "BOX", "cases": "3"}, {"description": "TAPE", "cases": "4"}], "page_number": "1"}
    boxes = [TextBox("", (0, 0, 1, 1), "dock", 20), TextBox("ANA", (0, 0, 1, 1), "salesman", 20),
             TextBox("4", (0, 0, 1, 1), "products.1.cases", 20), TextBox("Route:", (0, 0, 1, 1), None, 20)]
    assert visible_target(target, boxes) == {"dock": "", "salesman": "ANA", "products": [{"cases": "4"}]}
    assert visible_target(target, boxes[:2]) == {"dock": "", "salesman": "ANA"}  # no rows: no products key
    assert visible_target(target, []) == {}


def test_written_datasets_hold_whole_pages(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="crop is for the training stream"):
        generate_dataset(tmp_path / "out", 0, 0, 2, SynthConfig(crop=448))
    assert not (tmp_path / "out").exists()


def test_crop_fits_the_page() -> None:
    assert SynthConfig(crop=448).crop == 448  # extraction on crops (the answer: the fields they show)
    with pytest.raises(ConfigError, match="crop must be"):
        SynthConfig(task="read", crop=800)
    with pytest.raises(ConfigError, match="crop must be"):
        SynthConfig(task="read", crop=True)
    assert SynthConfig.from_dict(SynthConfig(task="read", crop=448).to_dict()).crop == 448
    with pytest.raises(ConfigError, match="crop must be"):
        SynthConfig(task="read", crop=[800, 448])  # wider than the 768 px page
    with pytest.raises(ConfigError, match="crop must be"):
        SynthConfig(task="read", crop=[448, 448, 2])
