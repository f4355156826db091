"""How often the read task's page crops show each manifest field, and how much of what they show is letters.

The built-in model reads digits and codes but guesses names and addresses (docs/builtin.md, runs 24-26:
field F1 salesman 0.01, destination 0.05 against 0.92-1.0 for numbers). It learned to read from the read
task on crops (`data.synth.task: read`, `crop`). This counts, over the crops that task draws (the
settings of runs 20-21 and of run 22, and page-wide strips; the four trained layouts), in what share
of crops each field's string appears whole (a string the crop's edge cuts is erased from the image and
left out of the answer), and the share of letters among the characters of the answers, per field;
whole 768 px pages (what extraction shows) are the reference.

    python benchmarks/read_task_field_exposure.py [--n 400] [--out benchmarks/results/read_task_field_exposure.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from vlmocr.fileio import cpu_machine

TRAINED = ["form", "two_column", "receipt", "dense"]
SETTINGS = {"runs 20-21 (448 px crops of 1536 px pages)": {"size": [1536, 1536], "crop": 448},
            "run 22 (448 px crops of 768 px pages)": {"size": [768, 768], "crop": 448},
            "strips: [1536, 448] crops of 1536 px pages (whole lines)": {"size": [1536, 1536], "crop": [1536, 448]},
            "whole 768 px pages (reference: what extraction shows)": {"size": [768, 768]}}


def _kind(ch: str) -> str:
    return "letter" if ch.isalpha() else "digit" if ch.isdigit() else "other"


def exposure(settings: dict[str, Any], n: int) -> dict[str, Any]:
    from vlmocr.data.synth import SynthConfig, sample_at

    config = SynthConfig.from_dict({"layouts": TRAINED, "augment": "none", "task": "read", **settings})
    crops_with: Counter[str] = Counter()
    chars: dict[str, Counter[str]] = {}
    for i in range(n):
        sample = sample_at(config, "train", i)
        seen = set()
        for box in sample.boxes:
            field = re.sub(r"\.\d+\.", "[].", box.field) if box.field else "(labels, headings)"
            seen.add(field)
            chars.setdefault(field, Counter()).update(_kind(ch) for ch in box.text if not ch.isspace())
        crops_with.update(seen)
    total = Counter()
    for c in chars.values():
        total.update(c)
    return {
        "crops": n,
        "share_of_crops_showing": {f: round(k / n, 3) for f, k in crops_with.most_common()},
        "letter_share_by_field": {f: round(c["letter"] / max(1, sum(c.values())), 3)
                                  for f, c in sorted(chars.items())},
        "characters_by_field": {f: sum(c.values()) for f, c in sorted(chars.items(), key=lambda kv: -sum(kv[1].values()))},
        "letter_share_all": round(total["letter"] / max(1, sum(total.values())), 3),
        "letter_share_of_field_values": round(
            sum(c["letter"] for f, c in chars.items() if f != "(labels, headings)")
            / max(1, sum(sum(c.values()) for f, c in chars.items() if f != "(labels, headings)")), 3),
        "letter_characters_per_image": {
            "field values": round(sum(c["letter"] for f, c in chars.items() if f != "(labels, headings)") / n, 1),
            "labels and headings": round(chars.get("(labels, headings)", Counter())["letter"] / n, 1)},
        "digit_share_all": round(total["digit"] / max(1, sum(total.values())), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/read_task_field_exposure.json"))
    args = parser.parse_args()
    result = {"benchmark": "read_task_field_exposure", "date": datetime.date.today().isoformat(),
              "machine": cpu_machine(), "layouts": TRAINED,
              "settings": {name: exposure(s, args.n) for name, s in SETTINGS.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["settings"], indent=1))


if __name__ == "__main__":
    main()
