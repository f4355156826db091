"""`extract(images, config)`: images → predictions.jsonl through an OpenAI-compatible server.

Works against any server that speaks the OpenAI chat API with image parts (vLLM, Ollama ≥
0.7, hosted APIs). What it does, in order:

1. Expand folders into image files and PDFs into their pages (`doc.pdf#page=N`, `vlmocr.pdf`);
   read what an earlier run left in the output file and skip inputs that already have a final
   row (see `output.py`).
2. Ask the server for its models (`/v1/models`): the model name when `--model` is not
   given, and the model folder (`root`) whose `vlmocr.json` holds the prompt, resolution
   and schema contracts when the server runs on this machine. `contract_dir` overrides
   it; without either the defaults are used (and logged).
3. Resize each image once on the client with the resolution contract (multiples of 28,
   so the server leaves it alone) and send it as base64; an image already at its model
   size goes as its original bytes (no re-encoding).
4. Ask with `response_format` = the target JSON schema (by default the one stored with
   the model; `use_schema=False` turns it off), validate what comes back, retry only
   transient failures, and write each row as soon as it is known.

Several servers of one model (`vlmocr serve --replicas N`, or several machines): `server` takes
a list (or comma-separated URLs). The workers are spread over them evenly; they must all list the
same model. A server that stops accepting connections is dropped: its image goes back on the queue
for the others, and only when none is left are its rows written as failed.

With `config.offline` set (a model folder), step 2-4 run in-process on `vllm.LLM`
instead (`offline.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from vlmocr.client.answers import SchemaChecker, decoding_schema, error_kind
from vlmocr.client.inputs import IMAGE_SUFFIXES, discover_images, prepare_image
from vlmocr.client.output import PredictionWriter, compact, file_key, read_output, write_csv
from vlmocr.client.review import DEFAULT_REVIEW_BELOW, ReviewSummary, check_below, write_review
from vlmocr.contract import CONTRACT_FILE, ModelContract, load_contract
from vlmocr.errors import ConfigError, ImageError, ServerError
from vlmocr.images import DEFAULT_MAX_IMAGE_PIXELS, Resolution
from vlmocr.pdf import SCAN_DPI
from vlmocr.prompts import PromptContract
from vlmocr.records import Prediction

__all__ = ["IMAGE_SUFFIXES", "ExtractConfig", "ExtractResult", "Job", "discover_images", "extract", "prepare_image"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractConfig:
    """Where to send images, with which contracts, and how to retry and write."""

    #: One base URL, several (a list, or URLs separated by commas): the workers are spread over them.
    server: str | tuple[str, ...] | list[str] | None = None
    model: str | None = None
    api_key: str | None = None
    offline: str | None = None
    out: Path = Path("predictions.jsonl")
    csv: Path | None = None
    contract_dir: Path | None = None
    system: str | None = None
    question: str | None = None
    schema_path: Path | None = None
    use_schema: bool = True
    concurrency: int = 8
    max_tokens: int | None = None
    temperature: float = 0.0
    temperature_ladder: tuple[float, ...] = ()
    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    retry_after_cap_s: float = 120.0
    timeout_s: float = 300.0
    connect_timeout_s: float = 10.0
    allow_fenced: bool = False
    mode: Literal["resume", "overwrite"] = "resume"
    recursive: bool = False
    image_format: Literal["JPEG", "PNG"] = "JPEG"
    jpeg_quality: int = 95
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    #: PDF pages are sized as a scan at this resolution would be (then fitted to the contract).
    pdf_dpi: float = SCAN_DPI
    batch_size: int = 64
    #: Extra sampling parameters for every request, e.g. ``{"ignore_eos": True, "min_tokens": 450}``
    #: to force the output length in benchmarks: merged into each chat request's JSON body
    #: (vLLM reads its own sampling keys there), and given to ``vllm.SamplingParams`` offline.
    extra_body: dict[str, Any] | None = None
    #: Connections per httpx pool. httpcore 1.0's pool scans (and polls) every connection it holds
    #: on each request it assigns, so one pool of C connections costs O(C) CPU a request; the
    #: workers are spread over pools of this size instead (benchmarks/bench_client_cpu.py).
    pool_connections: int = 8
    #: With --offline: vLLM's `quantization` (e.g. fp8, weights quantized when loaded) and
    #: `kv_cache_dtype` (e.g. fp8), as `vlmocr serve --quantization/--kv-cache-dtype` set them for a
    #: server, so an offline run can decode like a server started with them (e.g. `--preset qwen2.5-vl-3b-fp8`).
    #: A server's are set where it starts, so these are refused with --server.
    quantization: str | None = None
    kv_cache_dtype: str | None = None
    #: Ask for token log-probabilities and write a confidence for every field of each accepted answer
    #: (`confidence`, `min_confidence` in the row's `extra`; `vlmocr.client.confidence`).
    confidence: bool = False
    #: With confidence: after the run, a CSV of the values below `review_below` and of the answers to
    #: check whole (`vlmocr.client.review`), rebuilt from the whole output file.
    review: Path | None = None
    review_below: float = DEFAULT_REVIEW_BELOW

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError(f"--concurrency must be at least 1, got {self.concurrency}")
        if self.max_retries < 0:
            raise ConfigError(f"--retries must be >= 0, got {self.max_retries}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError(f"--max-tokens must be positive, got {self.max_tokens}")
        if self.mode not in ("resume", "overwrite"):
            raise ConfigError(f"mode must be resume or overwrite, got {self.mode!r}")
        if self.image_format not in ("JPEG", "PNG"):
            raise ConfigError(f"image format must be JPEG or PNG, got {self.image_format!r}")
        if self.review is not None and not self.confidence:
            raise ConfigError("--review lists the values below a confidence: it needs --confidence")
        check_below(self.review_below)
        if self.review is not None and Path(self.review).resolve() in {
                Path(p).resolve() for p in (self.out, self.csv) if p is not None}:
            raise ConfigError("--review must differ from --out and --csv")
        if self.review is not None and Path(self.review).is_dir():
            raise ConfigError(f"--review {self.review} is a folder: give a file name, e.g. review.csv")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be positive, got {self.batch_size}")
        if not self.pdf_dpi > 0:
            raise ConfigError(f"--pdf-dpi must be positive, got {self.pdf_dpi}")
        if self.pool_connections < 1:
            raise ConfigError(f"pool_connections must be positive, got {self.pool_connections}")
        if self.server is not None and not self.servers:
            raise ConfigError("--server: no URL given")
        for name, flag in (("quantization", "--quantization"), ("kv_cache_dtype", "--kv-cache-dtype")):
            value = getattr(self, name)
            if value is None:
                continue
            if not value.strip():
                raise ConfigError(f"{flag} must not be empty")
            if self.offline is None:
                raise ConfigError(f"{flag} applies to --offline only: a server's is set where it starts "
                                  f"(`vlmocr serve MODEL {flag} {value}`)")
        if len(set(self.servers)) != len(self.servers):
            raise ConfigError(f"--server: a URL is given twice ({', '.join(self.servers)})")

    @property
    def servers(self) -> list[str]:
        """The base URLs, normalized ('host:8000' → 'http://host:8000/v1')."""
        given = [self.server] if isinstance(self.server, str) else list(self.server or ())
        return [normalize_base_url(url) for item in given for url in item.split(",") if url.strip()]


@dataclass(frozen=True)
class Job:
    """The contracts one run uses, and where they came from."""

    prompt: PromptContract
    resolution: Resolution
    schema: dict[str, Any] | None
    max_tokens: int
    contract_source: str

    def decoding_schema(self) -> dict[str, Any] | None:
        """The schema sent for constrained decoding (see `answers.decoding_schema`)."""
        if self.schema is None:
            return None
        sent, dropped = decoding_schema(self.schema)
        if dropped:
            log.info("%d schema keyword(s) the decoder cannot enforce are checked on each answer instead: %s",
                     len(dropped), ", ".join(dropped[:5]) + (" …" if len(dropped) > 5 else ""))
        return sent


@dataclass
class ExtractResult:
    """What a run did. Latency figures cover the images sent in this run."""

    out: Path
    csv: Path | None = None
    review: ReviewSummary | None = None
    model: str | None = None
    contract_source: str = "defaults"
    total: int = 0
    skipped: int = 0
    attempted: int = 0
    ok: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latencies: list[float] = field(default_factory=list)
    dropped_lines: int = 0

    @property
    def images_per_s(self) -> float:
        return self.attempted / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def latency_p50_s(self) -> float | None:
        return percentile(self.latencies, 50)

    @property
    def latency_p95_s(self) -> float | None:
        return percentile(self.latencies, 95)

    def add(self, prediction: Prediction) -> None:
        self.attempted += 1
        if prediction.ok:
            self.ok += 1
        else:
            self.failed += 1
            kind = error_kind(prediction.error) or "no_json"
            self.errors[kind] = self.errors.get(kind, 0) + 1
        if prediction.latency_s is not None:
            self.latencies.append(prediction.latency_s)
        self.prompt_tokens += prediction.prompt_tokens or 0
        self.completion_tokens += prediction.completion_tokens or 0


class Progress(Protocol):
    """Progress callbacks: `start` once the images still to do are known, `advance` per result."""

    def start(self, total: int, skipped: int) -> None: ...

    def advance(self, prediction: Prediction) -> None: ...


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile with linear interpolation (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def load_schema_file(path: Path) -> dict[str, Any]:
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--schema {path}: cannot read ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--schema {path}: not JSON (line {exc.lineno}: {exc.msg})") from exc
    if not isinstance(schema, dict):
        raise ConfigError(f"--schema {path}: a JSON schema must be an object")
    return schema


def resolve_job(config: ExtractConfig, model_dir: str | Path | None = None) -> Job:
    """The contracts to use: --contract, else the served/offline model's vlmocr.json, else defaults."""
    source = "defaults"
    contract = ModelContract()
    for candidate, label in ((config.contract_dir, "--contract"), (model_dir, "the model folder")):
        if candidate is None:
            continue
        path = Path(candidate)
        if (path / CONTRACT_FILE).is_file():
            contract, source = load_contract(path), str(path / CONTRACT_FILE)
            break
        if label == "--contract":
            raise ConfigError(f"--contract {path}: no {CONTRACT_FILE} there")
    if source == "defaults":
        log.warning("no %s found: using the default prompt, resolution and schema", CONTRACT_FILE)
    defaults = contract.prompt
    prompt = PromptContract(system=config.system or defaults.system, question=config.question or defaults.question)
    schema: dict[str, Any] | None = None
    if config.schema_path is not None:
        schema = load_schema_file(config.schema_path)
    elif config.use_schema:
        schema = contract.schema
    return Job(prompt, contract.resolution, schema, config.max_tokens or contract.max_new_tokens, source)


