"""Draw what field confidence is worth from a `bench_builtin_cpu.py --confidence` result.

Left: a review curve per test set: the share of the wrong values found by checking the least
confident fields first, against the share of fields checked (random order is the diagonal; the
best possible order finds every error after checking as many fields as there are errors).
Right: calibration: each confidence bin's accuracy against its mean confidence.

    python benchmarks/plot_confidence.py [benchmarks/results/builtin_cpu_run47_confidence.json]
        [--out docs/confidence_review.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
NAMES = {"trained": "trained layouts", "held_out": "held-out layout (label)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result", type=Path, nargs="?", default=RESULTS / "builtin_cpu_run47_confidence.json")
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "docs" / "confidence_review.png")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(args.result.read_text())
    sets = [s for s in data["test_sets"] if s.get("confidence")]
    if not sets:
        raise SystemExit(f"{args.result}: no test set has a confidence section (run the benchmark with --confidence)")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6))
    for i, record in enumerate(sets):
        c = record["confidence"]
        color = f"C{i}"
        name = NAMES.get(record["name"], record["name"])
        shares = [0.0, *c["review_curve"]["shares"]]
        recall = [0.0, *c["review_curve"]["error_recall"]]
        left.plot([100 * s for s in shares], [100 * r for r in recall], color=color,
                  label=f"{name}: {c['errors']} of {c['fields']} fields wrong, AUROC {c['auroc']:.3f}")
        best = c["errors"] / c["fields"]
        left.plot([0, 100 * best, 100], [0, 100, 100], color=color, linestyle=":", linewidth=1)
        bins = [b for b in c["bins"] if b["fields"]]
        right.plot([b["mean_confidence"] for b in bins], [b["accuracy"] for b in bins], "o-", color=color,
                   label=f"{name}: ECE {c['ece']:.3f}")
        for b in bins:
            right.annotate(str(b["fields"]), (b["mean_confidence"], b["accuracy"]), textcoords="offset points",
                           xytext=(4, -10), fontsize=7, color=color)
    left.plot([0, 100], [0, 100], color="grey", linestyle="--", linewidth=1, label="random order")
    left.set_xlim(0, 40)
    left.set_ylim(0, 101)
    left.set_xlabel("fields checked, least confident first (%)")
    left.set_ylabel("wrong values found (%)")
    left.set_title("Review queue (dotted: the best possible order)")
    left.legend(fontsize=8, loc="lower right")
    left.grid(alpha=0.3)
    right.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    right.set_xlabel("mean confidence of the bin")
    right.set_ylabel("share of the bin's values that are right")
    right.set_title("Calibration (numbers: fields in the bin)")
    right.legend(fontsize=8, loc="upper left")
    right.grid(alpha=0.3)
    machine = data.get("machine", {}).get("cpu", "")
    fig.suptitle(f"Field confidence of the built-in model, vlmocr extract --confidence "
                 f"({sets[0]['n']} images a set, {machine})", fontsize=11)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
