"""Training samples from a Roboflow folder, our converted files, or the synthetic stream.

Every source becomes a `SampleSet`: `get(i)` returns a `TrainSample` (an image, the
system message and question to train with, the answer text, the parsed gold JSON). A
finite set knows its size; the synthetic stream has none (sample i is rendered on demand
from `vlmocr.data.synth`, so resuming at sample N needs no replay).

Answer text: `dumps_target` (compact JSON, what constrained serving emits) by default,
or the suffix verbatim (`data.target_format: verbatim`). Bad lines are reported with
file:line and reason; more than `data.max_skip_ratio` of them is an error.

The prompt contract: converted files carry their own system message and question. When
the config names no prompt, a file whose samples all use one prompt defines it; a file
that disagrees with a prompt the config names is an error, so the prompt stored with the
run is always the one the model was trained on.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmocr.errors import ConfigError, DatasetError
from vlmocr.prompts import IMAGE_TAG, PromptContract
from vlmocr.records import Skip
from vlmocr.schema import dumps_target

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSample:
    """One training example. `image` is a path (files) or a PIL image (synthetic stream)."""

    image: Any
    system: str
    question: str
    answer: str
    gold: Any
    source: str


@dataclass
class SampleSet:
    """Samples by index: a list, or a generator function for an endless stream (`size` None)."""

    name: str
    prompt: PromptContract
    size: int | None
    _items: list[TrainSample] | None = None
    _make: Callable[[int], TrainSample] | None = None
    skips: list[Skip] = field(default_factory=list)

    def get(self, index: int) -> TrainSample:
        if self._items is not None:
            return self._items[index]
        assert self._make is not None
        return self._make(index)

    def __len__(self) -> int:
        if self.size is None:
            raise TypeError("an endless stream has no length")
        return self.size

    def head(self, n: int) -> list[TrainSample]:
        count = n if self.size is None else min(n, self.size)
        return [self.get(i) for i in range(count)]


def answer_text(suffix: str, target: Any, target_format: str) -> str:
    """The text the model learns to write for one sample."""
    return suffix if target_format == "verbatim" else dumps_target(target)


def _choose_prompt(found: set[tuple[str, str]], configured: PromptContract | None, where: str) -> PromptContract:
    if configured is not None:
        other = {p for p in found if p != (configured.system, configured.question)}
        if other:
            system, question = sorted(other)[0]
            raise ConfigError(
                f"{where}: samples use the question {question!r} (system message {system[:40]!r}...), "
                "but the config's prompt differs; the run must store the prompt it trains on. "
                "Remove `prompt` from the config to use the file's, or re-convert the data with this prompt."
            )
        return configured
    if len(found) > 1:
        raise ConfigError(
            f"{where}: samples use {len(found)} different prompts (system + question); "
            "a run stores one prompt contract. Re-convert with one prompt."
        )
    if found:
        system, question = next(iter(found))
        return PromptContract(system=system, question=question)
    return PromptContract()


def from_roboflow(
    root: Path, split: str, *, prompt: PromptContract, keep_prefix: bool, target_format: str,
    max_skip_ratio: float, limit: int | None = None,
) -> SampleSet:
    """Samples of one split of a Roboflow dataset, read through the data stage."""
    from vlmocr.data.roboflow import check_dataset, enforce_skip_threshold

    report = check_dataset(Path(root), [split])
    enforce_skip_threshold(report, max_skip_ratio)
    items = [
        TrainSample(
            image=r.image_path,
            system=prompt.system,
            question=prompt.question_for(r.prefix, keep_prefix=keep_prefix),
            answer=answer_text(r.suffix, r.target, target_format),
            gold=r.target,
            source=f"{split}/annotations.jsonl:{r.line}",
        )
        for r in report.records
    ][:limit]
    if not items:
        raise DatasetError(f"{root}/{split}: no usable samples")
    return SampleSet(f"{root}/{split}", prompt, len(items), _items=items, skips=report.skips)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    raise DatasetError(f"message content must be text or a list of parts, got {type(content).__name__}")


def _parse_sharegpt(obj: Any) -> tuple[str, str, str, str]:
    """(image, system, question, answer) of one ShareGPT sample in the seed's form."""
    if not isinstance(obj, dict):
        raise DatasetError("sample is not a JSON object")
    image = obj.get("image", obj.get("images"))
    if isinstance(image, list):
        if len(image) != 1:
            raise DatasetError(f"expected exactly one image, got {len(image)}")
        image = image[0]
    if not isinstance(image, str) or not image:
        raise DatasetError("missing 'image'")
    turns = obj.get("conversations") or obj.get("messages")
    if not isinstance(turns, list) or len(turns) != 2:
        raise DatasetError("expected 'conversations' with one human and one gpt turn")
    human, gpt = turns
    if not (isinstance(human, dict) and isinstance(gpt, dict)):
        raise DatasetError("conversation turns must be objects")
    question = str(human.get("value", human.get("content", "")))
    if question.count(IMAGE_TAG) != 1:
        raise DatasetError(f"the human turn must hold exactly one {IMAGE_TAG} tag")
    question = question.replace(IMAGE_TAG, "", 1).lstrip("\n")
    answer = gpt.get("value", gpt.get("content"))
    if not isinstance(answer, str):
        raise DatasetError("the gpt turn has no text")
    return image, str(obj.get("system") or PromptContract().system), question, answer