def plan(images: list[Path], config: ExtractConfig) -> tuple[list[Path], int, bool]:
    """Images still to do, how many are already done, and whether the file needs a newline."""
    if config.csv is not None and Path(config.csv).resolve() == Path(config.out).resolve():
        raise ConfigError("--csv must differ from --out")
    if config.mode == "overwrite" and config.out.exists():
        config.out.unlink()
    existing = read_output(config.out)
    if existing.bad_lines:
        log.warning("%s: %d unreadable line(s) (interrupted writes?) at %s; those images are redone",
                    config.out, len(existing.bad_lines), existing.bad_lines[:10])
    done = existing.final_keys()
    todo = [p for p in images if file_key(str(p)) not in done]
    return todo, len(images) - len(todo), existing.ends_without_newline


def finish(result: ExtractResult, config: ExtractConfig) -> ExtractResult:
    """Compact the output if rows repeat, write the CSV, fill in totals."""
    result.dropped_lines = compact(config.out) if config.out.exists() else 0
    if (config.csv is not None or config.review is not None) and config.out.exists():
        rows = list(read_output(config.out).rows.values())  # read once for both
        if config.csv is not None:
            write_csv(config.out, Path(config.csv), rows)
            result.csv = Path(config.csv)
        if config.review is not None:
            result.review = write_review(config.out, Path(config.review), config.review_below, rows)
    return result


