"""The seed's conversion, reproduced exactly, and the converters' reports and atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlmocr.data.convert import ConvertConfig, convert_dataset
from vlmocr.errors import DatasetError
from vlmocr.prompts import SYSTEM_MESSAGE

from .conftest import SEED_IMAGE, SEED_SUFFIX, annotation, write_image, write_lines

# The seed's converted example (its image path aside, which depends on where data lives).
SEED_SYSTEM = (
    "You are a Vision Language Model specialized in extracting structured data from visual representations "
    "of palette manifests.\nYour task is to analyze the provided image of a palette manifest and extract the "
    "relevant information into a well-structured JSON format.\nThe palette manifest includes details such as "
    "item names, quantities, dimensions, weights, and other attributes.\nFocus on identifying key data fields "
    "and ensuring the output adheres to the requested JSON structure.\nProvide only the JSON output based on "
    "the extracted information. Avoid additional explanations or comments."
)


def test_seed_example_round_trip(seed_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = convert_dataset(seed_dataset, out)
    samples = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert report.written == {"train": 1} and report.skips == []
    assert SYSTEM_MESSAGE == SEED_SYSTEM
    sample = samples[0]
    expected = {
        "id": SEED_IMAGE,
        "image": str((seed_dataset / "train" / SEED_IMAGE).resolve()),
        "conversations": [
            {"from": "human", "value": "<image>\nextract data in JSON format"},
            {"from": "gpt", "value": SEED_SUFFIX},
        ],
        "system": SEED_SYSTEM,
    }
    assert sample == expected
    assert list(sample) == ["id", "image", "conversations", "system"]
    info = json.loads((out / "dataset_info.json").read_text(encoding="utf-8"))
    entry = info["manifest"]
    assert entry["file_name"] == "manifest.json" and entry["formatting"] == "sharegpt"
    assert entry["columns"]["messages"] == "conversations" and entry["columns"]["images"] == "image"
    assert entry["tags"] == {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}
    # The system column is mapped too: without it LLaMA-Factory drops the system message.
    assert entry["columns"]["system"] == "system"


def test_relative_paths_resolve_from_output_folder(seed_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "lf" / "data"
    convert_dataset(seed_dataset, out, ConvertConfig(image_paths="relative", name="pallets", splits=("train", "valid")))
    train = json.loads((out / "pallets.json").read_text())
    valid = json.loads((out / "pallets_valid.json").read_text())
    assert (out / train[0]["image"]).resolve() == (seed_dataset / "train" / SEED_IMAGE).resolve()
    assert (out / valid[0]["image"]).is_file()
    info = json.loads((out / "dataset_info.json").read_text())
    assert set(info) == {"pallets", "pallets_valid"}


def test_existing_dataset_info_keeps_other_entries(seed_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    out.mkdir()
    (out / "dataset_info.json").write_text(json.dumps({"alpaca_en_demo": {"file_name": "alpaca.json"}}))
    convert_dataset(seed_dataset, out)
    info = json.loads((out / "dataset_info.json").read_text())
    assert set(info) == {"alpaca_en_demo", "manifest"}


def test_keep_prefix_and_custom_question(seed_dataset: Path, tmp_path: Path) -> None:
    from vlmocr.prompts import PromptContract

    convert_dataset(seed_dataset, tmp_path / "a", ConvertConfig(keep_prefix=True))
    human = json.loads((tmp_path / "a" / "manifest.json").read_text())[0]["conversations"][0]["value"]
    assert human == "<image>\n<JSON>"
    convert_dataset(seed_dataset, tmp_path / "b", ConvertConfig(prompt=PromptContract(question="read it")))
    human = json.loads((tmp_path / "b" / "manifest.json").read_text())[0]["conversations"][0]["value"]
    assert human == "<image>\nread it"


def test_messages_format(seed_dataset: Path, tmp_path: Path) -> None:
    report = convert_dataset(seed_dataset, tmp_path / "m", ConvertConfig(to="messages", splits=("train", "test")))
    lines = (tmp_path / "m" / "manifest.jsonl").read_text().splitlines()
    sample = json.loads(lines[0])
    image = str((seed_dataset / "train" / SEED_IMAGE).resolve())
    assert sample["images"] == [image]
    roles = [m["role"] for m in sample["messages"]]
    assert roles == ["system", "user", "assistant"]
    user = sample["messages"][1]["content"]
    assert user[0] == {"type": "image", "image": image}
    assert user[1] == {"type": "text", "text": "extract data in JSON format"}
    assert sample["messages"][2]["content"][0]["text"] == SEED_SUFFIX
    assert (tmp_path / "m" / "manifest_test.jsonl").is_file()
    assert report.dataset_info is None


def test_bad_lines_are_reported_and_good_ones_written(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for i in range(20):
        write_image(root / "train" / f"{i}.jpg")
    lines = [annotation(f"{i}.jpg") for i in range(20)]
    lines[3] = "{not json"
    write_lines(root / "train" / "annotations.jsonl", lines)
    report = convert_dataset(root, tmp_path / "out", ConvertConfig(max_skip_ratio=0.1))
    assert report.written["train"] == 19
    assert [(s.line, "not valid JSON" in s.reason) for s in report.skips] == [(4, True)]


def test_failure_past_threshold_writes_nothing_and_keeps_old_output(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_image(root / "train" / "a.jpg")
    write_lines(root / "train" / "annotations.jsonl", [annotation("a.jpg"), "{bad", "{bad"])
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text("previous")
    before = sorted(p.name for p in root.rglob("*"))
    with pytest.raises(DatasetError, match="2 of 3 lines skipped"):
        convert_dataset(root, out, ConvertConfig(max_skip_ratio=0.05))
    assert (out / "manifest.json").read_text() == "previous"
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]
    assert sorted(p.name for p in root.rglob("*")) == before


def test_write_failure_leaves_previous_file(seed_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    convert_dataset(seed_dataset, out)
    good = (out / "manifest.json").read_text()

    import vlmocr.fileio as fileio

    def broken_replace(src, dst):  # the disk fails at the last moment
        raise OSError("disk full")

    monkeypatch.setattr(fileio.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        convert_dataset(seed_dataset, out)
    assert (out / "manifest.json").read_text() == good
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_output_inside_input_is_refused(seed_dataset: Path) -> None:
    from vlmocr.errors import ConfigError

    with pytest.raises(ConfigError, match="must not be inside"):
        convert_dataset(seed_dataset, seed_dataset / "converted")
