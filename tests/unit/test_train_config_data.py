"""Training data sources: Roboflow folder, converted ShareGPT/messages files, synthetic stream (no torch)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlmocr.data.convert import ConvertConfig, convert_dataset
from vlmocr.errors import ConfigError, DatasetError
from vlmocr.prompts import PromptContract
from vlmocr.schema import dumps_target
from vlmocr.train.config import DataConfig
from vlmocr.train.data import from_file, load_data

from .conftest import SEED_SUFFIX, annotation, write_image, write_lines


def test_roboflow_split_gives_compact_answers_and_the_contract_prompt(seed_dataset: Path) -> None:
    data = load_data(DataConfig(dataset=str(seed_dataset)), None)
    sample = data.train.get(0)
    assert len(data.train) == 1 and data.valid is not None and len(data.valid) == 1
    assert sample.answer == dumps_target(json.loads(SEED_SUFFIX)) and sample.gold == json.loads(SEED_SUFFIX)
    assert sample.question == "extract data in JSON format" and sample.system == PromptContract().system
    assert sample.source == "train/annotations.jsonl:1" and Path(sample.image).is_file()
    verbatim = load_data(DataConfig(dataset=str(seed_dataset), target_format="verbatim", keep_prefix=True), None)
    assert verbatim.train.get(0).answer == SEED_SUFFIX and verbatim.train.get(0).question == "<JSON>"


@pytest.mark.parametrize("fmt", ["sharegpt", "messages"])
def test_converted_files_give_the_same_samples(seed_dataset: Path, tmp_path: Path, fmt: str) -> None:
    prompt = PromptContract(system="Read the manifest.", question="JSON please")
    report = convert_dataset(seed_dataset, tmp_path / fmt,
                             ConvertConfig(to=fmt, splits=("train",), image_paths="relative", prompt=prompt))
    data = load_data(DataConfig(train_file=str(report.files["train"])), None)
    sample = data.train.get(0)
    assert data.prompt == prompt  # the file's prompt becomes the run's contract
    assert (sample.system, sample.question) == (prompt.system, prompt.question)
    assert sample.answer == dumps_target(json.loads(SEED_SUFFIX))
    assert Path(sample.image).resolve() == (seed_dataset / "train").resolve() / Path(sample.image).name
    with pytest.raises(ConfigError, match="config's prompt differs"):
        load_data(DataConfig(train_file=str(report.files["train"])), PromptContract())


def test_bad_samples_are_reported_with_their_number(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg")
    good = {"image": "a.jpg", "conversations": [{"from": "human", "value": "<image>\nq"},
                                                {"from": "gpt", "value": SEED_SUFFIX}], "system": "s"}
    no_tag = {**good, "conversations": [{"from": "human", "value": "q"}, good["conversations"][1]]}
    missing = {**good, "image": "../nowhere/a.jpg"}
    path = tmp_path / "train.json"
    path.write_text(json.dumps([good, no_tag, missing, good]))
    with pytest.raises(DatasetError, match="2 of 4 samples unusable; first: train.json:2"):
        from_file(path, prompt=None, target_format="compact", max_skip_ratio=0.05)
    result = from_file(path, prompt=None, target_format="compact", max_skip_ratio=0.5)
    assert len(result) == 2 and [s.line for s in result.skips] == [2, 3]
    assert "exactly one <image>" in result.skips[0].reason and "image not found" in result.skips[1].reason


def test_roboflow_skips_above_the_ratio_fail(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_image(root / "train" / "a.jpg")
    write_lines(root / "train" / "annotations.jsonl", [annotation("a.jpg"), annotation("missing.jpg")])
    with pytest.raises(DatasetError, match="1 of 2 lines skipped"):
        load_data(DataConfig(dataset=str(root)), None)
    data = load_data(DataConfig(dataset=str(root), max_skip_ratio=0.5), None, want_valid=False)
    assert len(data.train) == 1 and data.valid is None


def test_synthetic_stream_is_endless_and_deterministic() -> None:
    settings = {"size": [320, 320], "augment": "none", "max_products": 1, "photos_per_doc": 2}
    data = load_data(DataConfig(synth=settings), None)
    a, b = data.train.get(5), data.train.get(5)
    assert data.train.size is None and a.answer == b.answer and a.image.tobytes() == b.image.tobytes()
    assert data.train.get(4).gold == a.gold and data.train.get(6).gold != a.gold  # 2 photos a document
    assert a.source.startswith("synth:train:") and data.valid is not None
    assert data.valid.get(0).source.startswith("synth:valid:")
    with pytest.raises(TypeError):
        len(data.train)


def test_mixed_stream_takes_its_share_evenly_each_sample_once() -> None:
    from vlmocr.train.data import SampleSet, TrainSample, mixed

    def stream(tag: str) -> SampleSet:
        return SampleSet(tag, PromptContract(), None,
                         _make=lambda i: TrainSample(None, tag, "q", str(i), None, f"{tag}:{i}"))

    mix = mixed(stream("main"), stream("extra"), 0.25)
    taken = [mix.get(i).source for i in range(400)]
    extra = [s for s in taken if s.startswith("extra:")]
    main = [s for s in taken if s.startswith("main:")]
    assert len(extra) == 100 and len(main) == 300
    assert extra == [f"extra:{i}" for i in range(100)] and main == [f"main:{i}" for i in range(300)]
    assert all(sum(s.startswith("extra:") for s in taken[k:k + 8]) == 2 for k in range(0, 400, 8))  # evenly
    assert [mix.get(i).source for i in (399, 7, 3)] == [taken[399], taken[7], taken[3]]  # by index alone
    with pytest.raises(ValueError):
        mixed(stream("main"), stream("extra"), 1.0)


def test_data_mix_adds_the_read_task_with_its_own_prompt_and_pages() -> None:
    settings = {"size": [320, 320], "augment": "none", "max_products": 1}
    read_prompt = {"system": "You read documents.", "question": "Read all the text."}
    mix = {"share": 0.5, "synth": {"task": "read", "crop": [320, 160]}, "prompt": read_prompt}
    data = load_data(DataConfig(synth=settings, mix=mix), None)
    samples = [data.train.get(i) for i in range(4)]
    read = [s for s in samples if s.question == "Read all the text."]
    extract = [s for s in samples if s.question == PromptContract().question]
    assert len(read) == 2 and len(extract) == 2 and {s.system for s in read} == {"You read documents."}
    assert all(s.image.size == (320, 160) and set(s.gold) == {"lines"} for s in read)
    assert all(s.image.size == (320, 320) and "products" in s.gold for s in extract)
    # evaluation and the stored contract stay the main stream's
    assert data.prompt == PromptContract() and data.valid is not None
    assert all(data.valid.get(i).question == PromptContract().question for i in range(3))


def test_data_mix_adds_extraction_on_strips() -> None:
    """Extraction on strips beside whole pages: the strips' answers are the fields they show."""
    import json

    from vlmocr.schema import manifest_schema

    settings = {"size": [640, 640], "augment": "none"}
    question = "extract the data this part of the manifest shows in JSON format"
    mix = {"share": 0.5, "synth": {"crop": [640, 160]}, "prompt": {"question": question}}
    data = load_data(DataConfig(synth=settings, mix=mix), None)
    samples = [data.train.get(i) for i in range(8)]
    strips = [s for s in samples if s.question == question]
    pages = [s for s in samples if s.question == PromptContract().question]
    assert len(strips) == 4 and len(pages) == 4
    fields = set(manifest_schema()["properties"])
    assert all(s.image.size == (640, 640) and set(s.gold) == fields for s in pages)  # whole manifests
    assert all(s.image.size == (640, 160) and s.gold and set(s.gold) < fields for s in strips)  # part of one
    assert all(json.loads(s.answer) == s.gold for s in strips)