def normalize_base_url(server: str) -> str:
    """'host:8000', 'http://host:8000' or '.../v1' → 'http://host:8000/v1'."""
    url = server.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url if url.endswith("/v1") else url + "/v1"


async def _models(http: Any, base: str, retries: int, backoff_s: float, *, required: bool) -> list[dict[str, Any]]:
    """The server's model list; with `required=False` (a --model was given) a server without one is fine."""
    import httpx

    error: Exception | None = None
    for retry in range(max(1, retries) + 1):
        try:
            response = await http.get(f"{base}/models")
        except httpx.TransportError as exc:
            error = exc
            await asyncio.sleep(min(5.0, backoff_s * 2**retry))
            continue
        if response.status_code in (401, 403):
            raise ServerError(f"{base}/models: HTTP {response.status_code} (check --api-key)")
        if response.status_code != 200:
            if not required:
                log.warning("%s/models: HTTP %d; using --model as given", base, response.status_code)
                return []
            raise ServerError(f"{base}/models: HTTP {response.status_code} {response.text[:200]}")
        try:
            return [m for m in response.json().get("data", []) if isinstance(m, dict)]
        except (ValueError, AttributeError) as exc:
            raise ServerError(f"{base}/models: not an OpenAI model list ({exc})") from exc
    raise ServerError(f"cannot reach the server at {base} ({type(error).__name__}: {error}). Is it running?")


