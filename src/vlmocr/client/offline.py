"""`--offline MODEL_DIR`: batch extraction in-process through `vllm.LLM`, no HTTP.

Same contracts, answer checks and output file as the server path: images are resized
with the model's resolution contract and passed as PIL images, the whole batch goes to
`LLM.chat` with structured outputs (`StructuredOutputsParams(json=schema)`) and the
engine settings `vlmocr serve` would use (shared through `vlmocr.serve.engine`, so an
offline run decodes exactly like a served one). Content failures are re-asked along the
temperature ladder; rows are written after each batch, so an interrupted run resumes.
`latency_s` of a row is its batch's wall time (every answer of a batch arrives together).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vlmocr._deps import require
from vlmocr.client.answers import SchemaChecker, parse_answer
from vlmocr.client.confidence import answer_confidence
from vlmocr.client.extract import ExtractConfig, ExtractResult, Job, Progress, plan, resolve_job
from vlmocr.client.inputs import load_for_model
from vlmocr.client.output import PredictionWriter
from vlmocr.errors import ConfigError, ImageError
from vlmocr.records import Prediction

log = logging.getLogger(__name__)


def _conversation(job: Job, image: Any) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": job.prompt.system},
        {
            "role": "user",
            "content": [
                {"type": "image_pil", "image_pil": image},
                {"type": "text", "text": job.prompt.question},
            ],
        },
    ]


def load_engine(model_dir: Path, job: Job, config: ExtractConfig) -> Any:
    """A `vllm.LLM` started with the same settings `vlmocr serve` computes for this model."""
    from vlmocr.serve.engine import ServeConfig, resolve_settings

    vllm = require("vllm", extra="cpu", purpose="Offline extraction (--offline)")
    settings = resolve_settings(str(model_dir), ServeConfig(
        max_output_tokens=job.max_tokens, quantization=config.quantization, kv_cache_dtype=config.kv_cache_dtype))
    kwargs: dict[str, Any] = {
        "model": settings.model,
        "max_model_len": settings.max_model_len,
        "limit_mm_per_prompt": settings.limit_mm_per_prompt,
        "mm_processor_kwargs": settings.mm_processor_kwargs,
        "structured_outputs_config": settings.structured_outputs,
        "generation_config": settings.generation_config,
        "allowed_media_domains": settings.allowed_media_domains,
        "seed": settings.seed,
        "enforce_eager": settings.enforce_eager,
    }
    if settings.dtype:
        kwargs["dtype"] = settings.dtype
    if settings.kv_cache_bytes is not None:
        kwargs["kv_cache_memory_bytes"] = settings.kv_cache_bytes
    if settings.quantization:
        kwargs["quantization"] = settings.quantization
    if settings.kv_cache_dtype:
        kwargs["kv_cache_dtype"] = settings.kv_cache_dtype
    log.info("starting vLLM in-process for %s (max-model-len %d%s%s)", model_dir, settings.max_model_len,
             f", quantization {settings.quantization}" if settings.quantization else "",
             f", KV cache {settings.kv_cache_dtype}" if settings.kv_cache_dtype else "")
    return vllm.LLM(**kwargs)


@contextlib.contextmanager
def private_ipc_dir() -> Iterator[None]:
    """Keep vLLM's IPC sockets in a private temp folder (removed after), not loose in /tmp."""
    if "VLLM_RPC_BASE_PATH" in os.environ:
        yield
        return
    from vlmocr.serve.process import short_temp_dir

    path = str(short_temp_dir("vlmocr-ipc-"))
    os.environ["VLLM_RPC_BASE_PATH"] = path
    try:
        yield
    finally:
        os.environ.pop("VLLM_RPC_BASE_PATH", None)
        shutil.rmtree(path, ignore_errors=True)


def _engine_children() -> list[Any]:
    """This process's children that vLLM started (its engine core names itself VLLM::...)."""
    import psutil

    found = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            label = child.name() + " " + " ".join(child.cmdline())
            if "vllm" in label.lower() or "enginecore" in label.lower():
                found.append(child)
    return found


def shutdown_engine(llm: Any, *, timeout_s: float = 15.0) -> None:
    """Stop the engine-core process of an LLM now, and wait until it is gone.

    vLLM's shutdown returns while its engine-core process may still be exiting; waiting here
    means that when extraction returns, no process of it is left (killed after `timeout_s`).
    """
    import psutil

    children = _engine_children()
    with contextlib.suppress(Exception):
        llm.llm_engine.engine_core.shutdown()
    del llm
    gc.collect()
    _, alive = psutil.wait_procs(children, timeout=timeout_s)
    for child in alive:
        log.warning("vLLM engine process %d still alive %.0f s after shutdown: killing it", child.pid, timeout_s)
        with contextlib.suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(alive, timeout=5)


