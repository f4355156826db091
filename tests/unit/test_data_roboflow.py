"""The Roboflow reader: every kind of bad input becomes a located, explained skip."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest

from vlmocr.data.roboflow import check_dataset, document_id, enforce_skip_threshold, read_split
from vlmocr.errors import DatasetError

from .conftest import SEED_SUFFIX, annotation, write_image, write_lines


def png_bomb(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def reasons_by_line(root: Path, split: str = "train", **kwargs) -> dict[int, str]:
    report = read_split(root, split, **kwargs)
    return {s.line: s.reason for s in report.skips}


def test_good_dataset_counts_and_documents(seed_dataset: Path) -> None:
    report = check_dataset(seed_dataset)
    assert {k: len(v.records) for k, v in report.splits.items()} == {"train": 1, "valid": 1, "test": 1}
    assert report.skips == []
    record = report.splits["train"].records[0]
    assert record.target["route"] == "D452-SU-275" and record.suffix == SEED_SUFFIX
    # Photos of one document share its id, wherever they are.
    assert len({r.doc_id for r in report.records}) == 1
    assert document_id(json.loads(SEED_SUFFIX)) == record.doc_id


def test_every_bad_line_is_reported_with_its_reason(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    train = root / "train"
    write_image(train / "ok.jpg")
    (train / "corrupt.jpg").write_bytes(b"this is text, not an image")
    good = write_image(tmp_path / "src.jpg", size=(400, 300))
    (train / "truncated.jpg").write_bytes(good.read_bytes()[:200])
    png_bomb(train / "bomb.png")
    write_image(train / "anim.gif", fmt="GIF")
    outside = write_image(tmp_path / "secret.jpg")
    (train / "link.jpg").symlink_to(outside)
    lines = [
        annotation("ok.jpg"),  # 1 fine
        "{broken json",  # 2
        json.dumps({"image": "ok.jpg", "prefix": "<JSON>"}),  # 3 missing suffix
        json.dumps({"image": "ok.jpg", "prefix": "<JSON>", "suffix": "{not: json}"}),  # 4
        annotation("missing.jpg"),  # 5
        annotation("../secret.jpg"),  # 6 traversal
        annotation(str(outside)),  # 7 absolute path
        annotation("link.jpg"),  # 8 symlink escape
        annotation("ok\x00.jpg"),  # 9 NUL byte
        annotation("corrupt.jpg"),  # 10
        annotation("truncated.jpg"),  # 11
        annotation("bomb.png"),  # 12
        annotation("anim.gif"),  # 13 format not allowed
        "[1, 2, 3]",  # 14 not an object
        json.dumps({"image": 5, "prefix": "<JSON>", "suffix": "{}"}),  # 15 wrong type
    ]
    write_lines(train / "annotations.jsonl", lines)
    with (train / "annotations.jsonl").open("ab") as fh:
        fh.write(b'{"image": "\xff\xfe"}\n')  # 16 invalid UTF-8
    reasons = reasons_by_line(root)
    assert 1 not in reasons
    expected = {
        2: "not valid JSON",
        3: "missing key(s): suffix",
        4: "suffix is not valid JSON",
        5: "image not found",
        6: "may not contain '..'",
        7: "must be relative",
        8: "resolves outside",
        9: "NUL byte",
        10: "not a readable image",
        11: "corrupt or truncated",
        12: "decompression bomb",
        13: "format GIF not allowed",
        14: "expected a JSON object",
        15: "must be a string",
        16: "not valid UTF-8",
    }
    assert set(reasons) == set(expected)
    for line, fragment in expected.items():
        assert fragment in reasons[line], (line, reasons[line])


def test_pixel_cap_is_configurable(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_image(root / "train" / "big.jpg", size=(200, 200))
    write_lines(root / "train" / "annotations.jsonl", [annotation("big.jpg")])
    assert reasons_by_line(root, max_image_pixels=100_000) == {}
    assert "exceeds the cap" in reasons_by_line(root, max_image_pixels=10_000)[1]


def test_skip_threshold(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_image(root / "train" / "a.jpg")
    write_lines(root / "train" / "annotations.jsonl", [annotation("a.jpg")] * 9 + ["{bad"])
    report = check_dataset(root)
    enforce_skip_threshold(report, 0.1)
    with pytest.raises(DatasetError, match="1 of 10 lines skipped"):
        enforce_skip_threshold(report, 0.05)


def test_missing_dataset_and_split_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        check_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no split found"):
        check_dataset(tmp_path / "empty")
    with pytest.raises(DatasetError, match="annotations.jsonl: not found"):
        read_split(tmp_path / "empty", "train")


def test_blank_lines_are_ignored_not_skipped(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_image(root / "train" / "a.jpg")
    write_lines(root / "train" / "annotations.jsonl", [annotation("a.jpg"), "", "   ", annotation("a.jpg")])
    report = read_split(root, "train")
    assert len(report.records) == 2 and report.skips == []
    assert [r.line for r in report.records] == [1, 4]
