"""`vlmocr extract IMAGES_PDFS_OR_DIRS...`: images and PDF pages → predictions.jsonl (server or --offline)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from vlmocr.cli._common import console, handle_errors, out
from vlmocr.pdf import SCAN_DPI
from vlmocr.records import Prediction


def register(app: typer.Typer) -> None:
    app.command("extract")(extract)


class _Bar:
    """Rich progress bar fed by the library's progress callbacks."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("extracting", total=None)
        self.failed = 0

    def start(self, total: int, skipped: int) -> None:
        self.progress.update(self.task, total=total)
        if skipped:
            console.print(f"resuming: {skipped} image(s) already done")

    def advance(self, prediction: Prediction) -> None:
        self.failed += 0 if prediction.ok else 1
        self.progress.update(self.task, advance=1, description=f"extracting ({self.failed} failed)")


def _ladder(text: str | None) -> tuple[float, ...]:
    from vlmocr.errors import ConfigError

    if not text:
        return ()
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise ConfigError(f"--temperature-ladder: expected numbers like 0.2,0.5 ({exc})") from exc


@handle_errors
def extract(
    images: list[Path] = typer.Argument(..., help="Image files, PDFs (every page; doc.pdf#page=N for one) and/or "
                                        "folders of them."),
    server: list[str] = typer.Option(None, "--server", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1; "
                                     "repeat it (or separate URLs by commas) to spread the work over several servers."),
    offline: str = typer.Option(None, "--offline", help="Model folder, or `builtin` (the shipped built-in model): "
                                "run vLLM in-process instead of a server."),
    model: str = typer.Option(None, "--model", help="Model name on the server (default: the only one it lists)."),
    api_key: str = typer.Option(None, "--api-key", envvar="VLMOCR_API_KEY", help="Bearer key for the server."),
    out_path: Path = typer.Option(Path("predictions.jsonl"), "--out", help="Output JSONL (appended; reruns resume)."),
    csv_path: Path = typer.Option(None, "--csv", help="Also write a flattened CSV here."),
    contract: Path = typer.Option(None, "--contract", help="Model folder (or `builtin`) whose vlmocr.json gives "
                                  "prompt, resolution, schema."),
    schema: Path = typer.Option(None, "--schema", help="JSON schema file (default: the model's)."),
    no_schema: bool = typer.Option(False, "--no-schema", help="Send no response_format and skip validation."),
    system: str = typer.Option(None, "--system", help="System message (default: the model's prompt contract)."),
    question: str = typer.Option(None, "--question", help="Question (default: the model's prompt contract)."),
    concurrency: int = typer.Option(8, "--concurrency", "-c", help="Requests in flight at once."),
    max_tokens: int = typer.Option(None, "--max-tokens", help="Max output tokens (default: the contract's)."),
    temperature: float = typer.Option(0.0, "--temperature", help="Sampling temperature of the first attempt."),
    ladder: str = typer.Option(None, "--temperature-ladder", help="Re-ask content failures at these temperatures, e.g. 0.3,0.7."),
    retries: int = typer.Option(5, "--retries", help="Retries for transient failures (connect, timeout, 429, 5xx)."),
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds to wait for one answer."),
    allow_fenced: bool = typer.Option(False, "--allow-fenced", help="Accept JSON wrapped in a ``` code fence (marked fenced)."),
    confidence: bool = typer.Option(False, "--confidence", help="Ask for token log-probabilities and write each "
                                    "field's probability (confidence, min_confidence); `vlmocr eval` scores them."),
    review: Path = typer.Option(None, "--review", help="With --confidence: write a CSV of the values below "
                                "--review-below and the answers to check whole (failed, or without a confidence)."),
    review_below: float = typer.Option(None, "--review-below",
                                       help="The confidence under which --review lists a value [default: 0.9]."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start the output file afresh instead of resuming."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Look for images and PDFs in subfolders too."),
    pdf_dpi: float = typer.Option(SCAN_DPI, "--pdf-dpi", help="PDF pages get the size a scan at this resolution would "
                                  "(then fitted to the model's pixel contract)."),
    image_format: str = typer.Option("JPEG", "--image-format", help="Encoding of resized images: JPEG or PNG."),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per batch with --offline."),
    quantization: str = typer.Option(None, "--quantization", help="With --offline: vLLM's --quantization, e.g. fp8 "
                                     "(weights quantized when loaded), as `vlmocr serve --quantization` sets it."),
    kv_cache_dtype: str = typer.Option(None, "--kv-cache-dtype", help="With --offline: vLLM's --kv-cache-dtype, "
                                       "e.g. fp8, as `vlmocr serve --kv-cache-dtype` sets it."),
) -> None:
    """Extract JSON from document images and PDF pages with schema-constrained output, retries and resume."""
    from vlmocr.client.extract import ExtractConfig
    from vlmocr.client.extract import extract as run_extract
    from vlmocr.errors import ConfigError
    from vlmocr.models.builtin import is_builtin_name, resolve_model

    if review_below is not None and review is None:
        raise ConfigError("--review-below sets the threshold of --review: give --review FILE.csv too")
    if bool(server) == bool(offline):
        raise ConfigError("give exactly one of --server URL or --offline MODEL_DIR")
    if no_schema and schema is not None:
        raise ConfigError("--schema and --no-schema exclude each other")
    offline = resolve_model(offline)
    if is_builtin_name(contract):
        contract = Path(str(resolve_model(str(contract))))
    config = ExtractConfig(
        server=tuple(server or ()) or None, model=model, api_key=api_key, offline=offline, out=out_path, csv=csv_path,
        contract_dir=contract, system=system, question=question, schema_path=schema, use_schema=not no_schema,
        concurrency=concurrency, max_tokens=max_tokens, temperature=temperature, temperature_ladder=_ladder(ladder),
        max_retries=retries, timeout_s=timeout, allow_fenced=allow_fenced,
        mode="overwrite" if overwrite else "resume", recursive=recursive,
        image_format=image_format.upper(),  # type: ignore[arg-type]
        batch_size=batch_size, quantization=quantization, kv_cache_dtype=kv_cache_dtype, pdf_dpi=pdf_dpi,
        confidence=confidence, review=review, **({} if review_below is None else {"review_below": review_below}),
    )
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        result = run_extract(images, config, progress=_Bar(progress))

    table = Table(title=f"{escape(str(result.out))} ({escape(result.model or '?')})", show_header=False)
    p50, p95 = result.latency_p50_s, result.latency_p95_s
    rows = [
        ("images", str(result.total)),
        ("already done (skipped)", str(result.skipped)),
        ("ok", str(result.ok)),
        ("failed", str(result.failed)),
        *((f"  {kind}", str(n)) for kind, n in sorted(result.errors.items())),
        ("images/s", f"{result.images_per_s:.2f}"),
        ("latency p50 / p95 s", f"{p50:.2f} / {p95:.2f}" if p50 is not None and p95 is not None else "-"),
        ("tokens in / out", f"{result.prompt_tokens} / {result.completion_tokens}"),
        ("contracts from", escape(result.contract_source)),
    ]
    if result.csv is not None:
        rows.append(("csv", escape(str(result.csv))))
    if result.review is not None:
        r = result.review
        queue = (f"{r.fields} values below {r.below:g}" + (f" and {r.unscored} without a confidence" if r.unscored else "")
                 + f" in {r.answers_with_fields} answers, {r.whole} answers whole → {escape(str(r.path))}")
        rows.append(("review", queue))
    for name, value in rows:
        table.add_row(name, value)
    out.print(table)
