"""The client's own CPU cost per image: how many images/s one `vlmocr extract` process can feed.

A GPU server answering 45 images/s needs a client that spends under 1/45 s of CPU an image
in the parts that share one event loop. This measures the client alone, against a stand-in
server in another process that answers every chat request at once with the same realistic,
schema-valid manifest (8 product rows, reported as 450 completion tokens), so the server's
speed is not in the figure:

  extract_schema    `vlmocr.client.extract.extract` as `vlmocr extract` runs it: client-side
                    resize + JPEG + base64, response_format with the schema, answer parsed and
                    validated, JSONL row written per image; workers spread over httpx pools
                    of `ExtractConfig.pool_connections` (8) connections;
  extract_schema_one_pool  the same with one pool holding every connection (how httpx is
                    usually set up, and how `extract` was before);
  extract_noschema  the same with `use_schema=False`;
  raw               a plain openai `AsyncOpenAI` client sending the original JPEG (the
                    bench_serve_gpu.py baseline), answer not parsed.

Per mode: wall time, images/s, the client process's CPU per image (`time.process_time`, all
of its threads: image preparation runs in a thread pool and spreads over cores) and the event
loop thread's alone (`time.thread_time`): the part one process cannot spread, so
`event_loop_ceiling_images_per_s` = 1 / that is the most one client process can send. The
stand-in server shares the machine's cores, so images/s is a lower bound; CPU per image is not
affected by it.
`--profile` adds a cProfile listing of extract_schema (top functions by own time).

    python benchmarks/bench_client_cpu.py [--n 512] [--concurrency 64,256,512] [--profile FILE]
        [--out benchmarks/results/client_cpu.json]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import multiprocessing
import random
import socket
import sys
import tempfile
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vlmocr.fileio import cpu_machine, library_versions

RESULTS = Path(__file__).parent / "results"


def answer_body() -> bytes:
    from vlmocr.data.synth.content import make_target
    from vlmocr.schema import dumps_target

    target = make_target(random.Random(7), 8, 7)
    reply = {"id": "standin", "object": "chat.completion", "model": "standin",
             "choices": [{"index": 0, "finish_reason": "stop",
                          "message": {"role": "assistant", "content": dumps_target(target)}}],
             "usage": {"prompt_tokens": 909, "completion_tokens": 450, "total_tokens": 1359}}
    return json.dumps(reply).encode()


def serve(port: int, body: bytes) -> None:  # runs in a child process
    models = json.dumps({"object": "list", "data": [{"id": "standin", "object": "model", "root": "standin"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, payload: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._reply(models if self.path.endswith("/models") else b"{}")

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self._reply(body)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 4096  # listen backlog: every connection of the client at once

    Server(("127.0.0.1", port), Handler).serve_forever()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_extract(base_url: str, images: list[Path], c: int, schema: bool, out: Path,
                pool_connections: int | None = None) -> dict[str, Any]:
    """`extract` as the CLI runs it; pool_connections=c gives one httpx pool for all workers."""
    from vlmocr.client.extract import ExtractConfig, extract

    config = ExtractConfig(server=base_url, out=out, concurrency=c, use_schema=schema, mode="overwrite",
                           max_retries=0, timeout_s=120)
    if pool_connections is not None:
        config = replace(config, pool_connections=pool_connections)
    wall0, cpu0, loop0 = time.perf_counter(), time.process_time(), time.thread_time()
    result = extract(images, config)
    wall, cpu, loop = time.perf_counter() - wall0, time.process_time() - cpu0, time.thread_time() - loop0
    return {"wall_s": wall, "cpu_s": cpu, "loop_cpu_s": loop, "ok": result.ok, "errors": dict(result.errors),
            "pool_connections": config.pool_connections}


def run_raw(base_url: str, images: list[Path], c: int) -> dict[str, Any]:
    from bench_serve_gpu import _raw

    wall0, cpu0, loop0 = time.perf_counter(), time.process_time(), time.thread_time()
    latencies, _tokens, _wall, failures = asyncio.run(_raw(base_url, "standin", images, c, 450, None))
    wall, cpu, loop = time.perf_counter() - wall0, time.process_time() - cpu0, time.thread_time() - loop0
    return {"wall_s": wall, "cpu_s": cpu, "loop_cpu_s": loop, "ok": len(latencies),
            "errors": {"failed": failures} if failures else {}, "pool_connections": c}


def summarise(name: str, n: int, c: int, run: dict[str, Any]) -> dict[str, Any]:
    per_image = run["cpu_s"] / n
    loop_per_image = run["loop_cpu_s"] / n
    return {"name": name, "images": n, "concurrency": c, "pool_connections": run["pool_connections"],
            "wall_s": round(run["wall_s"], 2), "images_per_s": round(n / run["wall_s"], 1),
            "client_cpu_s": round(run["cpu_s"], 2), "client_cpu_ms_per_image": round(per_image * 1000, 2),
            "client_cpu_cores": round(run["cpu_s"] / run["wall_s"], 2),
            "ceiling_images_per_s_per_core": round(1 / per_image, 1) if per_image else None,
            "event_loop_cpu_ms_per_image": round(loop_per_image * 1000, 2),
            "event_loop_ceiling_images_per_s": round(1 / loop_per_image, 1) if loop_per_image else None,
            "ok": run["ok"], "errors": run["errors"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--concurrency", default="64,256,512", help="comma-separated concurrencies")
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile listing of extract_schema here")
    parser.add_argument("--out", type=Path, default=RESULTS / "client_cpu.json")
    args = parser.parse_args()

    from bench_serve_gpu import make_images

    from vlmocr.client.extract import ExtractConfig

    pool = ExtractConfig().pool_connections

    work = Path(tempfile.mkdtemp(prefix="vlmocr-client-"))
    images = make_images(work / "images", args.n)
    port = free_port()
    ctx = multiprocessing.get_context("spawn")
    server = ctx.Process(target=serve, args=(port, answer_body()), daemon=True)
    server.start()
    base_url = f"http://127.0.0.1:{port}/v1"
    import httpx

    for _ in range(100):
        try:
            httpx.get(f"{base_url}/models", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        run_extract(base_url, images[:8], 8, True, work / "warm.jsonl")  # imports, first connections
        records = []
        for c in [int(x) for x in args.concurrency.split(",")]:
            records += [
                summarise("extract_schema_one_pool", args.n, c,
                          run_extract(base_url, images, c, True, work / "one.jsonl", c)),
                summarise("extract_schema", args.n, c, run_extract(base_url, images, c, True, work / "schema.jsonl")),
                summarise("extract_noschema", args.n, c,
                          run_extract(base_url, images, c, False, work / "noschema.jsonl")),
                summarise("raw", args.n, c, run_raw(base_url, images, c)),
            ]
            print("\n".join(json.dumps(r) for r in records[-4:]), flush=True)
        top = max(int(x) for x in args.concurrency.split(","))
        if args.profile:
            import cProfile
            import io
            import pstats

            profiler = cProfile.Profile()
            profiler.enable()
            run_extract(base_url, images, top, True, work / "profiled.jsonl")
            profiler.disable()
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(30)
            args.profile.parent.mkdir(parents=True, exist_ok=True)
            args.profile.write_text(text.getvalue())
    finally:
        server.terminate()
        server.join(5)
    result = {
        "benchmark": "bench_client_cpu",
        "date": datetime.date.today().isoformat(),
        "machine": cpu_machine(),
        "libraries": library_versions(),
        "config": {"n": args.n, "concurrency": args.concurrency, "pool_connections": pool,
                   "images": "vlmocr.data.synth 768x768 JPEG q92, augment light (bench_serve_gpu.make_images)",
                   "server": "stand-in in another process: the same 8-row schema-valid manifest for every request"},
        "runs": records,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
