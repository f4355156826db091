"""The main job, end to end and offline: the seed's whole story on one machine.

synthesize data → base model (the built-in one, else a freshly built random one) →
serve it with vLLM → extract + evaluate (before) → LoRA fine-tune → export (verified) →
serve the export → extract + evaluate (after) → before/after report.

Every artifact lands in one run folder. Each stage reports start and end through a
callback (the CLI draws them); a failure names its stage; servers are context managers,
so Ctrl-C or an error never leaves one running.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from vlmocr.errors import ConfigError, VlmocrError
from vlmocr.fileio import atomic_write_json, provenance

log = logging.getLogger(__name__)

STAGES = ("data", "base", "serve-before", "train", "export", "serve-after", "report")


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo run. `quick()` is the smallest loop (tests, a first look)."""

    out: Path = Path("runs/demo")
    base: str | None = None  # a model dir or "builtin"; None: the built-in model, else a new random `size` one
    size: str = "small"  # what `vlmocr model build` makes when there is no built-in model
    layouts: tuple[str, ...] = ("label",)  # the layout(s) the fine-tune learns and is tested on
    train_images: int = 64
    valid_images: int = 8
    test_images: int = 16
    augment: str = "light"
    steps: int = 30
    batch_size: int = 4
    #: Visual tokens an image may become, for a random base the demo builds (a shipped or given
    #: base keeps its own contract). Fewer tokens keep the CPU loop within minutes.
    random_base_max_tokens: int = 256
    learning_rate: float = 5e-4
    lora_r: int = 16
    #: The fine-tune's precision (`auto`: bf16 on a GPU or a CPU with bf16 in hardware, else fp32).
    precision: str = "auto"
    concurrency: int = 4
    max_tokens: int | None = None
    #: Ask for each field's confidence (`extract --confidence`): the report then says, before and after,
    #: how well it picks the wrong values (AUROC, calibration gap).
    confidence: bool = True
    seed: int = 0
    overwrite: bool = False

    @classmethod
    def quick(cls, out: Path, **changes: Any) -> DemoConfig:
        values: dict[str, Any] = dict(out=out, size="tiny", train_images=8, valid_images=2, test_images=4,
                                      steps=4, batch_size=2, concurrency=2, max_tokens=64, random_base_max_tokens=64)
        values.update(changes)
        return cls(**values)


@dataclass(frozen=True)
class StageEvent:
    stage: str
    kind: str  # "start" | "end"
    message: str = ""
    seconds: float | None = None


@dataclass
class DemoResult:
    out: Path
    base_model: str
    base_kind: str  # "builtin", "given" or "random-<size>"
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    report_html: Path | None = None

    @property
    def seconds(self) -> float:
        return sum(self.timings.values())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["out"], data["report_html"] = str(self.out), str(self.report_html) if self.report_html else None
        return data


class DemoStageError(VlmocrError):
    """A stage of the demo failed; the message names it."""


Progress = Callable[[StageEvent], None]

# Scores shown in the before/after table, in order.
SCORES = ("json_valid", "schema_valid", "field_f1", "field_f1_macro", "ted_accuracy", "exact_match", "row_f1")


def _scores(evaluated: Any, config: DemoConfig) -> dict[str, Any]:
    scores = {name: getattr(evaluated.summary, name, None) for name in SCORES} | {"n": evaluated.summary.n}
    if config.confidence:  # None where no answer carried one (e.g. none was valid JSON)
        c = evaluated.confidence
        scores |= {"confidence_auroc": c.auroc if c is not None else None,
                   "confidence_ece": c.ece if c is not None else None}
    return scores