def _sampling(
    job: Job, schema: dict[str, Any] | None, temperature: float, extra: dict[str, Any] | None = None,
    *, confidence: bool = False,
) -> Any:
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    structured = StructuredOutputsParams(json=schema) if schema is not None else None
    kwargs: dict[str, Any] = {"max_tokens": job.max_tokens, "temperature": temperature, "structured_outputs": structured}
    if confidence:
        kwargs["logprobs"] = 0  # the generated token's own log-probability only
    kwargs.update(extra or {})  # ExtractConfig.extra_body: SamplingParams fields (ignore_eos, min_tokens ...)
    return SamplingParams(**kwargs)


def _token_logprobs(completion: Any) -> tuple[list[str], list[float]] | None:
    """Token texts and log-probabilities of a vLLM CompletionOutput asked with logprobs=0."""
    steps = completion.logprobs
    if not steps or len(steps) != len(completion.token_ids):
        return None
    tokens, values = [], []
    for token_id, step in zip(completion.token_ids, steps, strict=True):
        chosen = step.get(token_id)
        if chosen is None:
            return None
        tokens.append(chosen.decoded_token or "")
        values.append(float(chosen.logprob))
    return tokens, values


def _load(path: Path, job: Job, config: ExtractConfig) -> Any:
    return load_for_model(path, job.resolution, max_image_pixels=config.max_image_pixels, pdf_dpi=config.pdf_dpi)


def run_batch(
    llm: Any, batch: list[Path], job: Job, config: ExtractConfig, checker: SchemaChecker | None,
    schema: dict[str, Any] | None = None,
) -> list[Prediction]:
    """Extract one batch: image errors first, then the ladder of temperatures for the rest."""
    results: dict[int, Prediction] = {}
    images: dict[int, Any] = {}
    for index, path in enumerate(batch):
        try:
            images[index] = _load(path, job, config)
        except ImageError as exc:
            results[index] = Prediction(file=str(path), error=f"image_error: {exc}")
    pending = list(images)
    attempts = dict.fromkeys(pending, 0)
    start = time.monotonic()
    for rung, temperature in enumerate((config.temperature, *config.temperature_ladder)):
        if not pending:
            break
        outputs = llm.chat(
            [_conversation(job, images[i]) for i in pending],
            _sampling(job, schema, temperature, config.extra_body, confidence=config.confidence), use_tqdm=False,
        )
        elapsed = round(time.monotonic() - start, 4)
        still: list[int] = []
        for index, output in zip(pending, outputs, strict=True):
            attempts[index] += 1
            completion = output.outputs[0]
            answer = parse_answer(completion.text, completion.finish_reason, schema=checker,
                                  allow_fenced=config.allow_fenced)
            extra = {**answer.extra, **({"temperature": temperature} if rung else {})}
            if config.confidence and answer.ok:
                extra.update(answer_confidence(completion.text, _token_logprobs(completion),
                                               fenced=bool(answer.extra.get("fenced"))))
            results[index] = Prediction(
                file=str(batch[index]), json=answer.json, error=answer.error, raw=answer.raw,
                attempts=attempts[index], prompt_tokens=len(output.prompt_token_ids or []),
                completion_tokens=len(completion.token_ids or []), latency_s=elapsed,
                finish_reason=completion.finish_reason, extra=extra,
            )
            if not answer.ok:
                still.append(index)
        pending = still
    return [results[i] for i in range(len(batch))]


def extract_offline(files: list[Path], config: ExtractConfig, *, progress: Progress | None = None) -> ExtractResult:
    """Extract `files` with `vllm.LLM` on `config.offline` (a model folder) into `config.out`."""
    model_dir = Path(str(config.offline))
    if not model_dir.is_dir() or not (model_dir / "config.json").is_file():
        raise ConfigError(f"--offline {model_dir}: not a model folder (no config.json)")
    result = ExtractResult(out=config.out, total=len(files), model=str(model_dir))
    todo, result.skipped, needs_newline = plan(files, config)
    job = resolve_job(config, model_dir)
    result.contract_source = job.contract_source
    if progress is not None:
        progress.start(len(todo), result.skipped)
    if not todo:
        return result
    checker = SchemaChecker(job.schema) if job.schema is not None else None
    schema = job.decoding_schema()
    with private_ipc_dir():
        llm = load_engine(model_dir, job, config)
        try:
            start = time.monotonic()
            with PredictionWriter(config.out, ends_without_newline=needs_newline) as writer:
                for first in range(0, len(todo), config.batch_size):
                    batch = todo[first : first + config.batch_size]
                    for prediction in run_batch(llm, batch, job, config, checker, schema):
                        writer.write(prediction)
                        result.add(prediction)
                        if progress is not None:
                            progress.advance(prediction)
            result.elapsed_s = time.monotonic() - start
        finally:
            shutdown_engine(llm)
    return result
