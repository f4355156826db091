"""Does a model trained on the synthetic read task read the values, or only recognise the layout?

The read task (`data.synth.task: read`) answers with every printed line, labels included. The
trainer's value-token gain (loss with another page's image minus with the page's own) then counts the
labels' tokens, which the layout alone predicts. This splits each answer's tokens by what the
renderer drew there: a field's value (`TextBox.field` set: names, numbers, dates drawn from random
content), a printed label or heading (`field` None), or JSON structure, and reports the gain of each
group, for one or more model directories on the same pages.

    python benchmarks/read_task_gain.py runs/read1/model --n 24 --set type_scale=2 --set max_products=1 \
        --set min_filled=0 --set max_filled=2 --out benchmarks/results/builtin_read_task_gain.json

A model that reads has a value gain well above zero; one that only knows the layouts has a label
gain and a value gain near zero. Value tokens are also reported apart as "value letters" (a token
with a letter of a value in it) and "value digits" (digits only).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml


def char_classes(answer: str, line_boxes: list[list[Any]]) -> list[str] | None:
    """For each character of the compact JSON answer: "value", "label" or "structure"; None when the
    lines cannot be located (a string that JSON escapes)."""
    classes = ["structure"] * len(answer)
    at = 0
    for boxes in line_boxes:
        texts = [b.text.strip() for b in boxes]
        line = " ".join(texts)
        quoted = json.dumps(line, ensure_ascii=False)
        if len(quoted) != len(line) + 2:
            return None
        at = answer.find(quoted, at)
        if at < 0:
            return None
        pos = at + 1
        for box, text in zip(boxes, texts):
            kind = "value" if box.field else "label"
            for k in range(pos, pos + len(text)):
                classes[k] = kind
            pos += len(text) + 1
        at += len(quoted)
    return classes


def token_classes(tokenizer: Any, answer: str, classes: list[str]) -> list[str]:
    """A token is a value's when any of its characters is, else a label's when any is, else structure."""
    offsets = tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    out = []
    for s, e in offsets:
        kinds = set(classes[s:e])
        out.append("value" if "value" in kinds else "label" if "label" in kinds else "structure")
    return out + ["structure"]  # <|im_end|>


def value_kinds(tokenizer: Any, answer: str, classes: list[str]) -> list[str | None]:
    """For each answer token (and <|im_end|>): "value letters" for a value token with a letter in it,
    "value digits" for one with digits only, None for any other token (labels, structure, punctuation)."""
    offsets = tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    out: list[str | None] = []
    for s, e in offsets:
        chars = [ch for ch, kind in zip(answer[s:e], classes[s:e]) if kind == "value"]
        out.append("value letters" if any(ch.isalpha() for ch in chars)
                   else "value digits" if any(ch.isdigit() for ch in chars) else None)
    return out + [None]


def measure(model_dir: Path, synth: dict[str, Any], n: int, split: str) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vlmocr.contract import load_contract
    from vlmocr.data.synth import SynthConfig
    from vlmocr.data.synth.generate import reading_line_boxes, sample_at
    from vlmocr.schema import dumps_target
    from vlmocr.train.collate import SampleEncoder
    from vlmocr.train.data import TrainSample
    from vlmocr.train.image_use import answer_token_losses

    contract = load_contract(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
    encoder = SampleEncoder(processor, contract.resolution, max_length=4096)
    config = SynthConfig.from_dict({**synth, "task": "read"})
    samples, kinds = [], []
    for i in range(n):
        s = sample_at(config, split, i)
        answer = dumps_target(s.target)
        classes = char_classes(answer, reading_line_boxes(s.boxes))
        if classes is None:
            continue
        samples.append(TrainSample(image=s.image, system=contract.prompt.system, question=contract.prompt.question,
                                   answer=answer, gold=s.target, source=f"synth:{split}:{i}"))
        kinds.append(list(zip(token_classes(processor.tokenizer, answer, classes),
                              value_kinds(processor.tokenizer, answer, classes), strict=True)))
    losses: dict[str, dict[str, list[float]]] = {}
    started = time.perf_counter()
    for i, sample in enumerate(samples):
        other = samples[(i + 1) % len(samples)]
        own = answer_token_losses(model, encoder.encode(sample), encoder.pad_id, device=torch.device("cpu"))
        swapped = answer_token_losses(model, encoder.encode(replace(sample, image=other.image)), encoder.pad_id,
                                      device=torch.device("cpu"))
        if len(own) != len(kinds[i]):
            raise SystemExit(f"{sample.source}: {len(kinds[i])} token classes for {len(own)} answer tokens")
        for (kind, detail), a, b in zip(kinds[i], own, swapped):
            for name in (kind, detail) if detail else (kind,):  # value tokens also by letters / digits
                slot = losses.setdefault(name, {"own": [], "other": []})
                slot["own"].append(a)
                slot["other"].append(b)
    groups = {}
    for kind, slot in sorted(losses.items()):
        own_mean, other_mean = statistics.fmean(slot["own"]), statistics.fmean(slot["other"])
        groups[kind] = {"tokens": len(slot["own"]), "loss_own": round(own_mean, 4), "loss_other": round(other_mean, 4),
                        "gain": round(other_mean - own_mean, 4)}
    return {"model": str(model_dir), "samples": len(samples), "seconds": round(time.perf_counter() - started, 1),
            "groups": groups}


def merge_records(existing: list[dict], new: list[dict]) -> list[dict]:
    """EXISTING with NEW added: a record of the same label (or model path, where it has no label) is replaced."""
    def key(record: dict) -> str:
        return record.get("label") or record["model"]

    names = {key(r) for r in new}
    return [r for r in existing if key(r) not in names] + new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--n", type=int, default=24, help="pages (each also scored with the next page's image)")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a SynthConfig key (YAML value), e.g. type_scale=2")
    parser.add_argument("--out", type=Path, default=None, help="write (or add to) a results JSON")
    parser.add_argument("--label", action="append", default=[], help="what each model is, in order (recorded; "
                        "a record in --out with the same label, or the same model path where none, is replaced)")
    args = parser.parse_args()
    if args.label and len(args.label) != len(args.models):
        parser.error(f"--label given {len(args.label)} times for {len(args.models)} model(s)")
    synth = {"layouts": ["form", "two_column", "receipt", "dense"], "augment": "light"}
    for item in args.set:
        key, _, value = item.partition("=")
        synth[key] = yaml.safe_load(value)
    records = []
    for i, model in enumerate(args.models):
        record = measure(model, synth, args.n, args.split) | {"synth": synth}
        if args.label:
            record["label"] = args.label[i]
        print(json.dumps(record))
        records.append(record)
    if args.out:
        from vlmocr.fileio import atomic_write_json, cpu_machine

        existing = json.loads(args.out.read_text()) if args.out.is_file() else {"records": []}
        existing["records"] = merge_records(existing["records"], records)
        existing["machine"] = cpu_machine()
        existing["what"] = __doc__.split("\n\n")[1].replace("\n", " ")
        atomic_write_json(args.out, existing)


if __name__ == "__main__":
    main()