def _parse_messages(obj: Any) -> tuple[str, str, str, str]:
    """(image, system, question, answer) of one chat-messages sample (TRL layout)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
        raise DatasetError("sample has no 'messages' list")
    by_role: dict[str, Any] = {}
    for message in obj["messages"]:
        if isinstance(message, dict) and message.get("role") in ("system", "user", "assistant"):
            by_role.setdefault(message["role"], message.get("content"))
    if "user" not in by_role or "assistant" not in by_role:
        raise DatasetError("messages need a user and an assistant turn")
    images = obj.get("images")
    if not images and isinstance(by_role["user"], list):
        images = [p.get("image") for p in by_role["user"] if isinstance(p, dict) and p.get("type") == "image"]
    if not isinstance(images, list) or len(images) != 1 or not isinstance(images[0], str):
        raise DatasetError("expected exactly one image path")
    system = _text_of(by_role["system"]) if "system" in by_role else PromptContract().system
    return images[0], system, _text_of(by_role["user"]), _text_of(by_role["assistant"])


def from_file(
    path: Path, *, prompt: PromptContract | None, target_format: str, max_skip_ratio: float,
    limit: int | None = None,
) -> SampleSet:
    """Samples of a ShareGPT `.json` (list) or messages `.jsonl` file made by `vlmocr data convert`.

    Relative image paths are resolved against the file's folder (`../` allowed, as
    LLaMA-Factory allows it: these files are the user's own, not a downloaded dataset).
    Skips are numbered by line (.jsonl) or by sample (.json list, from 1).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: training file not found")
    text = path.read_text(encoding="utf-8")
    rows: list[tuple[int, Any]] = []
    if path.suffix == ".jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError as exc:
                    rows.append((number, DatasetError(f"not valid JSON ({exc.msg})")))
        parse = _parse_messages
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
        if not isinstance(data, list):
            raise DatasetError(f"{path}: a ShareGPT file holds a JSON list of samples")
        rows = list(enumerate(data, start=1))
        parse = _parse_sharegpt
    parsed: list[tuple[Path, str, str, str, Any, str]] = []
    skips: list[Skip] = []
    for number, obj in rows:
        try:
            if isinstance(obj, DatasetError):
                raise obj
            image, system, question, answer = parse(obj)
            if "\x00" in image:
                raise DatasetError(f"image path contains a NUL byte: {image!r}")
            image_path = Path(image) if Path(image).is_absolute() else (path.parent / image).resolve()
            if not image_path.is_file():
                raise DatasetError(f"image not found: {image}")
            try:
                gold = json.loads(answer)
            except json.JSONDecodeError as exc:
                if target_format == "compact":
                    raise DatasetError(f"answer is not valid JSON ({exc.msg}); use target_format: verbatim") from exc
                gold = None
            parsed.append((image_path, system, question, answer, gold, f"{path.name}:{number}"))
        except DatasetError as exc:
            skips.append(Skip(path.name, number, str(exc)))
    total = len(parsed) + len(skips)
    if not parsed or (total and len(skips) / total > max_skip_ratio):
        first = f"; first: {skips[0]}" if skips else ""
        raise DatasetError(f"{path}: {len(skips)} of {total} samples unusable{first}")
    chosen = _choose_prompt({(s, q) for _, s, q, _, _, _ in parsed}, prompt, str(path))
    items = [
        TrainSample(
            image=image_path, system=system, question=question,
            answer=answer if target_format == "verbatim" else dumps_target(gold), gold=gold, source=src,
        )
        for image_path, system, question, answer, gold, src in parsed
    ][:limit]
    return SampleSet(str(path), chosen, len(items), _items=items, skips=skips)


