"""Does the model use its image? Answer-token loss with each sample's own image against another's.

A model that has learned the answer's format but not to read writes plausible values whatever
the image; one that reads predicts the values of *this* document better when it sees it. For a
set of samples this computes, with training's own encoder (prompt, resolution, M-RoPE
positions), the loss of every answer token twice: with the sample's image, and with the next
sample's image. Tokens are split into *values* (characters inside a JSON string or number value)
and *structure* (keys, quotes, brackets, `<|im_end|>`).

`image_gain_values` (mean value-token loss with another image minus with its own) is the onset
of reading: it leaves zero long before field F1 moves. A model that uses only the page's layout
(how many rows) shows a structure gain and no value gain. The in-run evaluation reports it, and
`benchmarks/probe_image_use.py` breaks it down by field.
"""

from __future__ import annotations

import contextlib
import logging
import re
import statistics
from dataclasses import replace
from typing import Any

from vlmocr.train.data import TrainSample

log = logging.getLogger(__name__)
# JSON's scalar tokens: a string (a key when a colon follows), a number or a literal.
_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"(\s*:)?|(-?\d[\d.eE+-]*|true|false|null)')
STRUCTURE = "structure"


def value_spans(answer: str) -> list[tuple[int, int, str]]:
    """(start, end, key) of every scalar value in a JSON answer (string values without their quotes).

    A value in an array is named by the key the array belongs to ({"lines": ["a", "b"]}: both
    "lines"); a value before any key (a bare array) by the empty string.
    """
    spans = []
    key = ""
    for m in _TOKEN.finditer(answer):
        if m.group(2) is not None:  # "key":
            key = m.group(1)
        elif m.group(1) is not None:
            spans.append((m.start(1), m.end(1), key))
        else:
            spans.append((m.start(3), m.end(3), key))
    return spans


def _span_at(start: int, end: int, spans: list[tuple[int, int, str]]) -> int | None:
    """The index of the first value span the characters [start, end) overlap, else None."""
    return next((i for i, (s, e, _) in enumerate(spans) if start < e and end > s), None)


def field_of(start: int, end: int, spans: list[tuple[int, int, str]]) -> str:
    """The key whose value the characters [start, end) overlap, else `structure`."""
    at = _span_at(start, end, spans)
    return STRUCTURE if at is None else spans[at][2]


def offset_fields(offsets: list[tuple[int, int]], answer: str, *, first_apart: bool = False,
                  by_length: bool = False) -> list[str]:
    """The field of each (start, end) token of `answer`. With `first_apart`, a value's first token is
    named `FIELD (first)`: how much of a value the image gives after its first characters (a model
    that reads a name's first letter and guesses the rest gains on that token only). With `by_length`,
    a value token's name ends in `[1 char]` or `[2+ chars]` (its characters, spaces aside): whether a
    model reads single characters and not the multi-letter pieces a name is cut into."""
    spans = value_spans(answer)
    out: list[str] = []
    started: set[int] = set()
    for s, e in offsets:
        at = _span_at(s, e, spans)
        if at is None:
            out.append(STRUCTURE)
            continue
        key = spans[at][2]
        name = f"{key} (first)" if first_apart and at not in started else key
        if by_length:
            name += " [1 char]" if len(answer[s:e].strip()) <= 1 else " [2+ chars]"
        out.append(name)
        started.add(at)
    return out


def token_fields(tokenizer: Any, answer: str, *, first_apart: bool = False, by_length: bool = False) -> list[str]:
    """The field of each answer token as training encodes it (the answer's tokens, then `<|im_end|>`)."""
    offsets = tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return [*offset_fields(offsets, answer, first_apart=first_apart, by_length=by_length), STRUCTURE]


def answer_token_losses(model: Any, feature: dict[str, Any], pad_id: int, *, device: Any,
                        autocast: Any = None, finish: Any = None) -> list[float]:
    """Cross-entropy of each answer token (labels != -100) of one encoded sample.

    `finish`: the encoder's `model_inputs`, for samples encoded with compact pixels."""
    import torch

    from vlmocr.train.collate import pad_batch

    batch = {k: v.to(device) for k, v in pad_batch([feature], pad_id).items()}
    if finish is not None:
        batch = finish(batch)
    labels = batch.pop("labels")[0, 1:]
    amp = torch.autocast(device.type, dtype=autocast) if autocast is not None else contextlib.nullcontext()
    with torch.no_grad(), amp:
        logits = model(**batch).logits[0, :-1]
    keep = labels != -100
    return torch.nn.functional.cross_entropy(logits[keep].float(), labels[keep], reduction="none").tolist()


def image_use(model: Any, encoder: Any, samples: list[TrainSample], *, device: Any,
              autocast: Any = None, first_apart: bool = False,
              by_length: bool = False) -> tuple[dict[str, float], dict[str, dict[str, list[float]]]]:
    """Summary metrics and per-field token losses ({field: {"own": [...], "other": [...]}}).

    Needs at least two samples; sample i is also scored with the image of sample i + 1.
    `first_apart`, `by_length`: fields split by token (`offset_fields`).
    """
    if len(samples) < 2:
        return {}, {}
    was_training = model.training
    model.eval()
    per_field: dict[str, dict[str, list[float]]] = {}
    own_lower = 0
    try:
        for i, sample in enumerate(samples):
            other = samples[(i + 1) % len(samples)]
            own = answer_token_losses(model, encoder.encode(sample), encoder.pad_id, device=device,
                                      autocast=autocast, finish=encoder.model_inputs)
            swapped = answer_token_losses(model, encoder.encode(replace(sample, image=other.image)),
                                          encoder.pad_id, device=device, autocast=autocast,
                                          finish=encoder.model_inputs)
            fields = token_fields(encoder.processor.tokenizer, sample.answer, first_apart=first_apart,
                                  by_length=by_length)
            if len(fields) != len(own):  # offsets that do not match the ids: count it, but not as values
                log.warning("%s: %d token offsets for %d answer tokens; not split into values",
                            sample.source, len(fields), len(own))
                fields = ["unsplit"] * len(own)
            for name, a, b in zip(fields, own, swapped):
                slot = per_field.setdefault(name, {"own": [], "other": []})
                slot["own"].append(a)
                slot["other"].append(b)
            own_lower += statistics.fmean(own) < statistics.fmean(swapped)
    finally:
        model.train(was_training)

    groups = {"": list(per_field),
              "_values": [n for n in per_field if n not in (STRUCTURE, "unsplit")],
              "_structure": [n for n in per_field if n == STRUCTURE]}
    summary: dict[str, float] = {}
    for suffix, names in groups.items():
        own_xs = [x for n in names for x in per_field[n]["own"]]
        if not own_xs:  # no such tokens (no values in the answers): no figure rather than a 0
            continue
        other_xs = [x for n in names for x in per_field[n]["other"]]
        own_mean, other_mean = statistics.fmean(own_xs), statistics.fmean(other_xs)
        if not suffix:
            summary.update(image_loss_own=own_mean, image_loss_other=other_mean)
        summary[f"image_gain{suffix}"] = other_mean - own_mean
    summary["image_own_lower"] = own_lower / len(samples)
    return summary, per_field
