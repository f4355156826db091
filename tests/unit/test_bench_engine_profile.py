"""The serving benchmark's engine profile: py-spy's collapsed stacks → stage shares and top functions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from .conftest import benchmark_module

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_serve_gpu", ROOT / "benchmarks" / "bench_serve_gpu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_serve_gpu"] = module
    spec.loader.exec_module(module)
    return module


# The shape of `py-spy record --format raw --function` output for vLLM's engine core (frames shortened).
OUTER = ('process 5271:"VLLM::EngineCore";<module> (<string>:1);spawn_main (multiprocessing/spawn.py:98);'
         "BaseProcess.run (multiprocessing/process.py:103);"
         "EngineCoreProc.run_busy_loop (vllm/v1/engine/core.py:1358);"
         "EngineCore.step_with_batch_queue (vllm/v1/engine/core.py:617)")
STEP = OUTER + ";GPUModelRunner.execute_model (vllm/v1/worker/gpu/model_runner.py:1150)"
RAW = "\n".join([
    STEP + ";EncoderRunner.execute_mm_encoder (vllm/v1/worker/gpu/mm/encoder_runner.py:55)"
           ";Qwen2_5_VisionTransformer.forward (vllm/model_executor/models/qwen2_5_vl.py:1065)"
           ";default_unquantized_gemm (/usr/lib/python3/dist-packages/vllm/model_executor/layers/utils.py:92) 30",
    STEP + ";EncoderRunner.execute_mm_encoder (vllm/v1/worker/gpu/mm/encoder_runner.py:55)"
           ";group_and_batch_mm_kwargs (vllm/multimodal/utils.py:10)"
           ";MultiModalFlatField._reduce_data (vllm/multimodal/inputs.py:535) 10",
    STEP + ";Qwen2Model.forward (vllm/model_executor/models/qwen2.py:397) 20",
    OUTER + ";Scheduler.schedule (vllm/v1/core/sched/scheduler.py:425) 40",
    "not a stack line",
    "",
])


def test_stages_and_top_functions(bench):
    profile = bench.summarise_stacks(RAW, expected_samples=200)
    assert profile["samples"] == 100
    assert profile["busy_share"] == 0.5
    stages = profile["stages"]
    assert stages["model_step"] == 0.6
    assert stages["vision_encoder"] == 0.4  # the tower and the batching both run inside it
    assert stages["vision_tower_forward"] == 0.3
    assert stages["mm_input_batching"] == 0.1
    assert stages["language_model_forward"] == 0.2
    assert stages["scheduler"] == 0.4
    assert stages["sampling"] == 0.0
    assert profile["self"][0] == ["Scheduler.schedule (vllm/v1/core/sched/scheduler.py:425)", 0.4]
    # site/dist-packages prefixes are cut so the same function reads the same on every machine
    assert ["default_unquantized_gemm (vllm/model_executor/layers/utils.py:92)", 0.3] in profile["self"]
    inclusive = dict(profile["inclusive"])
    assert inclusive["GPUModelRunner.execute_model (vllm/v1/worker/gpu/model_runner.py:1150)"] == 0.6
    # frames on every stack (process start-up, the busy loop) say nothing and are left out
    assert not any(name.startswith(("process ", "spawn_main", "BaseProcess.", "EngineCoreProc.run_busy_loop"))
                   for name in inclusive)


def test_empty_profile(bench):
    assert bench.summarise_stacks("", expected_samples=100) == {"samples": 0}
    assert bench.summarise_stacks("garbage without counts\n", expected_samples=100) == {"samples": 0}


ENGINE = """
import time
open("/proc/self/comm", "w").write("VLLM::EngineCore")  # what the engine-core process is called


class Scheduler:
    def schedule(self):
        end = time.perf_counter() + 0.01
        while time.perf_counter() < end:
            pass


while True:
    Scheduler().schedule()