def from_synth(settings: dict[str, Any], split: str, *, prompt: PromptContract, target_format: str) -> SampleSet:
    """The endless synthetic stream of `split`: sample i is photo i % k of document i // k."""
    from vlmocr.data.synth import SynthConfig, document_samples

    config = SynthConfig.from_dict(settings)
    per_doc = config.photos_per_doc

    def make(index: int) -> TrainSample:
        doc, photo = divmod(index, per_doc)
        sample = document_samples(config, split, doc)[photo]
        return TrainSample(
            image=sample.image, system=prompt.system, question=prompt.question,
            answer=dumps_target(sample.target) if target_format == "compact" else json.dumps(sample.target),
            gold=sample.target, source=f"synth:{split}:{sample.doc_id}:{photo}",
        )

    return SampleSet(f"synth/{split}", prompt, None, _make=make)


def mixed(main: SampleSet, extra: SampleSet, share: float) -> SampleSet:
    """An endless stream with `share` of its samples from `extra`, evenly spaced, the rest from `main`.

    Sample i is `extra`'s next one when floor((i + 1) * share) > floor(i * share), else `main`'s next:
    each stream's samples are taken in order, once, and sample i depends only on i (resuming needs no
    replay, workers need no shared state).
    """
    if not 0 < share < 1:
        raise ValueError(f"share must be between 0 and 1, got {share}")

    def make(index: int) -> TrainSample:
        before = math.floor(index * share)  # extra's samples among 0 .. index-1
        if math.floor((index + 1) * share) > before:
            return extra.get(before)
        return main.get(index - before)

    return SampleSet(f"{main.name} + {share:g} {extra.name}", main.prompt, None, _make=make)


@dataclass
class TrainData:
    train: SampleSet
    valid: SampleSet | None
    prompt: PromptContract


def load_data(data: Any, prompt: PromptContract | None, *, want_valid: bool = True) -> TrainData:
    """Train (and, when available, valid) samples for a `DataConfig`."""
    contract = prompt or PromptContract()
    if data.dataset is not None:
        root = Path(data.dataset)
        common = {"prompt": contract, "keep_prefix": data.keep_prefix, "target_format": data.target_format,
                  "max_skip_ratio": data.max_skip_ratio}
        train = from_roboflow(root, data.train_split, limit=data.max_train_samples, **common)
        valid = None
        if want_valid and (root / data.valid_split / "annotations.jsonl").is_file():
            valid = from_roboflow(root, data.valid_split, **common)
        elif want_valid:
            log.warning("%s has no %s split: no evaluation during training", root, data.valid_split)
        return TrainData(train, valid, contract)
    if data.train_file is not None:
        train = from_file(Path(data.train_file), prompt=prompt, target_format=data.target_format,
                          max_skip_ratio=data.max_skip_ratio, limit=data.max_train_samples)
        valid = None
        if want_valid and data.valid_file:
            valid = from_file(Path(data.valid_file), prompt=train.prompt, target_format=data.target_format,
                              max_skip_ratio=data.max_skip_ratio)
        return TrainData(train, valid, train.prompt)
    if data.synth is not None:
        train = from_synth(data.synth, data.train_split, prompt=contract, target_format=data.target_format)
        valid = from_synth(data.synth, data.valid_split, prompt=contract, target_format=data.target_format)
        if data.mix:
            share = float(data.mix["share"])
            extra_prompt = PromptContract.from_dict(data.mix["prompt"]) if data.mix.get("prompt") else contract
            extra = from_synth(data.mix_synth(), data.train_split, prompt=extra_prompt,
                               target_format=data.target_format)
            train = mixed(train, extra, share)
            log.info("training stream: %s (%.0f%% of the samples with the prompt %r)", train.name, share * 100,
                     extra_prompt.question)
        return TrainData(train, valid if want_valid else None, contract)
    raise ConfigError("data: give one of dataset (Roboflow folder), train_file (converted file) or synth")
