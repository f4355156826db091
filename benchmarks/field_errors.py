"""How wrong the wrong values are: per field, edit distances and character confusions, side by side.

`vlmocr eval` says how many values of a field are exact; this says what the misses look like, to tell
a model that misreads a letter or two (more pixels per letter, more reading) from one that writes a
plausible value of its own (a language-model guess):

- exact share, mean character error rate (edit distance / gold length, capped at 1) over all values and
  over the wrong ones only, and the edit distances of the wrong ones in bins (1, 2, 3-5, 6+);
- for values of several words (names, addresses): the share of gold words the answer has in place,
  and the share whose first character it has in place (a model that reads only a word's start and
  writes a likely word scores high on this and low on the words);
- the commonest character substitutions (gold -> answer) over the field;
- with two or more prediction files on the same gold: per field, the values only the later file has
  right (`fixed`) and only the earlier one (`broken`).

    python benchmarks/field_errors.py --gold DIR/test --pred base=A.jsonl --pred new=B.jsonl \
        [--fields route,salesman,destination] [--common] [--out benchmarks/results/NAME.json]

A gold image without a prediction counts as wrong; `--common` keeps only the images every file has
a line for (to compare a run that stopped early with a complete one).

Values are compared after `vlmocr eval`'s default normalization (NFC, whitespace collapsed).
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

from rapidfuzz.distance import Levenshtein

from vlmocr.eval.evaluate import load_gold, load_predictions, match_predictions
from vlmocr.eval.normalize import NormalizeConfig, normalize_values
from vlmocr.fileio import atomic_write_json

DEFAULT_FIELDS = ("route", "shipment_id", "asn_number", "destination", "salesman")
BINS = ((1, 1, "1"), (2, 2, "2"), (3, 5, "3-5"), (6, 10**9, "6+"))


def gold_synth(gold_dir: Path) -> dict[str, Any] | None:
    """The `vlmocr data synth` record of the split GOLD_DIR (synth.json in its folder): generator settings
    and split sizes; None where there is none or it cannot be read."""
    path = Path(gold_dir).parent / "synth.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    return {key: record[key] for key in ("generator", "config", "images") if key in record}


def _value(doc: Any, field: str) -> str | None:
    if not isinstance(doc, dict):
        return None
    value = doc.get(field)
    return value if isinstance(value, str) else None


def load_pairs(gold_dir: Path, pred: Path) -> tuple[dict[str, tuple[Any, Any]], set[str]]:
    """image name -> (gold document, predicted document or None), both normalized; and the images
    the file has a line for (an answer that is no JSON has a line but no document)."""
    records, _ = load_gold(gold_dir)
    predictions, _ = load_predictions(pred)
    match = match_predictions(predictions, records, base=gold_dir)
    norm = NormalizeConfig()
    pairs: dict[str, tuple[Any, Any]] = {}
    for record, prediction in match.pairs:
        gold = normalize_values(record.target, norm)
        answer = normalize_values(prediction.json, norm) if prediction.json is not None else None
        pairs[record.image] = (gold, answer)
    answered = set(pairs)
    for record in match.missing:
        pairs[record.image] = (normalize_values(record.target, norm), None)
    return pairs, answered


def field_errors(pairs: dict[str, tuple[Any, Any]], field: str, top: int = 15) -> dict[str, Any]:
    """The error profile of one top-level string field over the pairs."""
    n = exact = 0
    cer_all: list[float] = []
    cer_wrong: list[float] = []
    bins: Counter[str] = Counter()
    words_total = words_kept = initials_kept = 0
    subs: Counter[str] = Counter()
    examples: list[dict[str, str | None]] = []
    for image in sorted(pairs):
        gold_doc, answer_doc = pairs[image]
        gold = _value(gold_doc, field)
        if gold is None or gold == "":
            continue
        answer = _value(answer_doc, field)
        n += 1
        got = answer or ""
        distance = Levenshtein.distance(gold, got)
        cer = min(1.0, distance / max(1, len(gold)))
        cer_all.append(cer)
        gold_words = gold.split()
        if len(gold_words) > 1:
            answer_words = got.split()
            words_total += len(gold_words)
            words_kept += sum(1 for i, w in enumerate(gold_words) if i < len(answer_words) and answer_words[i] == w)
            initials_kept += sum(1 for i, w in enumerate(gold_words)
                                 if i < len(answer_words) and answer_words[i][:1] == w[:1])
        if distance == 0:
            exact += 1
            continue
        cer_wrong.append(cer)
        bins[next(label for lo, hi, label in BINS if lo <= distance <= hi)] += 1
        for op in Levenshtein.editops(gold, got):
            if op.tag == "replace":
                subs[f"{gold[op.src_pos]}->{got[op.dest_pos]}"] += 1
        if len(examples) < 8:
            examples.append({"image": image, "gold": gold, "answer": answer})
    wrong = n - exact
    return {
        "n": n,
        "exact": round(exact / n, 4) if n else None,
        "wrong": wrong,
        "cer_mean": round(sum(cer_all) / n, 4) if n else None,
        "cer_mean_of_wrong": round(sum(cer_wrong) / wrong, 4) if wrong else None,
        "wrong_by_edit_distance": {label: bins.get(label, 0) for *_, label in BINS},
        "word_accuracy": round(words_kept / words_total, 4) if words_total else None,
        "word_initial_accuracy": round(initials_kept / words_total, 4) if words_total else None,
        "top_substitutions": dict(subs.most_common(top)),
        "examples": examples,
    }


def paired(first: dict[str, tuple[Any, Any]], second: dict[str, tuple[Any, Any]], field: str) -> dict[str, int]:
    """Values right in one file and not the other (images both files scored)."""
    fixed = broken = 0
    for image in first.keys() & second.keys():
        gold = _value(first[image][0], field)
        if not gold:
            continue
        a = _value(first[image][1], field) == gold
        b = _value(second[image][1], field) == gold
        fixed += int(b and not a)
        broken += int(a and not b)
    return {"fixed": fixed, "broken": broken}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gold", type=Path, required=True, help="the test split's folder (annotations.jsonl)")
    parser.add_argument("--pred", action="append", required=True, metavar="LABEL=FILE",
                        help="predictions.jsonl of `vlmocr extract`; repeat to compare (in order)")
    parser.add_argument("--fields", default=",".join(DEFAULT_FIELDS))
    parser.add_argument("--common", action="store_true",
                        help="only images that every predictions file has a line for")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    fields = [f for f in args.fields.split(",") if f]
    runs: list[tuple[str, Path]] = []
    for item in args.pred:
        label, sep, path = item.partition("=")
        if not sep:
            label, path = Path(item).stem, item
        runs.append((label, Path(path)))
    read = {label: load_pairs(args.gold, path) for label, path in runs}
    loaded = {label: pairs for label, (pairs, _) in read.items()}
    if args.common:
        keep = set.intersection(*(answered for _, answered in read.values()))
        loaded = {label: {k: v for k, v in pairs.items() if k in keep} for label, pairs in loaded.items()}
    result: dict[str, Any] = {
        "benchmark": "field_errors",
        "date": datetime.date.today().isoformat(),
        "gold": str(args.gold),
        # The pages' generator settings where the gold is a `vlmocr data synth` split (synth.json beside it):
        # they rebuild the same pages wherever the folder was (often a temporary one).
        "gold_synth": gold_synth(args.gold),
        "predictions": {label: str(path) for label, path in runs},
        "common_only": args.common,
        "images": len(next(iter(loaded.values()))),
        "fields": {f: {label: field_errors(pairs, f) for label, pairs in loaded.items()} for f in fields},
    }
    labels = [label for label, _ in runs]
    if len(labels) > 1:
        result["paired"] = {
            f"{a}->{b}": {f: paired(loaded[a], loaded[b], f) for f in fields}
            for a, b in itertools.pairwise(labels)
        }
    if args.out:
        atomic_write_json(args.out, result, indent=2)
    for f in fields:
        for label in labels:
            e = result["fields"][f][label]
            print(f"{f:14s} {label:12s} exact {e['exact']}  CER {e['cer_mean']}  "
                  f"CER of wrong {e['cer_mean_of_wrong']}  by distance {e['wrong_by_edit_distance']}  "
                  f"words {e['word_accuracy']}  initials {e['word_initial_accuracy']}")
    for pair, per_field in result.get("paired", {}).items():
        print(pair, per_field)
    return result


if __name__ == "__main__":
    main()
