"""Synthetic manifest content: the real schema exactly, values shaped like the real ones."""

from __future__ import annotations

import json
import random
import re

import jsonschema
import pytest

from vlmocr.data.synth import SynthConfig
from vlmocr.data.synth.content import check_target, make_document, make_target
from vlmocr.errors import ConfigError
from vlmocr.schema import FIELD_ORDER, PRODUCT_FIELDS, manifest_schema

from .conftest import SEED_SUFFIX

SHAPES = {
    "route": r"[A-Z]\d{3}-[A-Z]{2}-\d{3}",
    "pallet_number": r"\d{1,2}",
    "delivery_date": r"\d{1,2}/\d{1,2}/20\d\d",
    "load": r"\d",
    "dock": r"[A-Z]\d\d",
    "shipment_id": r"[A-Z]\d{11}",
    "asn_number": r"\d{10}",
    "salesman": r"[A-Z][A-Z'\-]+( [A-Z][A-Z'\-]+)+",
    "printed_date": r"\d\d/\d\d/20\d\d \d\d:\d\d",
    "page_number": r"\d{1,2}",
}


@pytest.fixture(scope="module")
def targets() -> list[dict]:
    return [make_target(random.Random(i), 1 + i % 8, i) for i in range(300)]


def test_every_target_fits_the_schema_with_real_shapes(targets: list[dict]) -> None:
    validator = jsonschema.Draft202012Validator(manifest_schema())
    for target in targets:
        validator.validate(target)
        assert list(target) == list(FIELD_ORDER)
        assert check_target(target) == []
        for name, shape in SHAPES.items():
            assert re.fullmatch(shape, target[name]), (name, target[name])
        assert "\n" not in target["destination"] and re.search(r"\b[A-Z]{2} \d{5}$", target["destination"])
        codes = [p["description"][:6] for p in target["products"]]
        assert len(set(codes)) == len(codes)
        for row in target["products"]:
            assert list(row) == list(PRODUCT_FIELDS)
            assert re.fullmatch(r"\d{6} - [A-Z0-9]+ OF [A-Z][A-Z \-]+", row["description"]), row
            assert all(re.fullmatch(r"[1-9]\d?", row[k]) for k in ("cases", "sales_units", "layers"))


def test_totals_are_the_column_sums(targets: list[dict]) -> None:
    for target in targets:
        rows = target["products"]
        assert target["total_cases"] == str(sum(int(r["cases"]) for r in rows))
        assert target["total_units"] == str(sum(int(r["sales_units"]) for r in rows))
        assert target["total_layers"] == str(sum(int(r["layers"]) for r in rows))
    assert {len(t["products"]) for t in targets} == set(range(1, 9))


def test_checker_accepts_the_seed_example_and_catches_bad_totals() -> None:
    seed = json.loads(SEED_SUFFIX)
    assert check_target(seed) == []
    seed["total_units"] = "75"
    assert check_target(seed) == ["total_units is not the sum of the sales_units column"]


def test_same_seed_same_document_other_seed_other_document() -> None:
    a = make_document(random.Random(5), 4, 5)
    b = make_document(random.Random(5), 4, 5)
    c = make_document(random.Random(6), 4, 6)
    assert a == b
    assert a.target != c.target


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layouts": ("form", "poster")}, "unknown layout"),
        ({"layouts": ()}, "layouts is empty"),
        ({"size": (100, 768)}, "each side"),
        ({"augment": "heavy"}, "augment must be"),
        ({"min_products": 0}, "min_products"),
        ({"max_products": 9}, "max_products"),
        ({"min_products": 5, "max_products": 4}, "min_products"),
        ({"photos_per_doc": 0}, "photos_per_doc"),
        ({"min_filled": -1}, "min_filled"),
        ({"max_filled": 12}, "max_filled"),
        ({"min_filled": 3, "max_filled": 2}, "min_filled"),
        ({"jpeg_quality": 0}, "jpeg_quality"),
        ({"novel_names": 1.5}, "novel_names"),
        ({"novel_names": -0.1}, "novel_names"),
        ({"novel_names": True}, "novel_names"),
    ],
)
def test_config_rejects_bad_values_with_a_clear_message(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SynthConfig(**kwargs)


def test_config_round_trips_and_rejects_unknown_keys() -> None:
    config = SynthConfig(seed=4, layouts=["receipt", "form"], size=[640, 800], augment="photo")  # type: ignore[arg-type]
    assert config.layouts == ("receipt", "form") and config.size == (640, 800)
    assert SynthConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ConfigError, match="unknown synth config key"):
        SynthConfig.from_dict({"seed": 1, "colour": "red"})