"""


def test_observer_samples_the_engine_process_with_py_spy(bench, tmp_path):
    """A real py-spy against a process named like vLLM's engine core, in its own process group."""
    import os
    import shutil
    import subprocess
    import time

    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).is_file() or not Path("/proc/self/comm").exists():
        pytest.skip("py-spy (the dev extra) and /proc are needed")
    child = subprocess.Popen([sys.executable, "-c", ENGINE], start_new_session=True)
    try:
        time.sleep(1.0)
        probe = subprocess.run([exe, "dump", "--pid", str(child.pid)], capture_output=True, text=True, timeout=30)
        if probe.returncode != 0:
            pytest.skip(f"py-spy cannot attach here: {probe.stderr.strip()[:200]}")
        bench.Observer.server_pgid = os.getpgid(child.pid)
        bench.Observer.pyspy_s, bench.Observer.pyspy_delay_s = 2.0, 0.2
        bench.Observer.pyspy_dir = tmp_path
        with bench.Observer(None, interval_s=0.5) as obs:
            time.sleep(3.0)
        summary = obs.summary()
    finally:
        bench.Observer.pyspy_s, bench.Observer.server_pgid = 0.0, None
        child.kill()
        child.wait()
    assert "engine_profile_error" not in summary, summary
    profile = summary["engine_profile"]
    assert profile["samples"] > 50
    assert profile["busy_share"] > 0.7  # the child never idles
    assert profile["stages"]["scheduler"] > 0.8
    assert profile["self"][0][0].startswith("Scheduler.schedule")


def _samples(points: list[tuple[float, float, float]]) -> list[dict[str, float]]:
    """(seconds into the point, running requests, completed requests) → /metrics samples."""
    return [{"_t": t, "vllm:num_requests_running": r, "vllm:request_success_total": done,
             "vllm:generation_tokens_total": 450.0 * done} for t, r, done in points]


def test_full_rate_leaves_out_the_ramp_and_the_drain(bench) -> None:
    # ramp (few running, nothing done), 10 s full at 30 completions/s, then a drain at 5/s
    ramp = [(0.0, 40, 0), (2.0, 200, 0)]
    full = [(4.0 + 2 * i, 512 - (i % 2) * 20, 30 * 2 * i) for i in range(6)]
    drain = [(16.0, 300, 330), (18.0, 100, 340), (20.0, 10, 350)]
    rec = bench.full_rate(_samples(ramp + full + drain))
    assert rec["full_images_per_s"] == 30.0 and rec["full_output_tokens_per_s"] == 30.0 * 450
    assert rec["full_window_s"] == 10.0 and rec["full_from_s"] == 4.0
    assert 490 <= rec["full_running_mean"] <= 512
    whole = 350 / 20.0  # what images/s over the point says
    assert whole < rec["full_images_per_s"]


def test_full_rate_needs_a_long_enough_full_stretch(bench) -> None:
    short = [(0.0, 10, 0), (2.0, 512, 0), (4.0, 100, 50), (6.0, 10, 60)]
    assert bench.full_rate(_samples(short)) == {}
    assert bench.full_rate([{}, {}, {}]) == {}  # a server that never answered /metrics
    # the longest stretch wins when the server fills twice
    twice = [(0.0, 512, 0), (4.0, 512, 40), (6.0, 100, 50), (8.0, 512, 60), (10.0, 512, 80), (16.0, 512, 200)]
    rec = bench.full_rate(_samples(twice))
    assert rec["full_from_s"] == 8.0 and rec["full_images_per_s"] == 140 / 8.0


def test_a_point_records_no_rate_while_full_shorter_than_its_requests_live(bench) -> None:
    # Right after the ramp every request is decoding and few finish: 6 s full, 2 completions a second.
    early = [(0.0, 40, 0), (2.0, 512, 0), (4.0, 512, 4), (6.0, 512, 8), (8.0, 512, 12), (10.0, 100, 400)]
    assert bench.full_rate(_samples(early))["full_images_per_s"] == 2.0  # the 4 s default lets it through

    def summary(e2e_mean_s: float) -> dict:
        obs = bench.Observer(None)
        obs.samples, obs.cpu, obs.wall, obs.procs0, obs.procs1 = _samples(early), 1.0, 10.0, {}, {}
        obs.spy_error, obs._spy_file = None, None
        e2e = bench.COUNTERS["e2e"]
        obs.before = {f"{e2e}_sum": 0.0, f"{e2e}_count": 0.0}
        obs.after = {f"{e2e}_sum": 400 * e2e_mean_s, f"{e2e}_count": 400.0}
        return obs.summary()

    lived_19 = summary(19.0)
    assert lived_19["server_e2e_mean_s"] == 19.0 and "full_images_per_s" not in lived_19
    assert summary(5.0)["full_images_per_s"] == 2.0  # requests that live 5 s: the 6 s stretch is steady


