"""The serving benchmark's engine profile: py-spy's collapsed stacks → stage shares and top functions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

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
