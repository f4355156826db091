"""How much of a field's value does a model read from the image? Per-token loss on one field's value.

For extraction answers (the model's own prompt and contract), the loss of each answer token is taken
twice: with the page's own image and with the next page's image. The tokens of a field's value are
grouped by field (and split into the value's first token and the rest), and for each group the script
reports the mean loss with the own image, with another image, and the gain (other minus own, in nats a
token). On pages whose names are random letters (`--set novel_names=1.0`, `vlmocr data synth
--novel-names`) no prior can predict a name's letters: a model that reads them has a low own loss and a
large gain; one that guesses from the first letter has a gain on the first token and little after it.
Far more sensitive than exact-match scores, so a short training run can be judged by it.

    python benchmarks/name_reading_loss.py src/vlmocr/assets/builtin runs/x/export --n 32 \
        --set novel_names=1.0 [--fields salesman,destination,route] [--out benchmarks/results/NAME.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

DEFAULT_FIELDS = ("salesman", "destination", "route", "shipment_id")


def value_spans(answer: str, target: dict[str, Any], fields: list[str]) -> dict[str, tuple[int, int]]:
    """field -> (start, end) character span of its value inside the compact JSON answer (the quotes left
    out); fields that are blank or not top-level strings are left out."""
    spans = {}
    for name in fields:
        value = target.get(name)
        if not isinstance(value, str) or not value:
            continue
        needle = json.dumps(name) + ":" + json.dumps(value, ensure_ascii=False)
        at = answer.find(needle)
        if at < 0:
            continue
        start = at + len(json.dumps(name)) + 2  # past `"name":"`
        spans[name] = (start, start + len(json.dumps(value, ensure_ascii=False)) - 2)
    return spans


def token_groups(offsets: list[tuple[int, int]], spans: dict[str, tuple[int, int]]) -> list[str | None]:
    """For each answer token: "FIELD first" for the first token that overlaps a field's value, "FIELD
    rest" for the others, None for tokens of no chosen field."""
    groups: list[str | None] = []
    seen: set[str] = set()
    for s, e in offsets:
        group = None
        for name, (a, b) in spans.items():
            if s < b and e > a:
                group = f"{name} {'rest' if name in seen else 'first'}"
                seen.add(name)
                break
        groups.append(group)
    return groups


def measure(model_dir: Path, synth: dict[str, Any], n: int, split: str, fields: list[str]) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vlmocr.contract import load_contract
    from vlmocr.data.synth import SynthConfig
    from vlmocr.data.synth.generate import sample_at
    from vlmocr.schema import dumps_target
    from vlmocr.train.collate import SampleEncoder
    from vlmocr.train.data import TrainSample
    from vlmocr.train.image_use import answer_token_losses

    contract = load_contract(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
    encoder = SampleEncoder(processor, contract.resolution, max_length=4096)
    config = SynthConfig.from_dict({**synth, "task": "extract"})
    samples, groups = [], []
    for i in range(n):
        s = sample_at(config, split, i)
        answer = dumps_target(s.target)
        offsets = processor.tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        samples.append(TrainSample(image=s.image, system=contract.prompt.system, question=contract.prompt.question,
                                   answer=answer, gold=s.target, source=f"synth:{split}:{i}"))
        groups.append([*token_groups(offsets, value_spans(answer, s.target, fields)), None])  # + <|im_end|>
    losses: dict[str, dict[str, list[float]]] = {}
    started = time.perf_counter()
    for i, sample in enumerate(samples):
        other = samples[(i + 1) % len(samples)]
        own = answer_token_losses(model, encoder.encode(sample), encoder.pad_id, device=torch.device("cpu"))
        swapped = answer_token_losses(model, encoder.encode(replace(sample, image=other.image)), encoder.pad_id,
                                      device=torch.device("cpu"))
        if len(own) != len(groups[i]):
            raise SystemExit(f"{sample.source}: {len(groups[i])} token groups for {len(own)} answer tokens")
        for group, a, b in zip(groups[i], own, swapped):
            if group is None:
                continue
            for name in (group, group.split()[0]):  # "salesman first" and "salesman"
                slot = losses.setdefault(name, {"own": [], "other": []})
                slot["own"].append(a)
                slot["other"].append(b)
    result = {}
    for name, slot in sorted(losses.items()):
        own_mean, other_mean = statistics.fmean(slot["own"]), statistics.fmean(slot["other"])
        result[name] = {"tokens": len(slot["own"]), "loss_own": round(own_mean, 4),
                        "loss_other": round(other_mean, 4), "gain": round(other_mean - own_mean, 4)}
    return {"model": str(model_dir), "samples": len(samples), "seconds": round(time.perf_counter() - started, 1),
            "groups": result}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--n", type=int, default=32, help="pages (each also scored with the next page's image)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--fields", default=",".join(DEFAULT_FIELDS))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a SynthConfig key (YAML value), e.g. novel_names=1.0")
    parser.add_argument("--label", action="append", default=[], help="what each model is (in order; recorded)")
    parser.add_argument("--out", type=Path, default=None, help="write (or add to) a results JSON")
    args = parser.parse_args(argv)
    synth: dict[str, Any] = {"layouts": ["form", "two_column", "receipt", "dense"], "augment": "light", "seed": 777}
    for item in args.set:
        key, _, value = item.partition("=")
        synth[key] = yaml.safe_load(value)
    fields = [f for f in args.fields.split(",") if f]
    records = []
    for k, model in enumerate(args.models):
        record = measure(model, synth, args.n, args.split, fields) | {"synth": synth, "split": args.split}
        if k < len(args.label):
            record["label"] = args.label[k]
        print(json.dumps(record))
        records.append(record)
    if args.out:
        existing = json.loads(args.out.read_text()) if args.out.is_file() else {"records": []}
        keys = {(r["model"], json.dumps(r["synth"], sort_keys=True)) for r in records}
        existing["records"] = [r for r in existing["records"]
                               if (r["model"], json.dumps(r["synth"], sort_keys=True)) not in keys] + records
        existing["machine"] = {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()}
        existing["what"] = __doc__.split("\n\n")[1].replace("\n", " ")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(existing, indent=2, ensure_ascii=False) + "\n")
    return records


if __name__ == "__main__":
    main()