def test_tables_leave_out_a_while_full_rate_shorter_than_a_request(bench) -> None:
    tables = benchmark_module("tables")
    short = {"full_images_per_s": 13.1, "full_window_s": 6.2, "server_e2e_mean_s": 18.9}
    long = {"full_images_per_s": 22.6, "full_window_s": 22.9, "server_e2e_mean_s": 20.1}
    assert tables._while_full(short) is None and tables._while_full(long) == 22.6
    assert tables._while_full({"full_images_per_s": 9.0, "full_window_s": 5.0}) == 9.0  # no lifetime recorded
    assert tables._while_full({}) is None
    data = {"runs": [{"name": "extract_noschema_c512", "concurrency": 512, "images_per_s": 23.7, **short}]}
    assert "| 23.7 | - |" in bench.markdown(data)


def test_offline_point_takes_the_variants_fp8_flags(bench) -> None:
    # The offline point of an FP8 variant runs `vlmocr extract --offline` with the same engine flags.
    assert bench.offline_engine_flags(("--quantization", "fp8", "--kv-cache-dtype", "fp8", "--max-num-seqs",
                                       "512")) == ["--quantization", "fp8", "--kv-cache-dtype", "fp8"]
    assert bench.offline_engine_flags(("--kv-cache-dtype=fp8", "--compilation-config", "{}")) == [
        "--kv-cache-dtype", "fp8"]
    assert bench.offline_engine_flags(()) == []
    with pytest.raises(SystemExit, match="needs a value"):
        bench.offline_engine_flags(("--quantization",))
    args = bench.build_parser().parse_args(["offline", "--model", "m", "--images", "i", "--max-tokens", "9",
                                            "--out", "o", "--quantization", "fp8", "--kv-cache-dtype", "fp8"])
    assert (args.quantization, args.kv_cache_dtype) == ("fp8", "fp8")


def test_metrics_of_replicas_are_summed_and_kv_usage_averaged(bench, monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    pages = {
        "http://a:8000": 'vllm:num_requests_running{engine="0"} 200\nvllm:kv_cache_usage_perc{engine="0"} 0.5\n'
                         'vllm:request_queue_time_seconds_sum{engine="0"} 10\n'
                         'vllm:request_queue_time_seconds_bucket{le="1"} 3\n',
        "http://b:8001": 'vllm:num_requests_running{engine="0"} 56\nvllm:kv_cache_usage_perc{engine="0"} 0.25\n'
                         'vllm:request_queue_time_seconds_sum{engine="0"} 4\n',
    }

    class Reply:
        def __init__(self, text: str) -> None:
            self.text = text

    def get(url: str, timeout: float) -> Reply:
        root = url.removesuffix("/metrics")
        if root not in pages:
            raise httpx.ConnectError("down")
        return Reply(pages[root])

    monkeypatch.setattr(httpx, "get", get)
    one = bench.scrape("http://a:8000")
    assert one["vllm:num_requests_running"] == 200 and "vllm:request_queue_time_seconds_bucket" not in one
    both = bench.scrape("http://a:8000,http://b:8001")
    assert both["vllm:num_requests_running"] == 256
    assert both["vllm:request_queue_time_seconds_sum"] == 14
    assert both["vllm:kv_cache_usage_perc"] == pytest.approx(0.375)
    assert bench.scrape("http://a:8000,http://gone:9") == {}  # never half the servers' counts