def _client_pools(config: ExtractConfig, timeout: Any, headers: dict[str, str]) -> list[Any]:
    """httpx clients sharing the concurrency, `config.pool_connections` each, one TLS context."""
    import httpx

    n = max(1, math.ceil(config.concurrency / config.pool_connections))
    size = math.ceil(config.concurrency / n)
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    tls = httpx.create_ssl_context()  # what each client would build itself (certifi, SSL_CERT_FILE), built once
    return [httpx.AsyncClient(timeout=timeout, headers=headers, limits=limits, verify=tls) for _ in range(n)]


async def _resolve_model(http: Any, bases: list[str], config: ExtractConfig) -> tuple[str, dict[str, Any] | None]:
    """The model name to ask for (and its /models entry on the first server): every server must serve it."""
    model, entry = config.model, None
    for base in bases:
        models = await _models(http, base, config.max_retries, config.backoff_base_s, required=config.model is None)
        names = [str(m.get("id")) for m in models]
        if config.model is None:
            if len(models) != 1:
                raise ConfigError(f"the server at {base} lists {len(models)} models ({', '.join(names) or 'none'}): "
                                  "choose one with --model")
            if model is not None and names[0] != model:
                raise ConfigError(f"the servers serve different models ({model} at {bases[0]}, {names[0]} at {base}): "
                                  "give --model, or servers of one model")
            model = names[0]
        elif models and model not in names:
            log.warning("the server at %s does not list %r (it lists %s)", base, model, ", ".join(names))
        if base == bases[0]:
            entry = next((m for m in models if m.get("id") == model), None)
    assert model is not None
    return model, entry


