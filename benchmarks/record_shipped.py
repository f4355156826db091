"""Record in a built-in model's result files that the scored weights are the shipped ones.

After `bench_builtin_cpu.py` scored a model folder and its weight files were copied into
`src/vlmocr/assets/builtin`, this checks that every `*.safetensors` file of the scored folder
(the result's `model.path`) is byte-identical to the shipped one of the same name, and writes
their sha256 into each result file's `model.shipped_as`. It refuses when they differ.

    python benchmarks/record_shipped.py benchmarks/results/builtin_cpu_run41*.json
        [--shipped src/vlmocr/assets/builtin]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from vlmocr.fileio import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]


def weight_hashes(folder: Path) -> dict[str, str]:
    """sha256 of each *.safetensors file in FOLDER, by file name."""
    out = {}
    for path in sorted(folder.glob("*.safetensors")):
        with path.open("rb") as handle:
            out[path.name] = hashlib.file_digest(handle, "sha256").hexdigest()
    return out


def record(result_path: Path, shipped: Path) -> dict[str, str]:
    """Check RESULT_PATH's scored weights against SHIPPED and write `model.shipped_as`; return the hashes."""
    result = json.loads(result_path.read_text())
    scored = Path(result["model"]["path"])
    scored = scored if scored.is_absolute() else ROOT / scored
    mine, theirs = weight_hashes(scored), weight_hashes(shipped)
    if not mine:
        raise SystemExit(f"{result_path}: no *.safetensors in the scored folder {scored}")
    if mine != theirs:
        differ = sorted(set(mine) ^ set(theirs) | {k for k in set(mine) & set(theirs) if mine[k] != theirs[k]})
        raise SystemExit(f"{result_path}: the weights in {scored} are not the shipped ones in {shipped} "
                         f"(differ: {', '.join(differ)})")
    try:
        shown = str(shipped.resolve().relative_to(ROOT))
    except ValueError:
        shown = str(shipped)
    result["model"]["shipped_as"] = {
        "path": shown,
        "note": "the scored directory's weight files were copied there unchanged (sha256 below, equal in both)",
        "sha256": mine,
    }
    atomic_write_json(result_path, result, indent=1)  # indent as bench_builtin_cpu.py writes it
    return mine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--shipped", type=Path, default=ROOT / "src" / "vlmocr" / "assets" / "builtin")
    args = parser.parse_args()
    for path in args.results:
        hashes = record(path, args.shipped)
        print(f"{path}: {len(hashes)} weight file(s) equal to {args.shipped}", file=sys.stderr)


if __name__ == "__main__":
    main()