def _base_model(config: DemoConfig, out: Path) -> tuple[str, str]:
    from vlmocr.models.builtin import builtin_model_path, is_builtin_name, resolve_model

    if config.base and is_builtin_name(config.base):
        return str(resolve_model(config.base)), "builtin"
    if config.base:
        if not Path(config.base).is_dir():
            raise ConfigError(f"--base {config.base}: not a model directory")
        return str(Path(config.base).resolve()), "given"
    builtin = builtin_model_path()
    if builtin is not None and config.size in ("small", "builtin"):
        return str(builtin), "builtin"
    from vlmocr.models.build import build_model

    from vlmocr.images import PATCH_FACTOR, Resolution

    size = "small" if config.size == "builtin" else config.size
    token = PATCH_FACTOR * PATCH_FACTOR
    resolution = Resolution(min_pixels=max(4, config.random_base_max_tokens // 4) * token,
                            max_pixels=config.random_base_max_tokens * token)
    built = build_model(out / "base", size, seed=config.seed, resolution=resolution)
    return str(built.path), f"random-{size}"


def _serve_extract_eval(model: str, test_dir: Path, out: Path, config: DemoConfig, label: str) -> Any:
    from vlmocr.client.extract import ExtractConfig, discover_images, extract
    from vlmocr.eval.evaluate import EvalConfig, evaluate
    from vlmocr.serve.vllm import ServeConfig, start_server

    preds = out / f"predictions-{label}.jsonl"
    with start_server(model, ServeConfig(port=0, run_dir=out / f"serve-{label}")) as server:
        result = extract(
            discover_images([test_dir]),
            ExtractConfig(server=server.base_url, model=server.model_name, out=preds, contract_dir=Path(model),
                          concurrency=config.concurrency, max_tokens=config.max_tokens, mode="overwrite",
                          confidence=config.confidence),
        )
    log.info("%s: %d/%d images answered with valid JSON in %.1f s", label, result.ok, result.attempted,
             result.elapsed_s)
    return evaluate(preds, test_dir, out / f"eval-{label}", EvalConfig(overwrite=True))


def run_demo(config: DemoConfig, progress: Progress | None = None) -> DemoResult:
    """Run every stage of the demo into `config.out`; return the scores and timings."""
    out = Path(config.out)
    if out.exists() and any(out.iterdir()):
        if not config.overwrite:
            raise ConfigError(f"{out} is not empty (pass --overwrite to replace it)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    emit = progress or (lambda event: None)
    timings: dict[str, float] = {}

    def stage(name: str, message: str, fn: Callable[[], Any]) -> Any:
        emit(StageEvent(name, "start", message))
        start = time.perf_counter()
        try:
            value = fn()
        except VlmocrError as exc:
            raise DemoStageError(f"demo stage '{name}' failed: {exc}") from exc
        except (OSError, RuntimeError, ValueError) as exc:
            raise DemoStageError(f"demo stage '{name}' failed: {type(exc).__name__}: {exc}") from exc
        timings[name] = time.perf_counter() - start
        emit(StageEvent(name, "end", message, timings[name]))
        return value

    from vlmocr.data.synth import SynthConfig, generate_dataset

    data_dir = out / "data"
    synth = SynthConfig(seed=config.seed, layouts=config.layouts, augment=config.augment)
    stage("data", f"synthesize {config.train_images}/{config.valid_images}/{config.test_images} manifests "
          f"({', '.join(config.layouts)})",
          lambda: generate_dataset(data_dir, config.train_images, config.valid_images, config.test_images, synth))
    test_dir = data_dir / "test"

    what = f"base {config.base}" if config.base else "the built-in model, else a new random one"
    base, base_kind = stage("base", what,
                            lambda: _base_model(config, out))
    result = DemoResult(out=out, base_model=base, base_kind=base_kind, timings=timings)
    before = stage("serve-before", "serve the base with vLLM, extract and evaluate",
                   lambda: _serve_extract_eval(base, test_dir, out, config, "before"))
    result.before = _scores(before, config)

    from vlmocr.train.config import CheckpointConfig, DataConfig, EvalConfig, LoraSettings, OptimConfig, TrainConfig

    train_config = TrainConfig(
        model=base, method="lora", out=str(out / "train"), data=DataConfig(dataset=str(data_dir)),
        lora=LoraSettings(r=config.lora_r, alpha=2 * config.lora_r, dropout=0.0),
        optim=OptimConfig(learning_rate=config.learning_rate, warmup_ratio=0.1),
        eval=EvalConfig(every_steps=0, n_samples=min(2, config.valid_images)),
        checkpoint=CheckpointConfig(every_steps=0), batch_size=config.batch_size, max_steps=config.steps,
        seed=config.seed, log_every=max(1, config.steps // 10), precision=config.precision,
    )
    from vlmocr.train.trainer import train

    stage("train", f"LoRA fine-tune, {config.steps} steps", lambda: train(train_config))

    from vlmocr.export.merge import ExportConfig, export_model

    exported = out / "export"
    stage("export", "merge, write the servable model, verify it (transformers + vLLM)",
          lambda: export_model(out / "train", exported, ExportConfig(dtype="fp32")))
    after = stage("serve-after", "serve the export with vLLM, extract and evaluate",
                  lambda: _serve_extract_eval(str(exported), test_dir, out, config, "after"))
    result.after = _scores(after, config)

    from vlmocr.eval.compare import compare
    from vlmocr.eval.evaluate import EvalConfig as ScoreConfig

    stage("report", "before/after report",
          lambda: compare(out / "predictions-before.jsonl", out / "predictions-after.jsonl", test_dir,
                          out / "report", ScoreConfig(overwrite=True)))
    result.report_html = out / "report" / "report.html"
    atomic_write_json(out / "demo.json", {"config": _config_dict(config), "result": result.to_dict(),
                                          "provenance": provenance()})
    return result


def _config_dict(config: DemoConfig) -> dict[str, Any]:
    data = asdict(replace(config))
    data["out"] = str(config.out)
    return data


def load_demo(out: Path) -> dict[str, Any]:
    return json.loads((Path(out) / "demo.json").read_text(encoding="utf-8"))