@pytest.mark.parametrize(("mix", "message"), [
    ({"share": 0.2}, "set data.synth too"),
    ({"share": 1.5}, "between 0 and 1"),
    ({"share": 0.2, "weight": 1}, "unknown key"),
    ({"share": 0.2, "synth": {"crop": 400}}, "data.mix.synth: crop must be"),  # larger than the 320 px page
    ({"share": 0.2, "prompt": {"system": "x", "answer": "y"}}, "unknown prompt keys"),
])
def test_data_mix_errors_are_clear(mix: dict, message: str) -> None:
    from vlmocr.train.config import load_config

    base = {"model": "m", "max_steps": 2, "data.mix": mix}
    if message != "set data.synth too":
        base["data.synth"] = {"size": [320, 320]}
    with pytest.raises(ConfigError, match=message):
        load_config(None, base)


def test_data_mix_draws_other_documents_unless_it_names_the_seed() -> None:
    settings = {"size": [320, 320], "augment": "none", "max_products": 1}
    other = load_data(DataConfig(synth=settings, mix={"share": 0.5}), None)
    same = load_data(DataConfig(synth=settings, mix={"share": 0.5, "synth": {"seed": 0}}), None)
    # share 0.5: sample 0 is the main stream's document 0, sample 1 the extra stream's document 0
    assert other.train.get(0).gold == same.train.get(0).gold
    assert other.train.get(1).gold != other.train.get(0).gold
    assert same.train.get(1).gold == same.train.get(0).gold
