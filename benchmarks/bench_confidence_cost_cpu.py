"""What `--confidence` costs: offline extraction with and without it, side by side, same images.

One set of synthetic manifests of the built-in model's trained layouts; `vlmocr extract --offline`
runs on it alternately without and with `--confidence` (ROUNDS times each, each run its own
process and engine), and each run's extraction time is read from the library's `ExtractResult`
(`elapsed_s`, engine start-up excluded). Also checks that asking for log-probabilities leaves
the answers unchanged (greedy decoding: the same JSON for every image).

    python benchmarks/bench_confidence_cost_cpu.py [--n 32] [--rounds 2]
        [--out benchmarks/results/confidence_cost_cpu.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from vlmocr.fileio import atomic_write_json, cpu_machine, library_versions

RESULTS = Path(__file__).parent / "results"
TRAINED = "form,two_column,receipt,dense"

_RUN = """
import json, sys
from pathlib import Path
from vlmocr.client.extract import ExtractConfig, extract
images, out, confidence, batch = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
r = extract([Path(images)], ExtractConfig(offline="builtin", out=Path(out), mode="overwrite",
                                           confidence=confidence, batch_size=batch))
print("RESULT " + json.dumps({"ok": r.ok, "failed": r.failed, "elapsed_s": r.elapsed_s,
                               "completion_tokens": r.completion_tokens}))
"""


def run_once(images: Path, out: Path, confidence: bool, batch: int) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", _RUN, str(images), str(out), "1" if confidence else "0", str(batch)],
                          capture_output=True, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"extract failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    record = json.loads(lines[-1][len("RESULT "):])
    record["images_per_s"] = round((record["ok"] + record["failed"]) / record["elapsed_s"], 4)
    record["elapsed_s"] = round(record["elapsed_s"], 2)
    return record


def answers(path: Path) -> dict[str, Any]:
    return {Path(row["file"]).name: row["json"] for row in map(json.loads, path.read_text().splitlines())}


def measure(work: Path, args: argparse.Namespace) -> tuple[list[dict[str, Any]], bool]:
    """The alternating runs in `work`, and whether every run gave the same answers."""
    subprocess.run([sys.executable, "-m", "vlmocr.cli.app", "data", "synth", "--out", str(work / "data"),
                    "--test", str(args.n), "--seed", str(args.seed), "--layouts", TRAINED, "--augment", "light"],
                   check=True, capture_output=True)
    images = work / "data" / "test"
    records = []
    for round_ in range(args.rounds):
        for confidence in (False, True):
            out = work / f"pred-{round_}-{int(confidence)}.jsonl"
            record = {"round": round_, "confidence": confidence, **run_once(images, out, confidence, args.batch_size)}
            print(json.dumps(record), flush=True)
            records.append((record, out))
    reference = answers(records[0][1])
    return [r for r, _ in records], all(answers(out) == reference for _, out in records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=778)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=RESULTS / "confidence_cost_cpu.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vlmocr-confcost-") as tmp:
        records, same = measure(Path(tmp), args)
    plain = [r for r in records if not r["confidence"]]
    asked = [r for r in records if r["confidence"]]
    plain_s = sum(r["elapsed_s"] for r in plain) / len(plain)
    asked_s = sum(r["elapsed_s"] for r in asked) / len(asked)
    result = {
        "benchmark": "bench_confidence_cost_cpu",
        "date": datetime.date.today().isoformat(),
        "machine": cpu_machine(),
        "libraries": library_versions(),
        "config": {"n": args.n, "rounds": args.rounds, "seed": args.seed, "layouts": TRAINED.split(","),
                   "batch_size": args.batch_size, "model": "builtin",
                   "method": "vlmocr extract --offline, alternately without and with --confidence, one process each; "
                             "elapsed_s excludes the engine's start-up"},
        "runs": records,
        "mean_elapsed_s": {"without": round(plain_s, 2), "with_confidence": round(asked_s, 2)},
        "time_ratio_with_over_without": round(asked_s / plain_s, 3),
        "answers_identical": same,
    }
    atomic_write_json(args.out, result)
    print(f"with/without: {result['time_ratio_with_over_without']}×, answers identical: {same}; wrote {args.out}")


if __name__ == "__main__":
    main()