def test_blank_fields_leave_only_the_totals_and_the_drawn_count_filled() -> None:
    from vlmocr.data.synth.generate import render_document
    from vlmocr.schema import FILLABLE_FIELDS, TOTAL_FIELDS

    full = SynthConfig(seed=3, max_products=2, augment="none")
    sparse = SynthConfig(seed=3, max_products=2, augment="none", min_filled=1, max_filled=3)
    counts = set()
    for index in range(40):
        whole, _ = render_document(full, "train", index)
        doc, page = render_document(sparse, "train", index)
        filled = [name for name in FILLABLE_FIELDS if doc.target[name]]
        counts.add(len(filled))
        assert 1 <= len(filled) <= 3
        assert check_target(doc.target) == []
        # The blanks are the only change: every kept value, the rows and the totals are the full document's.
        for name in FIELD_ORDER:
            if name in FILLABLE_FIELDS and name not in filled:
                assert doc.target[name] == ""
            else:
                assert doc.target[name] == whole.target[name], name
        assert all(doc.target[name] for name in TOTAL_FIELDS)
        # A blank field puts no text on the page; a kept one does.
        drawn = {box.field for box in page.boxes if box.text}
        assert set(filled) <= drawn and not (set(FILLABLE_FIELDS) - set(filled)) & drawn
    assert counts == {1, 2, 3}


def test_checker_allows_blank_fields_but_not_blank_totals(targets: list[dict]) -> None:
    target = dict(targets[0], route="", page_number="")
    assert check_target(target) == []
    target["total_cases"] = ""
    assert check_target(target) == ["total_cases must be a non-empty string",
                                     "total_cases or the cases column is not a number"]


def test_novel_names_replace_the_name_letters_and_nothing_else() -> None:
    from vlmocr.data.synth.generate import render_document

    plain = SynthConfig(seed=5, max_products=2, augment="none")
    novel = SynthConfig(seed=5, max_products=2, augment="none", novel_names=1.0)
    faker_words = set()
    for index in range(30):
        whole, _ = render_document(plain, "train", index)
        doc, page = render_document(novel, "train", index)
        assert check_target(doc.target) == []
        for name in FIELD_ORDER:  # every other field and row is the plain document's
            if name not in ("salesman", "destination"):
                assert doc.target[name] == whole.target[name], name
        for name in ("salesman", "destination"):
            old, new = whole.target[name], doc.target[name]
            # Same shape: same length, digits and punctuation in place, letters' case kept.
            assert len(new) == len(old)
            assert [c for c in new if not c.isalpha()] == [c for c in old if not c.isalpha()]
            assert all(a.isupper() == b.isupper() for a, b in zip(old, new) if a.isalpha())
            faker_words |= set(old.split())
        assert re.fullmatch(SHAPES["salesman"], doc.target["salesman"])
        assert doc.target["salesman"] != whole.target["salesman"]
        # The page shows the new values.
        drawn = " ".join(box.text for box in page.boxes if box.field in ("salesman", "destination"))
        assert doc.target["salesman"] in drawn
    # Street suffixes, unit words and state codes stay; the names are not Faker's.
    words = [w for i in range(30) for w in render_document(novel, "train", i)[0].target["salesman"].split()]
    assert len(set(words) & faker_words) <= 1  # a short random word can happen to be a name


def test_novel_names_share_and_default_documents_unchanged() -> None:
    from vlmocr.data.synth.generate import render_document

    plain = SynthConfig(seed=8, max_products=1, augment="none")
    half = SynthConfig(seed=8, max_products=1, augment="none", novel_names=0.5)
    changed = 0
    for index in range(60):
        a, page_a = render_document(plain, "valid", index)
        b, page_b = render_document(half, "valid", index)
        if a.target == b.target:
            assert page_a.image.tobytes() == page_b.image.tobytes()  # the same page, pixel for pixel
        else:
            changed += 1
    assert 18 <= changed <= 42  # about half
    # The share is drawn per document, deterministically.
    again = [render_document(half, "valid", i)[0].target["salesman"] for i in range(10)]
    assert again == [render_document(half, "valid", i)[0].target["salesman"] for i in range(10)]
