"""Memory of the trainer's data-loader workers over many samples: does a worker's RSS grow?

Builds the data pipeline `vlmocr train` builds (the config's synthetic stream, the model's
processor, `SampleEncoder`, `BatchPlan`, `make_loader`), iterates it with W workers for N
samples a worker and records, inside each worker when it collates a batch (its 48 encoded
samples still held, then with the padded batch too): VmRSS, VmHWM, RssAnon and RssShmem from
/proc/self/status, glibc's heap (mallinfo2: arena, in use, free, mmapped) and how many full
(generation 2) collections the cyclic GC has run. The consumer takes each batch at once, so
the loader runs flat out; its samples/s is the pipeline's throughput on this machine.

Variants, each in its own process, one after the other:
- before: the code at --before-ref (src/ exported with `git archive`, put first on PYTHONPATH);
- after: this working tree;
- after_mmap_threshold: this working tree with glibc's M_MMAP_THRESHOLD fixed at 1 MiB in
  every worker (large buffers always mmapped, so freed ones go back to the kernel at once):
  the standard remedy for heap fragmentation, measured to see whether it is needed.

The `after` run ends with a stall: the consumer stops for --stall-s seconds while the workers
fill their prefetch slots (W x prefetch_factor batches), and the host's Shmem (/proc/meminfo)
is read before and after: the shared memory that prefetched batches occupy by design.

    python benchmarks/data_worker_memory.py [--workers 2] [--samples-per-worker 2900]
        [--batch-size 48] [--before-ref REF] [--variants before,after,after_mmap_threshold]
        [--model DIR] [--out benchmarks/results/data_worker_memory_cpu.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
CONFIG = ROOT / "configs" / "full-scratch.yaml"
LAYOUTS = "[form, two_column, receipt, dense]"
#: A commit before the fix (render_page kept its last Overflow: a reference cycle); its data
#: pipeline is the fix's parent's.
BEFORE_REF = "9335703"
VARIANTS = ("before", "after", "after_mmap_threshold")
M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
MIB = 2**20


# -- measured inside a worker --------------------------------------------------------------
def _status() -> dict[str, Any]:
    """VmRSS, VmHWM, RssAnon, RssShmem of this process in MiB, and its CPU seconds (user + system)."""
    wanted = {"VmRSS", "VmHWM", "RssAnon", "RssShmem"}
    found = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in wanted:
                found[key] = int(value.split()[0]) // 1024
    times = os.times()
    found["cpu_s"] = round(times.user + times.system, 2)
    return found


def _heap() -> dict[str, int]:
    """glibc's mallinfo2, in MiB: heap arenas (in use, free) and live mmapped chunks."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
            "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    return {"arena": info.arena // MIB, "arena_in_use": info.uordblks // MIB, "arena_free": info.fordblks // MIB,
            "mmapped": info.hblkhd // MIB}


def _meminfo(key: str) -> int:
    """One /proc/meminfo value in MiB."""
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) // 1024
    raise KeyError(key)


def _child(variant: str, options: dict[str, Any]) -> dict[str, Any]:
    """Run one variant in this process; return its series and summary."""
    import ctypes
    import gc

    import vlmocr
    from vlmocr.train import collate
    from vlmocr.train.config import load_config
    from vlmocr.train.data import load_data
    from vlmocr.train.modeling import load_processor

    workers, batch = options["workers"], options["batch_size"]
    total = workers * options["samples_per_worker"]

    class Measured(collate.Collator):
        """The trainer's collator, plus this worker's memory at the start and end of the batch."""

        produced = 0

        def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
            holding = {**_status(), **_heap()}
            out = super().__call__(features)
            Measured.produced += len(features)
            out["_worker_memory"] = {
                "pid": os.getpid(), "samples": Measured.produced, "holding_samples": holding,
                "with_batch": {**_status(), **_heap()}, "gc_full_collections": gc.get_stats()[2]["collections"],
            }
            return out

    collate.Collator = Measured  # make_loader builds the collator by this name
    if variant == "after_mmap_threshold":
        plain_init = collate._worker_ignores_stop_signals

        def init(worker_id: int) -> None:
            plain_init(worker_id)
            ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, MIB)

        collate._worker_ignores_stop_signals = init

    cfg = load_config(CONFIG, [f"model={options['model']}", f"batch_size={batch}", f"data.num_workers={workers}",
                               f"data.synth.layouts={LAYOUTS}"])
    processor, resolution = load_processor(cfg)
    data = load_data(cfg.data, None, want_valid=False)
    encoder = collate.SampleEncoder(processor, resolution, cfg.max_length)
    collate.preflight(data.train, encoder)
    plan = collate.BatchPlan(data.train.size, batch, seed=cfg.seed)
    shmem_before = _meminfo("Shmem")
    loader = collate.make_loader(data.train, encoder, plan, 0, num_workers=workers,
                                 prefetch_factor=cfg.data.prefetch_factor, pin_memory=False, seed=cfg.seed)
    rows: list[dict[str, Any]] = []
    batches = iter(loader)
    started = time.perf_counter()
    seen, aborted = 0, None
    pixel_bytes = 0
    while seen < total:
        item = next(batches)
        seen += int(item["input_ids"].shape[0])
        pixel_bytes = max(pixel_bytes, item["pixel_values"].nbytes)
        main = _status()
        rows.append({"t": round(time.perf_counter() - started, 2), "main_rss": main["VmRSS"],
                     "main_shmem": main["RssShmem"], **item.pop("_worker_memory")})
        del item
        if _meminfo("MemAvailable") < options["min_available_mib"]:
            aborted = f"stopped at {seen} samples: MemAvailable fell below {options['min_available_mib']} MiB"
            break
    seconds = time.perf_counter() - started
    stall = None
    if options["stall_s"] > 0 and variant == "after":
        time.sleep(options["stall_s"])
        stall = {"seconds": options["stall_s"], "host_shmem_mib_before_loader": shmem_before,
                 "host_shmem_mib_after_stall": _meminfo("Shmem"), "main_rss_shmem_mib": _status()["RssShmem"],
                 "batches_in_flight": workers * cfg.data.prefetch_factor}
    del batches
    return {"variant": variant, "vlmocr_source": str(Path(vlmocr.__file__).parent), "samples": seen,
            "seconds": round(seconds, 1), "samples_per_s": round(seen / seconds, 2), "aborted": aborted,
            "pixel_values_bytes_per_batch": pixel_bytes, "rows": rows, "stall": stall}


