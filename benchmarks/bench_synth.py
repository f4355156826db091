"""Throughput of the synthetic manifest generator: images/s on one core and on all cores.

Measures, for each augmentation level at the given size (768x768 by default):
- one core: `iter_samples` in this process (wall clock and process CPU time; on a shared
  machine the CPU-time rate is the better estimate of what one core can do);
- all cores: one `iter_samples` shard per core in separate processes (each making --images
  images), timed from a common start to the last finish (wall clock);
- the dataset writer (`generate_dataset`, JPEG files included) with 1 and all processes,
  process start-up included.

Writes JSON (machine, versions, load average, rates) to benchmarks/results/synth_cpu.json.

    python benchmarks/bench_synth.py [--images 400] [--levels none,light,photo] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from vlmocr.data.synth import SynthConfig, generate_dataset, iter_samples
from vlmocr.data.synth.generate import render_document
from vlmocr.fileio import cpu_model

TARGET_PER_CORE = 50.0  # images/s a core at 768x768, light augmentation (issue 3)


def one_core(config: SynthConfig, images: int) -> dict:
    stream = iter_samples(config, split="bench", start=10_000)
    for _ in range(config.photos_per_doc * 3):  # warm caches: fonts, Faker, noise bank
        next(stream)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(images):
        next(stream)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"images": images, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "images_per_s_wall": round(images / wall, 1), "images_per_s_cpu": round(images / cpu, 1)}


def render_only(config: SynthConfig, docs: int) -> dict:
    for i in range(3):
        render_document(config, "bench", 20_000 + i)
    cpu = time.process_time()
    for i in range(docs):
        render_document(config, "bench", i)
    cpu = time.process_time() - cpu
    return {"documents": docs, "cpu_s": round(cpu, 3), "documents_per_s_cpu": round(docs / cpu, 1)}


def _shard(args: tuple) -> float:
    config_data, index, workers, images, barrier = args
    config = SynthConfig.from_dict(config_data)
    stream = iter_samples(config, split="bench", start=index, step=workers)
    for _ in range(3):
        next(stream)
    barrier.wait()
    for _ in range(images):
        next(stream)
    return time.perf_counter()


def all_cores(config: SynthConfig, per: int, workers: int) -> dict:
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(workers + 1)
        with ctx.Pool(workers) as pool:
            pending = pool.map_async(_shard, [(config.to_dict(), i, workers, per, barrier) for i in range(workers)])
            barrier.wait()
            start = time.perf_counter()
            ends = pending.get()
    wall = max(ends) - start
    return {"workers": workers, "images": per * workers, "wall_s": round(wall, 3),
            "images_per_s": round(per * workers / wall, 1)}


def dataset(config: SynthConfig, images: int, workers: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-synth-"))
    try:
        start = time.perf_counter()
        report = generate_dataset(tmp / "ds", images, 0, 0, config, workers=workers)
        wall = time.perf_counter() - start
        size = sum(p.stat().st_size for p in (tmp / "ds").rglob("*.jpg"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"workers": workers, "images": report.total_images, "wall_s": round(wall, 3),
            "images_per_s": round(report.total_images / wall, 1), "mean_jpeg_kib": round(size / images / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=400, help="images per process and measurement")
    parser.add_argument("--levels", default="none,light,photo")
    parser.add_argument("--size", default="768x768")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "synth_cpu.json")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    from importlib import metadata

    result: dict = {
        "benchmark": "bench_synth",
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "libraries": {n: metadata.version(n) for n in ("pillow", "numpy", "faker")}},
        "size": [width, height],
        "target_images_per_s_per_core_light": TARGET_PER_CORE,
        "load_average_before": [round(v, 2) for v in os.getloadavg()],
        "levels": {},
    }
    base = SynthConfig(size=(width, height), seed=0)
    result["render_only_one_core"] = render_only(base, max(50, args.images // 2))
    for level in args.levels.split(","):
        config = SynthConfig(size=(width, height), augment=level)
        entry = {"one_core": one_core(config, args.images)}
        if args.workers > 1:
            entry["all_cores"] = all_cores(config, args.images, args.workers)
        result["levels"][level] = entry
        print(level, json.dumps(entry), flush=True)
    light = SynthConfig(size=(width, height), augment="light")
    result["dataset_light"] = [dataset(light, args.images, 1)]
    if args.workers > 1:
        result["dataset_light"].append(dataset(light, args.images, args.workers))
    result["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    if "light" in result["levels"]:
        per_core = result["levels"]["light"]["one_core"]["images_per_s_cpu"]
        result["light_meets_target_per_core"] = per_core >= TARGET_PER_CORE
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
