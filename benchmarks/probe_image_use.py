"""Does a model read its image? Answer-token loss with the right image against another document's.

A model that has learned a manifest's format but not to read writes plausible values whatever
the image; one that reads predicts the values of *this* document better when it sees this
document. For N synthetic test documents this computes, with `vlmocr train`'s own encoder (the
same prompt, resolution and M-RoPE positions as training), the loss of every answer token twice:
with the document's own image, and with the image of the next document in the set (same layouts,
same augmentation). It reports the mean loss of each JSON field's value tokens both ways (a
token belongs to the field whose value its characters fall in; keys, quotes and brackets are
`structure`), and for how many documents the own image gave the lower loss. The computation is
`vlmocr.train.image_use`, which `vlmocr train`'s in-run evaluation also reports (`image_gain_*`).

A field whose loss is lower with its own image is being read, at least in part; equal losses
mean the image is not used for it. This is the cheapest check of where a from-scratch model is
on the way to reading, and it runs on a CPU in a few minutes.

    python benchmarks/probe_image_use.py MODEL [--n 32] [--layouts form,two_column,receipt,dense]
        [--seed 777] [--set novel_names=1.0] [--first-apart] [--out benchmarks/results/builtin_image_use_probe.json]

`--set KEY=VALUE` sets any other synth key of the test pages (e.g. `novel_names=1.0`: names of random
letters, which no prior predicts, `vlmocr data synth --novel-names`). `--first-apart` reports each value's
first token as `FIELD (first)`: a model that reads a name's first letter and guesses the rest gains on
that token and little on the others. `--by-length` splits a value's tokens by their characters (one,
or more): whether a model reads single characters (digits, codes) and not multi-letter pieces.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
from pathlib import Path

from vlmocr.fileio import cpu_machine, library_versions

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--layouts", default="form,two_column,receipt,dense")
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--augment", default="light")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="another synth key of the test pages (YAML value), e.g. novel_names=1.0")
    parser.add_argument("--first-apart", action="store_true", help="each value's first token as FIELD (first)")
    parser.add_argument("--by-length", action="store_true",
                        help="each value token as FIELD [1 char] or FIELD [2+ chars] (its characters, spaces aside)")
    parser.add_argument("--label", default=None, help="what the model is (recorded)")
    parser.add_argument("--out", type=Path, default=RESULTS / "builtin_image_use_probe.json",
                        help="written; a file that holds {\"records\": [...]} gets this probe added (one a label)")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vlmocr.contract import load_contract
    from vlmocr.train.collate import SampleEncoder
    from vlmocr.train.data import from_synth
    from vlmocr.train.image_use import image_use

    contract = load_contract(args.model)
    processor = AutoProcessor.from_pretrained(args.model)
    model = AutoModelForImageTextToText.from_pretrained(args.model, dtype=torch.float32).eval()
    encoder = SampleEncoder(processor, contract.resolution, max_length=8192)
    import yaml

    synth = {"seed": args.seed, "layouts": args.layouts.split(","), "augment": args.augment}
    for item in args.set:
        key, _, value = item.partition("=")
        synth[key] = yaml.safe_load(value)
    stream = from_synth(synth, "test", prompt=contract.prompt, target_format="compact")
    samples = [stream.get(i) for i in range(args.n)]
    t0 = time.perf_counter()
    summary, per_field = image_use(model, encoder, samples, device=torch.device("cpu"), first_apart=args.first_apart,
                                  by_length=args.by_length)
    fields_out = {
        name: {"tokens": len(v["own"]), "loss_own_image": statistics.fmean(v["own"]),
               "loss_other_image": statistics.fmean(v["other"]),
               "gain": statistics.fmean(v["other"]) - statistics.fmean(v["own"])}
        for name, v in sorted(per_field.items(), key=lambda kv: -len(kv[1]["own"]))
    }
    result = {
        "name": "image_use_probe",
        "date": datetime.date.today().isoformat(),
        "model": str(args.model),
        "label": args.label,
        "machine": cpu_machine(),
        "libraries": library_versions(),
        "test_set": {"split": "test", **synth, "n": len(samples)},
        "first_apart": args.first_apart,
        "by_length": args.by_length,
        "method": "answer-token cross-entropy with the document's own image vs the next document's image",
        "summary": summary,
        "fields": fields_out,
        "seconds": time.perf_counter() - t0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(args.out.read_text(encoding="utf-8")) if args.out.is_file() else None
    if isinstance(existing, dict) and "records" in existing:  # a file of several probes: add this one (by label)
        existing["records"] = [r for r in existing["records"] if r.get("label") != args.label] + [result]
        result = existing
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"own image {summary['image_loss_own']:.3f}  other image {summary['image_loss_other']:.3f}  "
          f"own lower for {summary['image_own_lower']:.0%} of documents; value tokens' gain "
          f"{summary.get('image_gain_values', float('nan')):+.3f}, structure's "
          f"{summary.get('image_gain_structure', float('nan')):+.3f}")
    for name, f in fields_out.items():
        print(f"  {name:<22} {f['tokens']:>6} tokens  own {f['loss_own_image']:.3f}  other "
              f"{f['loss_other_image']:.3f}  gain {f['gain']:+.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
