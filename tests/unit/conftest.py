"""Fixtures for unit tests: small Roboflow datasets made with Pillow in tmp folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

SEED_IMAGE = "IMG_3128_jpg.rf.050d52dec36d353a43a9eba664c28ad3.jpg"
# The seed's example annotation line, verbatim.
SEED_SUFFIX = (
    '{"route": "D452-SU-275","pallet_number": "15","delivery_date": "1/11/2024","load": "1",'
    '"dock": "D05","shipment_id": "K77912144793","destination": "82135 Robert Harbors Apt. 285, '
    'Marquezhaven, AZ 68208","asn_number": "1338742991","salesman": "KIMBERLY GARCIA","products": '
    '[{"description": "223606 - CASE OF MICROFIBER SPONGES","cases": "4","sales_units": "4","layers": "5"},'
    '{"description": "728495 - BOX OF STAIN REMOVERS","cases": "64","sales_units": "2","layers": "4"},'
    '{"description": "112233 - CASE OF DISH SOAP","cases": "8","sales_units": "2","layers": "1"},'
    '{"description": "847395 - CASE OF SQUEEGEES","cases": "4","sales_units": "32","layers": "1"},'
    '{"description": "963741 - 12PK OF DISINFECTANT WIPES","cases": "8","sales_units": "2","layers": "2"},'
    '{"description": "258963 - CASE OF MULTI-SURFACE SPRAY","cases": "32","sales_units": "32","layers": "4"}],'
    '"total_cases": "120","total_units": "74","total_layers": "17","printed_date": "12/05/2024 11:29",'
    '"page_number": "59"}'
)


def write_image(path: Path, size: tuple[int, int] = (64, 48), fmt: str = "JPEG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (240, 240, 230)).save(path, format=fmt)
    return path


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def annotation(image: str, suffix: str = SEED_SUFFIX, prefix: str = "<JSON>") -> str:
    return json.dumps({"image": image, "prefix": prefix, "suffix": suffix})


@pytest.fixture
def seed_dataset(tmp_path: Path) -> Path:
    """A dataset whose train split holds exactly the seed's example line and image."""
    root = tmp_path / "pallet"
    write_image(root / "train" / SEED_IMAGE)
    write_lines(root / "train" / "annotations.jsonl", [annotation(SEED_IMAGE)])
    for split in ("valid", "test"):
        write_image(root / split / f"{split}.jpg")
        write_lines(root / split / "annotations.jsonl", [annotation(f"{split}.jpg")])
    return root


def benchmark_module(name: str):
    """Import benchmarks/NAME.py (the benchmarks folder is not a package)."""
    import importlib
    import sys

    folder = str(Path(__file__).resolve().parents[2] / "benchmarks")
    sys.path.insert(0, folder)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(folder)
