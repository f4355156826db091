"""Does a model read its image? Answer-token loss with the right image against another document's.

A model that has learned a manifest's format but not to read writes plausible values whatever
the image; one that reads predicts the values of *this* document better when it sees this
document. For N synthetic test documents this computes, with `vlmocr train`'s own encoder (the
same prompt, resolution and M-RoPE positions as training), the loss of every answer token twice:
with the document's own image, and with the image of the next document in the set (same layouts,
same augmentation). It reports the mean loss of each JSON field's value tokens both ways (a
token belongs to the field whose value its characters fall in; keys, quotes and brackets are
`structure`), and for how many documents the own image gave the lower loss.

A field whose loss is lower with its own image is being read, at least in part; equal losses
mean the image is not used for it. This is the cheapest check of where a from-scratch model is
on the way to reading, and it runs on a CPU in a few minutes.

    python benchmarks/probe_image_use.py MODEL [--n 32] [--layouts form,two_column,receipt,dense]
        [--seed 777] [--out benchmarks/results/builtin_image_use_probe.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from vlmocr.fileio import cpu_machine, library_versions

RESULTS = Path(__file__).parent / "results"
_VALUE = re.compile(r'"([A-Za-z_]+)":"((?:[^"\\]|\\.)*)"')


def value_spans(answer: str) -> list[tuple[int, int, str]]:
    """(start, end, key) of every string value in a compact JSON answer."""
    return [(m.start(2), m.end(2), m.group(1)) for m in _VALUE.finditer(answer)]


def field_of(start: int, end: int, spans: list[tuple[int, int, str]]) -> str:
    """The field a token's characters [start, end) fall in, else `structure`."""
    for s, e, key in spans:
        if start < e and end > s:
            return key
    return "structure"


def token_losses(model: Any, feature: dict[str, Any], pad_id: int) -> list[float]:
    """Per-answer-token cross-entropy of one encoded sample (labels != -100), batched as training does."""
    import torch

    from vlmocr.train.collate import pad_batch

    batch = pad_batch([feature], pad_id)
    labels = batch.pop("labels")[0, 1:]
    with torch.no_grad():
        logits = model(**batch).logits[0, :-1].float()
    keep = labels != -100
    return torch.nn.functional.cross_entropy(logits[keep], labels[keep], reduction="none").tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--layouts", default="form,two_column,receipt,dense")
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--augment", default="light")
    parser.add_argument("--out", type=Path, default=RESULTS / "builtin_image_use_probe.json")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vlmocr.contract import load_contract
    from vlmocr.train.collate import SampleEncoder
    from vlmocr.train.data import from_synth

    torch.manual_seed(0)
    contract = load_contract(args.model)
    processor = AutoProcessor.from_pretrained(args.model)
    model = AutoModelForImageTextToText.from_pretrained(args.model, dtype=torch.float32).eval()
    encoder = SampleEncoder(processor, contract.resolution, max_length=8192)
    stream = from_synth({"seed": args.seed, "layouts": args.layouts.split(","), "augment": args.augment},
                        "test", prompt=contract.prompt, target_format="compact")
    samples = [stream.get(i) for i in range(args.n)]
    tok = processor.tokenizer
    per_field: dict[str, dict[str, list[float]]] = {}
    own_lower, doc_rows = 0, []
    t0 = time.perf_counter()
    for i, sample in enumerate(samples):
        other = samples[(i + 1) % len(samples)]
        own = token_losses(model, encoder.encode(sample), encoder.pad_id)
        swapped = token_losses(model, encoder.encode(replace(sample, image=other.image)), encoder.pad_id)
        offsets = tok(sample.answer, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        spans = value_spans(sample.answer)
        fields = [field_of(s, e, spans) for s, e in offsets] + ["structure"]  # + <|im_end|>
        if len(fields) != len(own):
            raise SystemExit(f"{sample.source}: {len(fields)} tokens mapped, {len(own)} losses")
        for name, a, b in zip(fields, own, swapped):
            slot = per_field.setdefault(name, {"own": [], "other": []})
            slot["own"].append(a)
            slot["other"].append(b)
        mean_own, mean_other = statistics.fmean(own), statistics.fmean(swapped)
        own_lower += mean_own < mean_other
        doc_rows.append({"source": sample.source, "loss_own": mean_own, "loss_other": mean_other})
        print(f"{i + 1}/{len(samples)} own {mean_own:.3f} other {mean_other:.3f}", flush=True)
    fields_out = {
        name: {"tokens": len(v["own"]), "loss_own_image": statistics.fmean(v["own"]),
               "loss_other_image": statistics.fmean(v["other"]),
               "gain": statistics.fmean(v["other"]) - statistics.fmean(v["own"])}
        for name, v in sorted(per_field.items(), key=lambda kv: -len(kv[1]["own"]))
    }
    all_own = [x for v in per_field.values() for x in v["own"]]
    all_other = [x for v in per_field.values() for x in v["other"]]
    result = {
        "name": "image_use_probe",
        "date": datetime.date.today().isoformat(),
        "model": str(args.model),
        "machine": cpu_machine(),
        "libraries": library_versions(),
        "test_set": {"split": "test", "seed": args.seed, "layouts": args.layouts.split(","), "augment": args.augment,
                     "n": len(samples)},
        "method": "answer-token cross-entropy with the document's own image vs the next document's image",
        "loss_own_image": statistics.fmean(all_own),
        "loss_other_image": statistics.fmean(all_other),
        "docs_own_image_lower": own_lower,
        "fields": fields_out,
        "docs": doc_rows,
        "seconds": time.perf_counter() - t0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"own image {result['loss_own_image']:.3f}  other image {result['loss_other_image']:.3f}  "
          f"own lower for {own_lower}/{len(samples)} documents")
    for name, f in fields_out.items():
        print(f"  {name:<22} {f['tokens']:>6} tokens  own {f['loss_own_image']:.3f}  other "
              f"{f['loss_other_image']:.3f}  gain {f['gain']:+.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
