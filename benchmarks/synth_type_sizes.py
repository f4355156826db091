"""How large the values are set on synthetic pages, by `type_scale` and by how full the page is.

The reading probe (docs/builtin.md) found the text size a tower trained from scratch starts to read
on: 20 px digits never, 30 and 40 px yes. This measures the type size (px, the font size the
renderer chose) of every value drawn on N pages of each kind, so a curriculum's stages can be set
against it: the median and the 10th/90th percentiles, and the type scale the pages got.

    python benchmarks/synth_type_sizes.py [--n 40] [--out benchmarks/results/synth_type_sizes.json]
    python benchmarks/synth_type_sizes.py --size 448 --out benchmarks/results/synth_type_sizes_448.json  # smaller pages
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
from pathlib import Path

from vlmocr.data.synth import LAYOUTS, SynthConfig
from vlmocr.data.synth.generate import render_document
from vlmocr.fileio import cpu_machine, library_versions

ROOT = Path(__file__).resolve().parents[1]
#: Page kinds: a curriculum's first stage, a middle one, the full manifest (the generator's default).
PAGES = {
    "one_row_0_2_fields": {"max_products": 1, "min_filled": 0, "max_filled": 2},
    "1_3_rows_0_6_fields": {"max_products": 3, "min_filled": 0, "max_filled": 6},
    "manifest": {},
}
TYPE_SCALES = (1.0, 2.0, 3.0, 4.0)
TRAINED_LAYOUTS = tuple(name for name in LAYOUTS if name != "label")  # "label": the built-in model's held-out one


def measure(n: int, page: dict, type_scale: float, size: int = 768) -> dict:
    config = SynthConfig(layouts=TRAINED_LAYOUTS, augment="none", type_scale=type_scale, size=(size, size), **page)
    sizes, scales = [], []
    for index in range(n):
        _, rendered = render_document(config, "train", index)
        sizes += [box.size for box in rendered.boxes if box.field and box.text]
        scales.append(rendered.scale)
    deciles = statistics.quantiles(sizes, n=10)
    return {"type_scale": type_scale, "pages": n, "values": len(sizes), "value_px_median": statistics.median(sizes),
            "value_px_p10": deciles[0], "value_px_p90": deciles[-1], "page_scale_mean": round(statistics.mean(scales), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="pages of each kind")
    parser.add_argument("--size", type=int, default=768, help="page side in pixels (square pages)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "synth_type_sizes.json")
    args = parser.parse_args()
    rows = []
    for name, page in PAGES.items():
        for type_scale in TYPE_SCALES:
            row = {"page": name, "synth": page, **measure(args.n, page, type_scale, args.size)}
            rows.append(row)
            print(f"{name:22s} type_scale {type_scale}: value px median {row['value_px_median']} "
                  f"(p10 {row['value_px_p10']}, p90 {row['value_px_p90']}), page scale {row['page_scale_mean']}")
    result = {"benchmark": "synth_type_sizes", "date": datetime.date.today().isoformat(),
              "machine": cpu_machine(), "libraries": library_versions(),
              "setup": {"size": [args.size, args.size], "layouts": list(TRAINED_LAYOUTS), "augment": "none",
                        "measured": "font size (px) of every non-empty value box the renderer placed"},
              "rows": rows}
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