# -- the orchestrating process ----------------------------------------------------------------
def _export_source(ref: str, into: Path) -> tuple[str, Path]:
    """src/ of commit `ref` under `into`; returns the full commit hash and the src folder."""
    commit = subprocess.run(["git", "rev-parse", ref], cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout.strip()
    archive = into / "src.tar"
    with archive.open("wb") as fh:
        subprocess.run(["git", "archive", commit, "src"], cwd=ROOT, check=True, stdout=fh)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return commit, into / "src"


def _run_variant(variant: str, options: dict[str, Any], src: Path | None) -> dict[str, Any]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    print(f"[{variant}] {options['workers']} workers x {options['samples_per_worker']} samples ...", flush=True)
    done = subprocess.run([sys.executable, __file__, "--child", variant, "--options", json.dumps(options)],
                          env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"[{variant}] failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssShmem", "arena", "arena_in_use", "arena_free", "mmapped", "cpu_s")
COLUMNS = ("t_s", "pid", "samples", "gc_full_collections", "main_rss", "main_rss_shmem",
           *(f"{phase}_{key}" for phase in ("holding_samples", "with_batch") for key in FIELDS))


def _flat(row: dict[str, Any]) -> list[Any]:
    phases = [row[phase][key] for phase in ("holding_samples", "with_batch") for key in FIELDS]
    return [row["t"], row["pid"], row["samples"], row["gc_full_collections"], row["main_rss"], row["main_shmem"],
            *phases]


def _summarize(result: dict[str, Any], workers: int) -> dict[str, Any]:
    """Per worker: RSS by quarter of the run, its maximum, and the full GC collections seen."""
    by_pid: dict[int, list[dict[str, Any]]] = {}
    for row in result["rows"]:
        by_pid.setdefault(row["pid"], []).append(row)
    per_worker = []
    for rows in by_pid.values():
        def at(fraction: float, rows: list[dict[str, Any]] = rows) -> dict[str, int]:
            row = rows[max(0, min(len(rows), round(fraction * len(rows))) - 1)]
            return {"samples": row["samples"], "rss_mib": row["with_batch"]["VmRSS"],
                    "arena_mib": row["with_batch"]["arena"], "arena_free_mib": row["with_batch"]["arena_free"],
                    "mmapped_mib": row["with_batch"]["mmapped"]}
        second_half = rows[len(rows) // 2:]
        first, last = second_half[0], second_half[-1]
        cpu_ms = (1000 * (last["with_batch"]["cpu_s"] - first["with_batch"]["cpu_s"])
                  / max(1, last["samples"] - first["samples"]))
        per_worker.append({
            "samples": rows[-1]["samples"],
            "rss_mib_first_batch": rows[0]["with_batch"]["VmRSS"],
            "rss_mib_by_quarter": [at(q) for q in (0.25, 0.5, 0.75, 1.0)],
            "rss_mib_max": max(r["with_batch"]["VmRSS"] for r in rows),
            "rss_mib_mean_second_half": round(sum(r["with_batch"]["VmRSS"] for r in second_half) / len(second_half)),
            "peak_rss_mib_vmhwm": rows[-1]["with_batch"]["VmHWM"],
            "mmapped_mib_max_while_holding_samples": max(r["holding_samples"]["mmapped"] for r in rows),
            "arena_mib_max": max(r["with_batch"]["arena"] for r in rows),
            "gc_full_collections": rows[-1]["gc_full_collections"],
            "cpu_ms_per_sample_second_half": round(cpu_ms, 1),
        })
    return {"per_worker": per_worker,
            "rss_mib_max_any_worker": max(w["rss_mib_max"] for w in per_worker),
            "rss_mib_mean_second_half_all_workers": round(sum(w["rss_mib_mean_second_half"] for w in per_worker)
                                                          / len(per_worker)),
            "cpu_ms_per_sample_second_half": round(sum(w["cpu_ms_per_sample_second_half"] for w in per_worker)
                                                   / len(per_worker), 1),
            "samples_per_s": result["samples_per_s"], "workers": workers}


def _dumps(report: dict[str, Any]) -> str:
    """Indented JSON with every list of plain numbers on one line (the per-batch rows)."""
    import re

    text = json.dumps(report, indent=1)
    return re.sub(r"\[\s*([-0-9.eE,\s]*?)\s*\]", lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--samples-per-worker", type=int, default=2900, help="the failed run's worker made ~2,900")
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--before-ref", default=BEFORE_REF)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--model", type=Path, help="a built model (default: build `small` in a temp folder)")
    parser.add_argument("--stall-s", type=float, default=60.0)
    parser.add_argument("--min-available-mib", type=int, default=3072, help="stop a variant below this")
    parser.add_argument("--out", type=Path, default=RESULTS / "data_worker_memory_cpu.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--options", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, json.loads(args.options))))
        return

    from vlmocr.fileio import cpu_machine, library_versions

    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    with tempfile.TemporaryDirectory(prefix="worker-memory-") as tmp:
        model = args.model
        if model is None:
            from vlmocr.models.build import build_model

            model = Path(tmp) / "small"
            build_model(model, "small")
        options = {"workers": args.workers, "samples_per_worker": args.samples_per_worker,
                   "batch_size": args.batch_size, "model": str(model), "stall_s": args.stall_s,
                   "min_available_mib": args.min_available_mib}
        before_commit, before_src = None, None
        if "before" in variants:
            before_commit, before_src = _export_source(args.before_ref, Path(tmp))
        load_before = [round(x, 2) for x in os.getloadavg()]
        results = {v: _run_variant(v, options, before_src if v == "before" else None) for v in variants}
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.strip()
    report = {
        "benchmark": "data_worker_memory",
        "date": datetime.date.today().isoformat(),
        "machine": {"name": "2-core CPU machine",
                    **{k: v for k, v in cpu_machine().items() if k != "load_average"},
                    "memory_gib": round(_meminfo("MemTotal") / 1024, 1), "glibc": platform.libc_ver()[1],
                    "libraries": library_versions(),
                    "load_average_before": load_before, "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "setup": {
            "config": str(CONFIG.relative_to(ROOT)),
            "overrides": {"batch_size": args.batch_size, "data.num_workers": args.workers,
                          "data.synth.layouts": LAYOUTS},
            "model": "vlmocr model build --size small (random weights; only its processor and tokenizer are used)",
            "workers": args.workers, "samples_per_worker": args.samples_per_worker,
            "prefetch_factor": 2, "pin_memory": False,
            "before": {"ref": args.before_ref, "commit": before_commit},
            "after": {"commit": head, "uncommitted_changes_in_src": bool(dirty)},
            "measured": "inside each worker as it collates a batch: /proc/self/status, glibc mallinfo2, "
                        "gc.get_stats(); rows[].holding_samples = before padding (its samples held), "
                        "rows[].with_batch = after (samples and padded batch held); MiB",
        },
        "summary": {v: _summarize(r, args.workers) for v, r in results.items()},
        "stall": results.get("after", {}).get("stall"),
        "pixel_values_bytes_per_batch": next(iter(results.values()))["pixel_values_bytes_per_batch"],
        "columns": list(COLUMNS),
        "variants": {v: {**{k: r[k] for k in ("vlmocr_source", "samples", "seconds", "samples_per_s", "aborted")},
                         "rows": [_flat(row) for row in r["rows"]]} for v, r in results.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(_dumps(report) + "\n")
    for variant, summary in report["summary"].items():
        print(f"{variant:>22}: worker RSS max {summary['rss_mib_max_any_worker']} MiB, mean over the second half "
              f"{summary['rss_mib_mean_second_half_all_workers']} MiB, {summary['samples_per_s']} samples/s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
