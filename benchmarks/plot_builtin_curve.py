"""The built-in model's learning curve: training loss and in-run field F1 against samples seen.

Reads the metrics of every logged run (`docs/builtin-run*-metrics.jsonl`, the rows `vlmocr train`
writes) and draws one line per run; a run that continued from another's weights starts where that
one ended (`OFFSETS` below). Writes a PNG for docs/builtin.md.

    python benchmarks/plot_builtin_curve.py [--out docs/builtin_curve.png]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run 2 continued from run 1's weights (13,776 samples in); run 3 started from random weights;
# runs 4, 5 and 6 continued from run 3's (65,520 samples in) with a fresh optimizer; 5 and 6 at 2x
# the resolution (3,025 visual tokens a page); run 8 continued from run 3's with three warm-restart
# cycles (79,200 samples), run 9 from run 8's. Run 23a started from random weights trained 93,712
# samples on the read task (runs 20-22: crops of the page), run 23b from 23a's (19,200 samples).
# Run 28 started from run 26's weights (247,952 samples) after 48,000 read-task samples on
# page-wide strips (run 27, docs/builtin-strip1-metrics.jsonl: another task, so not drawn here).
# Run 31 continued from run 30 with a quarter of its samples read-task strips (data.mix): its loss
# mixes both tasks, its in-run F1 is extraction's; runs 32-34 each continued from the one before.
# Runs 34 and 35 continued from run 33 (577,552 samples). Run 37 started from run 33's weights after
# 44,800 read-task samples on strips of pages with random-letter names (run 36,
# docs/builtin-readnov1-metrics.jsonl: another task, so not drawn here); run 38 continued from run 37
# (680 steps, 21,760 samples). Run 40 started from run 38's weights after 44,800 more read-task samples
# of the same kind (run 39, docs/builtin-readnov2-metrics.jsonl, not drawn); run 41 continued from run 40
# (1,337 steps, 42,784 samples). Run 43 started from run 41's weights after 44,800 more read-task samples
# (run 42, docs/builtin-readnov3-metrics.jsonl, not drawn; run 43 stopped at 1,497 steps, 47,904 samples);
# run 44 continued from run 43. Run 46 started from run 44's weights after 44,800 more read-task samples
# (run 45, docs/builtin-readnov4-metrics.jsonl, not drawn; run 46 stopped at 1,796 steps, 57,472 samples);
# run 47 continued from run 46.
OFFSETS = {"run2": 13_776, "run4": 65_520, "run5": 65_520, "run6": 65_520, "run7": 65_520,
           "run8": 65_520, "run9": 65_520 + 79_200, "run23a": 93_712, "run23b": 93_712 + 19_200,
           "run24": 147_600, "run25": 147_600 + 35_520, "run26": 147_600 + 35_520 + 33_472,
           "run28": 295_952, "run29": 295_952 + 48_000, "run30": 295_952 + 48_000 + 49_600, "run31": 430_352, "run32": 430_352 + 48_000,
           "run33": 430_352 + 48_000 + 49_600, "run34": 577_552,
           "run35": 577_552, "run37": 577_552 + 44_800, "run38": 577_552 + 44_800 + 64_000,
           "run40": 708_112 + 44_800, "run41": 708_112 + 44_800 + 44_800,
           "run43": 840_496 + 44_800, "run44": 840_496 + 44_800 + 47_904,
           "run46": 989_200 + 44_800, "run47": 989_200 + 44_800 + 57_472}
LABELS = {
    "run1": "run 1: CLIP pixel stats, 1-D positions",
    "run2": "run 2: continues run 1",
    "run3": "run 3: documents' pixel stats, M-RoPE positions",
    "run4": "run 4: continues run 3",
    "run5": "run 5: run 3 at 2x resolution, lr 1e-3",
    "run6": "run 6: run 3 at 2x resolution, lr 3e-4",
    "run7": "run 7: as run 6, pages drawn at 1536 px",
    "run8": "run 8: continues run 3, 3 cycles from lr 3e-4",
    "run9": "run 9: continues run 8, lr 1.5e-4",
    "run23a": "run 23a: after 94k read-task samples on crops",
    "run23b": "run 23b: continues 23a, lr 2e-4",
    "run24": "run 24: continues 23b, lr 2e-4",
    "run25": "run 25: continues 24, lr 1.5e-4",
    "run26": "run 26: continues 25, lr 1e-4 to 0",
    "run28": "run 28: run 26 + 48k read-task strips, lr 1.5e-4",
    "run29": "run 29: continues 28, lr 1e-4",
    "run30": "run 30: continues 29, lr 7e-5",
    "run31": "run 31: continues 30, 25 % read strips mixed in, lr 7e-5",
    "run32": "run 32: continues 31, lr 5e-5",
    "run33": "run 33: continues 32, lr 3.5e-5",
    "run34": "run 34: continues 33, lr 2.5e-5 (690 of 800 steps)",
    "run35": "run 35: continues 33, 30 % random-name pages, lr 5e-5",
    "run37": "run 37: run 33 + 45k read strips, random names; 30 % random-name pages, lr 1e-4",
    "run38": "run 38: continues 37, lr 5e-5 (680 of 800 steps)",
    "run40": "run 40: run 38 + 45k read strips, random names; as run 37, lr 1e-4 (1,400 steps)",
    "run41": "run 41: continues 40, lr 5e-5 (1,337 of 1,500 steps)",
    "run43": "run 43: run 41 + 45k read strips, random names; as run 40 (1,497 steps)",
    "run44": "run 44: continues 43, lr 5e-5 (1,750 steps)",
    "run46": "run 46: run 44 + 45k read strips, random names; as run 43 (1,796 steps)",
    "run47": "run 47: continues 46, lr 5e-5 (1,800 steps)",
}


def load(path: Path) -> tuple[list[dict], list[dict]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r.get("kind") == "train"], [r for r in rows if r.get("kind") == "eval"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "builtin_curve.png")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_f1, ax_use) = plt.subplots(1, 3, figsize=(16, 5.5))
    def run_order(path: Path) -> tuple[int, str]:  # run 3 before run 23a
        number, suffix = re.search(r"builtin-run(\d+)([a-z]?)-metrics", path.name).groups()
        return int(number), suffix

    # one colour a run: tab20, then tab20b (40 runs before a colour repeats)
    colours = iter([*plt.get_cmap("tab20").colors, *plt.get_cmap("tab20b").colors])
    for path in sorted((ROOT / "docs").glob("builtin-run*-metrics.jsonl"), key=run_order):
        run = re.search(r"builtin-(run\d+[a-z]?)-metrics", path.name).group(1)
        train, evals = load(path)
        offset = OFFSETS.get(run, 0)
        per_step = train[0]["samples_seen"] / train[0]["step"] if train else 0
        line, = ax_loss.plot([offset + r["samples_seen"] for r in train], [r["loss"] for r in train],
                             label=LABELS.get(run, run), color=next(colours))
        if evals:
            ax_f1.plot([offset + e["step"] * per_step for e in evals], [e["field_f1"] for e in evals], "o-",
                       color=line.get_color(), label=LABELS.get(run, run))
        used = [e for e in evals if "image_gain_values" in e]
        if used:  # the in-run image-use probe (eval.image_use), logged from run 4 on
            x = [offset + e["step"] * per_step for e in used]
            ax_use.plot(x, [e["image_gain_values"] for e in used], "o-", color=line.get_color())
            ax_use.plot(x, [e.get("image_gain_structure") for e in used], "s--", color=line.get_color())
    ax_loss.set(xlabel="samples seen", ylabel="training loss (answer tokens)", ylim=(0.02, 2.0),
                title="loss: the format is learned by ~10k samples")
    ax_f1.set(xlabel="samples seen", ylabel="field F1, 32 held-back samples", ylim=(0, 1),
              title="in-run field F1 (target 0.95)")
    ax_f1.axhline(0.95, color="grey", linestyle=":")
    ax_f1.set_xlim(ax_loss.get_xlim())
    ax_use.set(xlabel="samples seen", ylabel="loss(other image) - loss(own image), nats/token",
               title="image use: reading shows as a value-token gain")
    ax_use.axhline(0, color="grey", linestyle=":")
    ax_use.set_xlim(ax_loss.get_xlim())
    for ax in (ax_loss, ax_f1, ax_use):
        ax.grid(alpha=0.3)
    from matplotlib.lines import Line2D

    ax_use.legend(handles=[Line2D([], [], color="k", marker="o", label="value tokens"),
                           Line2D([], [], color="k", marker="s", linestyle="--", label="structure tokens")],
                  fontsize=8, loc="upper left")
    # one legend for the runs (a colour each), below the panels
    handles, labels = ax_loss.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.22, 1, 1))
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