async def _extract_server(
    images: list[Path], config: ExtractConfig, progress: Progress | None
) -> ExtractResult:
    import httpx

    from vlmocr.client.request import RequestSpec, RetryPolicy, request_image

    bases = config.servers
    if not bases:
        raise ConfigError("give --server URL (an OpenAI-compatible server) or --offline MODEL_DIR")
    result = ExtractResult(out=config.out, total=len(images))
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    timeout = httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s)
    async with contextlib.AsyncExitStack() as stack:
        pools = [await stack.enter_async_context(client) for client in _client_pools(config, timeout, headers)]
        model, entry = await _resolve_model(pools[0], bases, config)
        root = entry.get("root") if entry else None
        local_root = root if isinstance(root, str) and os.path.isdir(root) else None
        job = resolve_job(config, local_root)
        result.model, result.contract_source = model, job.contract_source
        checker = SchemaChecker(job.schema) if job.schema is not None else None
        todo, result.skipped, needs_newline = plan(images, config)
        policy = RetryPolicy(config.max_retries, config.backoff_base_s, config.backoff_cap_s,
                             config.retry_after_cap_s, tuple(config.temperature_ladder))
        specs = [RequestSpec(
            url=f"{base}/chat/completions", model=model, prompt=job.prompt, max_tokens=job.max_tokens,
            temperature=config.temperature, schema=job.decoding_schema(), checker=checker,
            allow_fenced=config.allow_fenced, extra_body=dict(config.extra_body or {}), policy=policy,
            confidence=config.confidence,
        ) for base in bases]
        live = set(range(len(specs)))  # servers still accepting connections
        if progress is not None:
            progress.start(len(todo), result.skipped)
        queue: asyncio.Queue[Path] = asyncio.Queue()
        for path in todo:
            queue.put_nowait(path)
        start = time.monotonic()
        with PredictionWriter(config.out, ends_without_newline=needs_newline) as writer:

            async def worker(http: httpx.AsyncClient, index: int) -> None:
                while not queue.empty():
                    if index not in live:  # this worker's server went away: take another one
                        if not live:
                            break
                        index = min(live, key=lambda i: (i - index) % len(specs))
                    path = queue.get_nowait()
                    try:
                        url = await asyncio.to_thread(
                            prepare_image, path, job.resolution, fmt=config.image_format,
                            quality=config.jpeg_quality, max_image_pixels=config.max_image_pixels,
                            pdf_dpi=config.pdf_dpi,
                        )
                    except ImageError as exc:
                        prediction = Prediction(file=str(path), error=f"image_error: {exc}")
                    else:
                        prediction = await request_image(http, specs[index], str(path), url)
                        if (prediction.error or "").startswith("connection:") and len(live - {index}) > 0:
                            # Unreachable after its retries: drop that server, the image goes to another.
                            if index in live:
                                live.discard(index)
                                log.warning("%s stopped accepting connections (%s); going on with %d other "
                                            "server(s)", bases[index], prediction.error, len(live))
                            queue.put_nowait(path)
                            continue
                    writer.write(prediction)
                    result.add(prediction)
                    if progress is not None:
                        progress.advance(prediction)

            n_workers = min(config.concurrency, max(1, len(todo)))
            await asyncio.gather(*(worker(pools[i % len(pools)], i % len(specs)) for i in range(n_workers)))
        result.elapsed_s = time.monotonic() - start
    return result


def extract(images: list[Path], config: ExtractConfig, *, progress: Progress | None = None) -> ExtractResult:
    """Extract JSON from `images` (files or folders) into `config.out`; see the module docstring."""
    from vlmocr.models.builtin import is_builtin_name, resolve_model

    if is_builtin_name(config.offline) or is_builtin_name(config.contract_dir):
        contract = config.contract_dir
        config = replace(config, offline=resolve_model(config.offline),
                         contract_dir=Path(str(resolve_model(str(contract)))) if contract else None)
    files = discover_images(images, recursive=config.recursive)
    if config.offline:
        from vlmocr.client.offline import extract_offline

        result = extract_offline(files, config, progress=progress)
    else:
        result = asyncio.run(_extract_server(files, config, progress))
    finish(result, config)
    log.info("%d ok, %d failed, %d skipped (already done) → %s", result.ok, result.failed, result.skipped, config.out)
    return result
