"""`train(config)`: the training loop (plain torch + PEFT), with everything a long run needs.

Order of work: read the data and the processor, run the pre-flight length check (nothing
is written before it passes), load the model for the method, write the run folder's
config.yaml / provenance.json / vlmocr.json, then loop over optimizer steps:

- each step takes `grad_accum` micro-batches from a `BatchPlan` position, so a resumed
  run (`resume=True`) continues at the same sample with the same optimizer, scheduler and
  random state: its next losses equal an uninterrupted run's (CPU, same seed);
- the loss is the mean over answer tokens of the whole step (all ranks), and a
  non-finite loss or gradient norm stops the run before the optimizer moves, without
  saving anything over the last good checkpoint (`TrainingError`);
- every `eval.every_steps` (and at the end) validation images are generated and scored,
  and RUN/best/ is replaced when the score beats the best so far;
- every `checkpoint.every_steps` (and at the end, and on SIGTERM/SIGINT) an atomic
  checkpoint is written; the end also writes RUN/final/ and RUN/loss.png.

Progress goes to an optional callback as `TrainEvent`s (the CLI renders them with rich).
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vlmocr._deps import require
from vlmocr.contract import ModelContract, load_contract, save_contract
from vlmocr.errors import ConfigError, TrainingError
from vlmocr.fileio import atomic_write_json, atomic_write_text, provenance
from vlmocr.schema import manifest_schema
from vlmocr.train import checkpoint as ckpt
from vlmocr.train.collate import BatchPlan, PreflightReport, SampleEncoder, make_loader, preflight
from vlmocr.train.config import TrainConfig, dump_config
from vlmocr.train.data import load_data
from vlmocr.train.distributed import Dist
from vlmocr.train.evaluate import EvalResult, evaluate_samples, score_pairs
from vlmocr.train.image_use import image_use
from vlmocr.train.modeling import (
    check_method_supported,
    load_for_training,
    load_processor,
    make_loss_model,
    precision_name,
    resolve_device,
)
from vlmocr.train.report import MetricsLog, plot_loss

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainEvent:
    """One thing the trainer reports: start, step, eval, checkpoint or end."""

    kind: str
    step: int
    max_steps: int
    loss: float | None = None
    lr: float | None = None
    samples_per_s: float | None = None
    tokens_per_s: float | None = None
    score: float | None = None
    path: str | None = None
    message: str = ""


@dataclass(frozen=True)
class TrainResult:
    run: Path
    steps: int
    max_steps: int
    stopped: str  # "completed", or the signal that stopped it ("SIGTERM", "SIGINT")
    final_loss: float | None
    best_score: float | None
    best_step: int | None
    metric: str
    final_dir: Path | None
    best_dir: Path | None
    last_checkpoint: Path | None
    resumed_from: Path | None
    seconds: float
    samples_per_s: float
    tokens_per_s: float
    trainable_parameters: int
    total_parameters: int
    preflight: PreflightReport


class _StopRequest:
    """SIGTERM/SIGINT ask for a checkpoint and a clean stop; a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        log.warning("received %s: saving a checkpoint after this step, then stopping",
                    signal.Signals(signum).name)

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _lr_lambda(total: int, warmup: int, kind: str, cycles: int = 1, cycle_decay: float = 1.0) -> Callable[[int], float]:
    """The learning-rate factor of each step: `warmup` steps rising linearly, then `kind` (cosine or linear
    to zero, or constant). With `cycles` > 1 the steps split into that many equal cycles, each with its own
    warm-up and decay to zero (warm restarts, SGDR-style: the reading probe read only after an anneal and a
    restart, docs/builtin.md); cycle k (from 0) peaks at `cycle_decay` ** k."""
    length = max(1, math.ceil(total / max(1, cycles)))

    def factor(step: int) -> float:
        peak = cycle_decay ** (step // length) if cycles > 1 else 1.0
        step = step % length if cycles > 1 else step
        if warmup and step < warmup:
            return peak * (step + 1) / warmup
        if kind == "constant":
            return peak
        progress = min(1.0, (step - warmup) / max(1, length - warmup))
        return peak * (0.5 * (1 + math.cos(math.pi * progress)) if kind == "cosine" else 1.0 - progress)
    return factor


def _has_run(run: Path) -> bool:
    return (run / "metrics.jsonl").is_file() or (run / "checkpoints").is_dir()


def train(config: TrainConfig, *, resume: bool = False,
          progress: Callable[[TrainEvent], None] | None = None) -> TrainResult:
    """Train as `config` says; resume from the last complete checkpoint of `config.out` if asked."""
    require("torch", extra="train", purpose="Training")
    from vlmocr.models.builtin import resolve_model

    config = replace(config, model=resolve_model(config.model))
    if Path(config.model).is_dir():  # adapters and contracts name the base by absolute path
        config = replace(config, model=str(Path(config.model).resolve()))
    import torch

    dist = Dist.from_env()
    device = resolve_device(config.device)
    threads_before = torch.get_num_threads()
    if device.type == "cpu" and config.cpu_threads:
        torch.set_num_threads(config.cpu_threads)
    dist.init(device)
    try:
        return _Trainer(config, dist, device, progress).run(resume)
    finally:
        dist.close()
        torch.set_num_threads(threads_before)


class _Trainer:
    def __init__(self, config: TrainConfig, dist: Dist, device: Any,
                 progress: Callable[[TrainEvent], None] | None) -> None:
        self.config = config
        self.dist = dist
        self.device = device
        self.run_dir = Path(config.out)
        self._progress = progress
        self.metrics = MetricsLog(self.run_dir, enabled=dist.is_main)

    def emit(self, event: TrainEvent) -> None:
        if self._progress is not None and self.dist.is_main:
            self._progress(event)

    def run(self, resume: bool) -> TrainResult:
        import torch

        cfg, run = self.config, self.run_dir
        check_method_supported(cfg, self.device)
        point = None
        if resume:
            if self.dist.is_main:
                ckpt.clean_partials(run)
            self.dist.barrier()
            latest = ckpt.latest_checkpoint(run)
            if latest is None:
                raise TrainingError(f"--resume: {run} has no complete checkpoint to resume from")
            point = ckpt.load_resume_point(latest)
            saved = load_contract(latest)
            if saved.extra.get("method") not in (None, cfg.method) or saved.base_model not in (None, cfg.model):
                raise ConfigError(f"--resume: {latest} was trained with method {saved.extra.get('method')} on "
                                  f"{saved.base_model}; the config says {cfg.method} on {cfg.model}")
        elif _has_run(run):
            raise ConfigError(f"{run} already holds a training run; pass --resume to continue it, "
                              "or choose another output folder (out / --out)")
        _seed_everything(cfg.seed)
        processor, resolution = load_processor(cfg)
        data = load_data(cfg.data, cfg.prompt_contract() if cfg.prompt else None,
                         want_valid=cfg.eval.n_samples > 0)
        # compact pixels: the workers send uint8 patches, expanded on the device (model_inputs below)
        encoder = SampleEncoder(processor, resolution, cfg.max_length, compact_pixels=cfg.data.compact_pixels)
        report = preflight(data.train, encoder)
        world, accum, batch = self.dist.world_size, cfg.grad_accum, cfg.batch_size
        per_step = batch * world * accum
        total = cfg.max_steps or max(1, math.ceil(cfg.epochs * len(data.train) / per_step))
        loaded = load_for_training(cfg, processor, resolution, device=self.device,
                                   resume_from=point.path if point else None,
                                   planned_batches=(total - (point.state.step if point else 0)) * accum)
        model = loaded.model
        contract = ModelContract(
            prompt=data.prompt, resolution=resolution, schema=manifest_schema(), base_model=cfg.model,
            max_new_tokens=max(1024, 2 * report.max_answer),
            extra={"method": cfg.method, "target_format": cfg.data.target_format},
        )
        if self.dist.is_main:
            run.mkdir(parents=True, exist_ok=True)
            atomic_write_text(run / "config.yaml", dump_config(cfg))
            atomic_write_json(run / "provenance.json", {**provenance(), "world_size": self.dist.world_size,
                                                        "vision_attention": loaded.vision_attention,
                                                        "precision": precision_name(loaded.autocast_dtype),
                                                        "liger": loaded.liger,
                                                        "compile": loaded.compile})
            save_contract(run, contract)

        params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        o = cfg.optim
        fused = o.fused if o.fused is not None else self.device.type == "cuda"
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=o.learning_rate, betas=(o.beta1, o.beta2), eps=o.eps, fused=fused or None,
        )
        warmup = o.warmup_steps if o.warmup_steps is not None else int(o.warmup_ratio * math.ceil(total / o.cycles))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(total, warmup, o.scheduler, o.cycles, o.cycle_decay))
        state = ckpt.TrainerState(world_size=world)
        if point is not None:
            state = point.state
            optimizer.load_state_dict(point.optimizer)
            scheduler.load_state_dict(point.scheduler)
            if state.world_size != world:
                log.warning("resuming a %d-process run with %d processes: data position rounded",
                            state.world_size, world)
                state = replace(state, micro_step=state.samples_seen // (batch * world), world_size=world)
            ckpt.restore_rng(point.rng_states[self.dist.rank if self.dist.rank < len(point.rng_states) else 0])
            self.metrics.truncate_after(state.step)
            log.info("resuming from %s at step %d", point.path, state.step)

        loss_model = self.dist.wrap(make_loss_model(model, cfg.loss_chunk_size), self.device)
        plan = BatchPlan(data.train.size, batch, seed=cfg.seed, world_size=world, rank=self.dist.rank,
                         lengths=report.lengths, group_by_length=cfg.data.group_by_length)
        loader = make_loader(data.train, encoder, plan, state.micro_step, num_workers=cfg.data.num_workers,
                             prefetch_factor=cfg.data.prefetch_factor,
                             pin_memory=self.device.type == "cuda", seed=cfg.seed)
        eval_samples = data.valid.head(cfg.eval.n_samples) if data.valid is not None else []
        if eval_samples and cfg.eval.metric not in (known := score_pairs([(eval_samples[0].gold,) * 2])):
            raise ConfigError(f"eval.metric {cfg.eval.metric!r} is not one of {sorted(known)}")
        max_new = cfg.eval.max_new_tokens or min(
            cfg.max_length, 32 + max((len(encoder.answer_ids(s.answer)) for s in eval_samples), default=0))
        autocast = (torch.autocast(self.device.type, dtype=loaded.autocast_dtype)
                    if loaded.autocast_dtype is not None else contextlib.nullcontext())
        self.emit(TrainEvent("start", state.step, total, message=(
            f"{cfg.method}: {loaded.trainable_parameters:,} of {loaded.total_parameters:,} parameters train; "
            f"{'endless stream' if data.train.size is None else f'{len(data.train)} samples'}; "
            f"longest sample {report.max_total} tokens; {precision_name(loaded.autocast_dtype)}")))

        def evaluate() -> EvalResult | None:
            result = None
            if eval_samples and self.dist.is_main:
                # Compiled blocks run eagerly here: generation's KV-cache shapes would recompile them at
                # every new cache length until dynamo's limit (slow, and more so on a large model).
                with torch.compiler.set_stance("force_eager") if loaded.compile else contextlib.nullcontext():
                    result = evaluate_samples(model, processor, eval_samples, step=state.step,
                                              metric=cfg.eval.metric, resolution=resolution,
                                              max_new_tokens=max_new, batch_size=cfg.eval.batch_size,
                                              device=self.device, autocast=loaded.autocast_dtype)
                    image_metrics: dict[str, float] = {}
                    if cfg.eval.image_use:
                        started = time.perf_counter()
                        image_metrics, _ = image_use(model, encoder, eval_samples, device=self.device,
                                                     autocast=loaded.autocast_dtype)
                        image_metrics["image_use_seconds"] = time.perf_counter() - started
                improved = state.best_score is None or result.score > state.best_score
                self.metrics.write({"kind": "eval", "step": state.step, "score": result.score,
                                    "metric": result.metric, **result.metrics, **image_metrics,
                                    "seconds": result.seconds, "examples": result.examples})
                if improved:
                    state.best_score, state.best_step = result.score, state.step
                    best = replace(contract, extra={**contract.extra, "step": state.step,
                                                    "score": {result.metric: result.score}})
                    ckpt.publish_model(model, processor, run / "best", best)
                self.emit(TrainEvent("eval", state.step, total, score=result.score,
                                     message=f"{result.metric} {result.score:.3f}"
                                             f"{' (best)' if improved else ''}"
                                             + (f"; own image lowers value loss by "
                                                f"{image_metrics['image_gain_values']:+.3f}"
                                                if "image_gain_values" in image_metrics else "")))
            self.dist.barrier()
            return result

        def save() -> Path | None:
            rng = self.dist.gather(ckpt.capture_rng())
            path = None
            if self.dist.is_main:
                path = ckpt.save_checkpoint(run, model=model, processor=processor,
                                            contract=replace(contract, extra={**contract.extra, "step": state.step}),
                                            optimizer=optimizer, scheduler=scheduler, state=state, rng_states=rng)
                ckpt.rotate_checkpoints(run, cfg.checkpoint.keep_last)
                plot_loss(run, self.metrics.rows(), metric=cfg.eval.metric)
                self.emit(TrainEvent("checkpoint", state.step, total, path=str(path)))
            self.dist.barrier()
            return path

        last_saved: Path | None = point.path if point else None
        window_time = window_samples = window_tokens = window_wait = 0.0
        window_grad_max = 0.0  # the largest gradient norm since the last log row: spikes between rows show
        totals_time = totals_samples = totals_tokens = 0.0
        last_loss: float | None = None
        batches = iter(loader)
        stopped = "completed"
        model.train()
        with _StopRequest() as stop:
            while state.step < total:
                if self.dist.any(stop.signum is not None, self.device):
                    stopped = signal.Signals(stop.signum).name if stop.signum is not None else "SIGTERM"
                    break
                started = time.perf_counter()
                micro = [next(batches) for _ in range(accum)]
                data_wait = time.perf_counter() - started
                answer_tokens = torch.tensor(float(sum(int((m["labels"][:, 1:] != -100).sum()) for m in micro)),
                                             device=self.device)
                step_tokens = self.dist.sum(answer_tokens)
                loss_sum = torch.zeros((), device=self.device)
                for i, mb in enumerate(micro):
                    mb = encoder.model_inputs({k: v.to(self.device, non_blocking=True) for k, v in mb.items()})
                    sync = (loss_model.no_sync() if self.dist.enabled and i < accum - 1
                            else contextlib.nullcontext())
                    with sync, autocast:
                        part, _ = loss_model(**mb)
                    (part * world / step_tokens).backward()
                    loss_sum += part.detach().float()
                loss = float(self.dist.sum(loss_sum) / step_tokens)
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, o.max_grad_norm))
                if not (math.isfinite(loss) and math.isfinite(grad_norm)):
                    self.metrics.write({"kind": "stopped", "step": state.step + 1, "loss": str(loss),
                                        "grad_norm": str(grad_norm)})
                    optimizer.zero_grad(set_to_none=True)
                    kept = ckpt.latest_checkpoint(run)
                    raise TrainingError(
                        f"non-finite {'loss' if not math.isfinite(loss) else 'gradient norm'} at step "
                        f"{state.step + 1} (loss {loss}, grad norm {grad_norm}): stopped without saving. "
                        f"Last good checkpoint: {kept or 'none'}. Lower optim.learning_rate or check the data."
                    )
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                elapsed = time.perf_counter() - started
                n_samples = per_step
                n_tokens = float(self.dist.sum(torch.tensor(
                    float(sum(int(m["attention_mask"].sum()) for m in micro)), device=self.device)))
                state.step += 1
                state.micro_step += accum
                state.samples_seen += n_samples
                state.tokens_seen += int(n_tokens)
                state.train_seconds += elapsed
                window_time += elapsed
                window_wait += data_wait
                window_grad_max = max(window_grad_max, grad_norm)
                window_samples += n_samples
                window_tokens += n_tokens
                last_loss = loss
                if state.step % cfg.log_every == 0 or state.step == total:
                    sps, tps = window_samples / window_time, window_tokens / window_time
                    lr = scheduler.get_last_lr()[0]
                    row = {"kind": "train", "step": state.step, "loss": loss, "lr": lr, "grad_norm": grad_norm,
                           "grad_norm_max": window_grad_max, "samples_per_s": sps, "tokens_per_s": tps,
                           "samples_seen": state.samples_seen,
                           "data_wait_share": window_wait / window_time}
                    if self.device.type == "cuda":
                        row["gpu_peak_gib"] = torch.cuda.max_memory_allocated(self.device) / 2**30
                    self.metrics.write(row)
                    self.emit(TrainEvent("step", state.step, total, loss=loss, lr=lr, samples_per_s=sps,
                                         tokens_per_s=tps))
                    totals_time += window_time
                    totals_samples += window_samples
                    totals_tokens += window_tokens
                    window_time = window_samples = window_tokens = window_wait = window_grad_max = 0.0
                if state.step == total:
                    break
                if cfg.eval.every_steps and state.step % cfg.eval.every_steps == 0:
                    evaluate()
                if cfg.checkpoint.every_steps and state.step % cfg.checkpoint.every_steps == 0:
                    last_saved = save()
            # Still under the stop request: a SIGTERM during the final evaluation or save (a batch
            # job's time limit) must not kill the run before the last steps are written.
            del batches
            final_dir = None
            if stopped == "completed":
                if self.dist.any(stop.signum is not None, self.device):
                    log.warning("stop requested after the last step: final evaluation skipped, saving")
                else:
                    evaluate()
            if last_saved is None or ckpt.checkpoint_dir(run, state.step) != last_saved:
                last_saved = save()
            if stopped == "completed" and self.dist.is_main:
                final_dir = ckpt.publish_model(model, processor, run / "final",
                                               replace(contract, extra={**contract.extra, "step": state.step}))
        if self.dist.is_main:
            plot_loss(run, self.metrics.rows(), metric=cfg.eval.metric)
        self.emit(TrainEvent("end", state.step, total, loss=last_loss, score=state.best_score, message=stopped))
        totals_time += window_time
        totals_samples += window_samples
        totals_tokens += window_tokens
        return TrainResult(
            run=run, steps=state.step, max_steps=total, stopped=stopped, final_loss=last_loss,
            best_score=state.best_score, best_step=state.best_step, metric=cfg.eval.metric,
            final_dir=final_dir, best_dir=run / "best" if state.best_step is not None else None,
            last_checkpoint=last_saved, resumed_from=point.path if point else None,
            seconds=state.train_seconds, samples_per_s=totals_samples / totals_time if totals_time else 0.0,
            tokens_per_s=totals_tokens / totals_time if totals_time else 0.0,
            trainable_parameters=loaded.trainable_parameters, total_parameters=loaded.total_parameters,
            preflight=report,
        )
