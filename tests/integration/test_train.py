"""Training on the tiny model (CPU): loss, LoRA scope, labels, pre-flight, resume, signals, NaN, QLoRA.

Torch runs single-threaded here: the model is tiny, and on a 2-core machine shared with
other processes multi-threaded kernels spend their time waiting for each other.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vlmocr.contract import load_contract
from vlmocr.errors import ConfigError, TrainingError
from vlmocr.train.checkpoint import COMPLETE, complete_checkpoints
from vlmocr.train.config import load_config

pytestmark = pytest.mark.timeout(600)
SHORT_PROMPT = {"system": "Extract the manifest as JSON.", "question": "extract data in JSON format"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def config(model: Path, out: Path, **overrides: Any) -> Any:
    base: dict[str, Any] = {
        "model": str(model), "out": str(out), "batch_size": 2, "max_steps": 4, "log_every": 1,
        "prompt": SHORT_PROMPT, "data.synth": {"size": [320, 320], "augment": "none", "max_products": 1},
        "eval.n_samples": 0, "checkpoint.every_steps": 0, "optim.learning_rate": 5e-3,
        # Exact-math comparisons below; `auto` would pick bf16 on a CPU with bf16 in hardware.
        "precision": "fp32",
    }
    base.update(overrides)
    return load_config(None, base)


def losses(run: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if r["kind"] == "train"}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_lora_loss_falls_only_adapters_train_best_by_score(tiny_model: Path, tmp_path: Path) -> None:
    from safetensors import safe_open

    from vlmocr.train.trainer import train

    base_hash = sha(tiny_model / "model.safetensors")
    run = tmp_path / "run"
    events: list[Any] = []
    result = train(config(tiny_model, run, max_steps=40, **{"eval.n_samples": 2, "eval.every_steps": 20,
                                                             "eval.max_new_tokens": 24}),
                   progress=events.append)
    assert result.stopped == "completed" and result.steps == 40
    loss = losses(run)
    assert sorted(loss) == list(range(1, 41))
    first, last = sum(loss[s] for s in range(1, 6)) / 5, sum(loss[s] for s in range(36, 41)) / 5
    assert last < first - 0.3, (first, last)

    # Only LoRA adapters on the language model train; vision tower, merger and base stay as they were.
    assert result.trainable_parameters < result.total_parameters / 5
    assert sha(tiny_model / "model.safetensors") == base_hash
    with safe_open(run / "final" / "adapter_model.safetensors", "pt") as fh:
        keys = list(fh.keys())
        b_norm = sum(float(fh.get_tensor(k).abs().sum()) for k in keys if "lora_B" in k)
    assert keys and all("lora_" in k and "language_model" in k and "visual" not in k for k in keys)
    assert b_norm > 0  # lora_B starts at zero: the adapters moved

    # Run folder: resolved config, provenance, contract, curve; best chosen by eval score.
    for name in ("config.yaml", "provenance.json", "vlmocr.json", "loss.png", "metrics.jsonl"):
        assert (run / name).is_file(), name
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["liger"] is False and prov["compile"] is False  # CPU: neither switch turns itself on
    assert prov["vision_attention"] == "per_window"  # CPU: transformers' own paths
    contract = load_contract(run)
    assert contract.prompt.question == SHORT_PROMPT["question"] and contract.base_model == str(tiny_model)
    assert contract.extra["method"] == "lora" and contract.resolution == load_contract(tiny_model).resolution
    evals = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    assert [e["step"] for e in evals] == [20, 40]
    for e in evals:  # the in-run evaluation also reports how much the image lowers the answer's loss
        assert all(math.isfinite(e[k]) for k in ("image_loss_own", "image_loss_other", "image_gain",
                                                 "image_gain_values", "image_gain_structure"))
        assert 0 <= e["image_own_lower"] <= 1 and e["image_use_seconds"] > 0
    best_step = max(evals, key=lambda e: (e["score"], -e["step"]))["step"]
    assert result.best_step == best_step == load_contract(run / "best").extra["step"]
    for folder in ("best", "final"):
        for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "chat_template.jinja",
                     "preprocessor_config.json", "vlmocr.json"):
            assert (run / folder / name).is_file(), (folder, name)
    assert [e.kind for e in events][0] == "start" and events[-1].kind == "end"
    assert all(e.samples_per_s > 0 and e.tokens_per_s > 0 for e in events if e.kind == "step")


def test_label_masking_on_a_real_sample(tiny_model: Path, tmp_path: Path) -> None:
    from PIL import Image
    from transformers import AutoProcessor

    from tests.unit.conftest import SEED_IMAGE, SEED_SUFFIX
    from vlmocr.images import Resolution
    from vlmocr.schema import dumps_target
    from vlmocr.train.collate import IGNORE_INDEX, SampleEncoder, chat_messages, load_image
    from vlmocr.train.config import DataConfig
    from vlmocr.train.data import load_data

    root = tmp_path / "pallet"
    (root / "train").mkdir(parents=True)
    Image.new("RGB", (768, 768), (240, 240, 230)).save(root / "train" / SEED_IMAGE)
    line = json.dumps({"image": SEED_IMAGE, "prefix": "<JSON>", "suffix": SEED_SUFFIX})
    (root / "train" / "annotations.jsonl").write_text(line + "\n")
    processor = AutoProcessor.from_pretrained(tiny_model)
    resolution = Resolution(min_pixels=16 * 784, max_pixels=64 * 784)
    encoder = SampleEncoder(processor, resolution, max_length=4096)
    tok = processor.tokenizer

    for fmt, expected in (("compact", dumps_target(json.loads(SEED_SUFFIX))), ("verbatim", SEED_SUFFIX)):
        sample = load_data(DataConfig(dataset=str(root), target_format=fmt), None, want_valid=False).train.get(0)
        enc = encoder.encode(sample)
        ids, labels = enc["input_ids"].tolist(), enc["labels"].tolist()
        first = next(i for i, v in enumerate(labels) if v != IGNORE_INDEX)
        assert all(v == IGNORE_INDEX for v in labels[:first])
        assert labels[first:] == ids[first:]  # every answer token is trained, aligned with the input
        assert tok.decode(labels[first:]) == expected + "<|im_end|>"
        image_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
        assert ids.count(image_id) == resolution.visual_tokens(768, 768) > 16
        assert image_id not in labels and tok.convert_tokens_to_ids("<|im_start|>") not in labels[first:]
        # The sequence is exactly the chat template's rendering of the whole conversation.
        full = processor.apply_chat_template(
            [*chat_messages(sample.system, sample.question),
             {"role": "assistant", "content": [{"type": "text", "text": expected}]}], tokenize=False)
        ref = processor(text=[full], images=[load_image(sample, resolution)], return_tensors="pt")["input_ids"][0]
        assert ids == ref.tolist()[: len(ids)] and tok.decode(ref.tolist()[len(ids):]) == "\n"
        assert tok.decode(ids[:first]).endswith("<|im_start|>assistant\n")


def test_preflight_fails_with_the_numbers_before_writing(tiny_model: Path, tmp_path: Path) -> None:
    from vlmocr.train.trainer import train

    run = tmp_path / "run"
    with pytest.raises(TrainingError) as info:
        train(config(tiny_model, run, max_length=120))
    message = str(info.value)
    assert "pre-flight" in message and "max_length is 120" in message
    assert "image 64 (the largest image the resolution contract allows)" in message
    assert "prompt" in message and "answer" in message and "truncated" in message
    assert not run.exists()


def test_precision_auto_on_cpu_follows_the_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from vlmocr.train import modeling

    cpu = torch.device("cpu")
    monkeypatch.setattr(modeling, "cpu_has_native_bf16", lambda: True)
    assert modeling.resolve_precision("auto", cpu) == (torch.bfloat16, torch.bfloat16)
    monkeypatch.setattr(modeling, "cpu_has_native_bf16", lambda: False)
    assert modeling.resolve_precision("auto", cpu) == (None, torch.float32)
    assert modeling.resolve_precision("bf16", cpu) == (torch.bfloat16, torch.bfloat16)  # asked for: allowed
    with pytest.raises(ConfigError, match="fp16 is not supported"):
        modeling.resolve_precision("fp16", cpu)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_bf16_on_cpu_trains_like_fp32_and_saves_fp32(tiny_model: Path, tmp_path: Path, method: str) -> None:
    """bf16 autocast on CPU: the same data gives losses within bf16 rounding of fp32's; what trains
    (LoRA adapters, or the full model's master weights) stays fp32 and is saved as fp32."""
    from safetensors import safe_open

    from vlmocr.train.trainer import train

    runs = {p: tmp_path / p for p in ("fp32", "bf16")}
    for precision, run in runs.items():
        result = train(config(tiny_model, run, method=method, max_steps=3, precision=precision,
                              **{"lora.dropout": 0.0, "optim.learning_rate": 1e-3}))
        assert result.stopped == "completed" and result.steps == 3
    fp32, bf16 = losses(runs["fp32"]), losses(runs["bf16"])
    assert sorted(bf16) == [1, 2, 3]
    for step in (1, 2, 3):
        assert math.isclose(fp32[step], bf16[step], rel_tol=0.03), (step, fp32[step], bf16[step])
    assert any(fp32[s] != bf16[s] for s in (1, 2, 3))  # it did run in bf16
    name = "adapter_model.safetensors" if method == "lora" else "model.safetensors"
    with safe_open(runs["bf16"] / "final" / name, "pt") as fh:
        dtypes = {fh.get_slice(k).get_dtype() for k in fh.keys()}
    assert dtypes == {"F32"}, dtypes
    for precision, run in runs.items():  # what the run computed in is on record
        computed = json.loads((run / "provenance.json").read_text())["precision"]
        assert computed == ("fp32" if precision == "fp32" else "bfloat16 autocast"), computed


def test_qlora_without_cuda_is_a_clear_error(tiny_model: Path, tmp_path: Path) -> None:
    from vlmocr.train.trainer import train

    with pytest.raises(ConfigError, match="qlora needs a CUDA GPU"):
        train(config(tiny_model, tmp_path / "run", method="qlora"))
    assert not (tmp_path / "run").exists()


def test_sigterm_saves_and_resume_matches_an_uninterrupted_run(tiny_model: Path, tmp_path: Path) -> None:
    from vlmocr.train.trainer import train

    # Dropout on, so the resumed run matches only if the RNG state is restored too.
    drop = {"checkpoint.every_steps": 4, "lora.dropout": 0.1}
    straight = train(config(tiny_model, tmp_path / "a", max_steps=8, **drop))
    assert straight.stopped == "completed"

    def stop_at_3(event: Any) -> None:
        if event.kind == "step" and event.step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    run = tmp_path / "b"
    first = train(config(tiny_model, run, max_steps=8, **drop), progress=stop_at_3)
    assert first.stopped == "SIGTERM" and first.steps == 3
    assert [p.name for p in complete_checkpoints(run)] == ["step-000003"] and not (run / "final").exists()
    with pytest.raises(ConfigError, match="--resume"):
        train(config(tiny_model, run, max_steps=8))
    with pytest.raises(ConfigError, match="trained with method lora"):
        train(config(tiny_model, run, max_steps=8, method="full"), resume=True)
    second = train(config(tiny_model, run, max_steps=8, **drop), resume=True)
    assert second.resumed_from == run / "checkpoints" / "step-000003" and second.steps == 8
    a, b = losses(tmp_path / "a"), losses(run)
    assert sorted(b) == list(range(1, 9))  # steps continue, none repeated in the log
    for step in range(1, 9):  # same seed, same losses; after resume too
        assert math.isclose(a[step], b[step], rel_tol=1e-6, abs_tol=1e-6), (step, a[step], b[step])
    assert (run / "final" / "adapter_model.safetensors").is_file()


def test_sigterm_during_the_final_evaluation_still_saves_the_last_step(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A time limit (`timeout`, a batch scheduler) that strikes after the last step, while the final
    evaluation runs, must leave the finished weights: a checkpoint of the last step and RUN/final."""
    from vlmocr.train import trainer

    real = trainer.evaluate_samples

    def evaluate_then_term(*args: Any, **kwargs: Any) -> Any:
        if kwargs["step"] == 4:  # the final evaluation (max_steps 4)
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "evaluate_samples", evaluate_then_term)
    outside: list[int] = []  # the handler the trainer restores when it is done (here: not the default)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: outside.append(signum))
    try:
        run = tmp_path / "run"
        result = trainer.train(config(tiny_model, run, max_steps=4, **{
            "eval.n_samples": 1, "eval.every_steps": 0, "eval.max_new_tokens": 8}))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert outside == []  # the trainer's handler took the signal, not the process's default one
    assert result.steps == 4 and result.stopped == "completed"
    assert [p.name for p in complete_checkpoints(run)] == ["step-000004"]
    assert (run / "final" / "adapter_model.safetensors").is_file()


def test_sigterm_at_the_last_step_skips_the_final_evaluation_and_saves(tiny_model: Path, tmp_path: Path) -> None:
    from vlmocr.train.trainer import train

    def term_at_last_step(event: Any) -> None:
        if event.kind == "step" and event.step == 4:
            os.kill(os.getpid(), signal.SIGTERM)

    run = tmp_path / "run"
    result = train(config(tiny_model, run, max_steps=4, **{
        "eval.n_samples": 1, "eval.every_steps": 0, "eval.max_new_tokens": 8}), progress=term_at_last_step)
    assert result.steps == 4 and result.stopped == "completed"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert not [r for r in rows if r["kind"] == "eval"]  # the stop came first: no final evaluation
    assert [p.name for p in complete_checkpoints(run)] == ["step-000004"]
    assert (run / "final" / "adapter_model.safetensors").is_file()


def test_log_rows_carry_the_largest_gradient_norm_since_the_row_before(tiny_model: Path, tmp_path: Path) -> None:
    """A spike between two log rows must show: `grad_norm_max` is the window's largest norm."""
    from vlmocr.train.trainer import train

    def norms(run: Path) -> dict[int, tuple[float, float]]:
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: (r["grad_norm"], r["grad_norm_max"]) for r in rows if r["kind"] == "train"}

    every = norms((train(config(tiny_model, tmp_path / "a", max_steps=6, log_every=1))).run)
    sparse = norms((train(config(tiny_model, tmp_path / "b", max_steps=6, log_every=3))).run)
    assert sorted(every) == list(range(1, 7)) and sorted(sparse) == [3, 6]
    assert all(math.isclose(norm, peak) for norm, peak in every.values())  # a one-step window
    for end in (3, 6):  # same seed, same steps: the sparse run's rows hold the max of the three steps
        expected = max(every[step][0] for step in range(end - 2, end + 1))
        assert math.isclose(sparse[end][1], expected, rel_tol=1e-6), (end, sparse[end], every)
        assert math.isclose(sparse[end][0], every[end][0], rel_tol=1e-6)


def test_nan_loss_stops_without_overwriting_the_last_checkpoint(tiny_model: Path, tmp_path: Path) -> None:
    from vlmocr.train.trainer import train

    run = tmp_path / "run"
    cfg = config(tiny_model, run, max_steps=6, **{
        "optim.learning_rate": 1e30, "optim.warmup_steps": 0, "optim.scheduler": "constant",
        "checkpoint.every_steps": 1})
    with pytest.raises(TrainingError, match="non-finite loss at step 2") as info:
        train(cfg)
    assert "step-000001" in str(info.value)
    saved = complete_checkpoints(run)
    assert [p.name for p in saved] == ["step-000001"] and (saved[0] / COMPLETE).is_file()
    assert not (run / "final").exists()
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["kind"] == "stopped" and rows[-1]["step"] == 2
    assert math.isfinite(rows[0]["loss"])


def test_full_fine_tune_from_random_init_trains_vision_too(tiny_model: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText

    from vlmocr.train.trainer import train

    run = tmp_path / "full"
    result = train(config(tiny_model, run, method="full", max_steps=3, **{"optim.learning_rate": 1e-3}))
    assert result.trainable_parameters == result.total_parameters
    before, after = load_file(tiny_model / "model.safetensors"), load_file(run / "final" / "model.safetensors")
    assert before.keys() == after.keys()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert {"visual", "model"} <= changed
    model = AutoModelForImageTextToText.from_pretrained(run / "final")
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert load_contract(run / "final").extra["method"] == "full"


def test_a_mixed_read_task_trains_beside_extraction_and_the_contract_stays(tiny_model: Path, tmp_path: Path) -> None:
    import yaml

    from vlmocr.train.trainer import train

    run = tmp_path / "mix"
    read_prompt = {"system": "You read documents.", "question": "Read all the text on the page."}
    mix = {"share": 0.5, "synth": {"task": "read", "crop": [320, 160]}, "prompt": read_prompt}
    result = train(config(tiny_model, run, max_steps=3, **{"data.mix": mix, "data.num_workers": 1}))
    assert result.stopped == "completed" and result.steps == 3
    assert all(math.isfinite(loss) for loss in losses(run).values())
    contract = load_contract(run / "final")  # served with the main stream's prompt, not the read task's
    assert contract.prompt.question == SHORT_PROMPT["question"]
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["mix"] == mix


@pytest.mark.parametrize(
    "lever",
    [{"gradient_checkpointing": True}, {"loss_chunk_size": 0}, {"loss_chunk_size": 7},
     {"batch_size": 1, "grad_accum": 2}],
    ids=["grad-checkpointing", "full-logits-loss", "small-loss-chunks", "grad-accumulation"],
)
def test_speed_levers_do_not_change_the_losses(tiny_model: Path, tmp_path: Path, lever: dict[str, Any]) -> None:
    """Gradient checkpointing, chunked loss and accumulation are the same math as the plain step."""
    from vlmocr.train.trainer import train

    plain_run, lever_run = tmp_path / "plain", tmp_path / "lever"
    train(config(tiny_model, plain_run, max_steps=3, **{"lora.dropout": 0.0}))
    train(config(tiny_model, lever_run, max_steps=3, **{"lora.dropout": 0.0}, **lever))
    plain, other = losses(plain_run), losses(lever_run)
    assert sorted(other) == [1, 2, 3]
    for step in (1, 2, 3):
        assert math.isclose(plain[step], other[step], rel_tol=1e-5), (step, plain[step], other[step])


def test_compact_pixels_train_as_the_processors_pixels(tiny_model: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The trainer's compact uint8 pixels (expanded on the device) give the losses of the processor's."""
    import torch

    from vlmocr.train.collate import QwenPixels
    from vlmocr.train.trainer import train

    expanded: list[str] = []
    real_expand = QwenPixels.expand

    def counting_expand(self: QwenPixels, pixel_values: Any) -> Any:
        expanded.append(str(pixel_values.dtype))
        return real_expand(self, pixel_values)

    monkeypatch.setattr(QwenPixels, "expand", counting_expand)
    compact_run, processor_run = tmp_path / "compact", tmp_path / "processor"
    train_args = {"max_steps": 3, "lora.dropout": 0.0}
    train(config(tiny_model, compact_run, **train_args))
    assert expanded and set(expanded) == {str(torch.uint8)}  # every training batch came compact
    expanded.clear()
    train(config(tiny_model, processor_run, **train_args, **{"data.compact_pixels": False}))
    assert not expanded  # the processor's pixels, untouched
    compact, processor = losses(compact_run), losses(processor_run)
    assert sorted(compact) == sorted(processor) == [1, 2, 3]
    for step in (1, 2, 3):
        assert math.isclose(compact[step], processor[step], rel_tol=1e-5), (step, compact[step], processor[step])


def test_gradient_checkpointing_covers_the_language_model_only(tiny_model: Path, tmp_path: Path) -> None:
    import torch

    from vlmocr.train.modeling import hf_model_of, language_model_of, load_for_training, load_processor

    cfg = config(tiny_model, tmp_path / "run", gradient_checkpointing=True)
    processor, resolution = load_processor(cfg)
    loaded = load_for_training(cfg, processor, resolution, device=torch.device("cpu"))
    inner = hf_model_of(loaded.model)
    _, lm = language_model_of(inner)
    assert lm.gradient_checkpointing and all(layer.gradient_checkpointing for layer in lm.layers)
    assert not any(getattr(block, "gradient_checkpointing", False) for block in inner.model.visual.blocks)
    assert not any(p.requires_grad for p in inner.model.visual.parameters())


def test_training_batches_carry_the_mrope_positions_the_model_serves_with(tiny_model: Path) -> None:
    # The collator's position ids equal Qwen2.5-VL's own get_rope_index (the positions transformers
    # generate and vLLM use), padding included, and the training forward sees them: without them
    # the model would train on 1-D positions (transformers 5 needs mm_token_type_ids for M-RoPE).
    import inspect

    import torch
    from PIL import Image
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from vlmocr.images import Resolution
    from vlmocr.train.collate import SampleEncoder, pad_batch
    from vlmocr.train.data import TrainSample
    from vlmocr.train.modeling import make_loss_model

    processor = AutoProcessor.from_pretrained(tiny_model)
    encoder = SampleEncoder(processor, Resolution(min_pixels=16 * 784, max_pixels=64 * 784), max_length=4096)
    samples = [TrainSample(Image.new("RGB", size, (230, 230, 220)), "Read it.", "JSON", answer, None, f"s{i}")
               for i, (size, answer) in enumerate([((224, 448), '{"a":"1"}'), ((448, 224), '{"route":"R 12","b":"2"}'),
                                                  ((300, 300), '{}')])]
    batch = pad_batch([encoder.encode(s) for s in samples], encoder.pad_id)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model).eval()
    mm_types = (batch["input_ids"] == encoder.image_token_id).int()
    rope_args = {"image_grid_thw": batch["image_grid_thw"], "attention_mask": batch["attention_mask"]}
    if "mm_token_type_ids" in inspect.signature(model.model.get_rope_index).parameters:
        rope_args["mm_token_type_ids"] = mm_types
    expected, _ = model.model.get_rope_index(batch["input_ids"], **rope_args)
    assert batch["position_ids"].shape == expected.shape == (3, 3, batch["input_ids"].shape[1])
    assert torch.equal(batch["position_ids"], expected)
    # image rows and columns differ (a tall and a wide page), text runs on after the image
    assert not torch.equal(batch["position_ids"][1], batch["position_ids"][2])

    loss_model = make_loss_model(model, chunk_size=0)
    plain = {k: v for k, v in batch.items() if k != "position_ids"}
    with torch.no_grad():
        ours, _ = loss_model(**batch)
        one_d, _ = loss_model(**plain)  # what training computed without position ids
        served = model(**{k: v for k, v in plain.items() if k != "labels"}, mm_token_type_ids=mm_types,
                       labels=batch["labels"]) if "mm_token_type_ids" in rope_args else None
    assert not torch.isclose(ours, one_d, rtol=0, atol=1e-6)
    if served is not None:
        n = (batch["labels"][:, 1:] != -100).sum()
        assert torch.isclose(ours, served.loss.float() * n, rtol=1e-5)


def digit_pages(folder: Path, n: int, *, seed: int = 0) -> None:
    """A Roboflow split of `n` white pages with one large random digit each: the answer is in the image only."""
    import random

    from PIL import Image, ImageDraw

    from vlmocr.data.synth.fonts import get_font

    rng = random.Random(seed)
    folder.mkdir(parents=True)
    lines = []
    for i in range(n):
        digit = str(rng.randrange(10))
        page = Image.new("RGB", (224, 112), "white")
        ImageDraw.Draw(page).text((rng.randint(20, 150), rng.randint(0, 20)), digit, font=get_font("sans", 80),
                                  fill=(0, 0, 0))
        page.save(folder / f"{i}.png")
        lines.append(json.dumps({"image": f"{i}.png", "prefix": "q", "suffix": json.dumps({"code": digit})}))
    (folder / "annotations.jsonl").write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_a_model_trained_from_scratch_learns_from_its_images(tiny_model: Path, tmp_path: Path) -> None:
    # 16 pages with the same question whose answers differ only by the digit drawn on them: the
    # answer loss can fall below chance (ln 10 over the answer's tokens) only through the image.
    # It checks the whole path from processor to loss (pixels, the vision tower's gradients,
    # image tokens, M-RoPE positions) and the built model's pixel normalization: with the
    # documents' statistics the loss was 0.016-0.011 at steps 100-120 (chance 0.256); a model
    # built with CLIP's, otherwise the same, was still at chance there (0.24) and read nothing
    # in benchmarks/probe_reading_cpu.py.
    from vlmocr.train.trainer import train

    digit_pages(tmp_path / "data" / "train", 16)
    digit_pages(tmp_path / "data" / "valid", 8)  # the first 8 training pages again
    run = tmp_path / "run"
    train(config(tiny_model, run, method="full", batch_size=16, max_steps=120, log_every=10,
                 data={"dataset": str(tmp_path / "data"), "target_format": "verbatim"},
                 **{"optim.learning_rate": 1e-3, "optim.warmup_steps": 10, "optim.scheduler": "constant",
                    "max_length": 256, "eval.every_steps": 0, "eval.n_samples": 8, "eval.batch_size": 8}))
    answer_tokens = len(load_tokenizer(tiny_model)(json.dumps({"code": "7"}), add_special_tokens=False).input_ids) + 1
    chance = math.log(10) / answer_tokens  # a model that knows the format but not the digit
    final = list(losses(run).values())[-3:]
    assert max(final) < chance / 3, (final, chance)
    # The in-run image-use check sees it: with another page's image the digit's loss rises
    # (value tokens), while the tokens around it, the same on every page, do not care.
    (last,) = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    assert last["image_gain_values"] > 1.0, last
    assert abs(last["image_gain_structure"]) < 0.2, last


def load_tokenizer(model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model)


@pytest.mark.parametrize("automatic", [True, False])
def test_a_block_that_fails_to_compile_runs_uncompiled_only_when_compile_was_automatic(automatic: bool) -> None:
    import torch

    from vlmocr.train.modeling import compile_blocks

    def broken_backend(graph: Any, example_inputs: Any) -> Any:
        raise RuntimeError("this backend cannot compile")

    class Block(torch.nn.Module):  # defined outside torch, as a model's decoder layer is: dynamo traces it
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(8, 8)

        def forward(self, x: Any) -> Any:
            return torch.nn.functional.gelu(self.proj(x)) + x

    torch.manual_seed(0)
    layers = torch.nn.ModuleList([Block() for _ in range(2)])
    x = torch.randn(3, 8)
    expected = layers[1](layers[0](x))
    saved = torch._dynamo.config.suppress_errors
    try:
        torch._dynamo.reset()
        compile_blocks(layers, automatic=automatic, backend=broken_backend)
        if automatic:  # the run goes on with the blocks' own forward
            assert torch.equal(layers[1](layers[0](x)), expected)
        else:  # compile: true asked for it: the error stops the run
            with pytest.raises(Exception, match="this backend cannot compile"):
                layers[0](x)
    finally:
        torch._dynamo.config.suppress_errors = saved
        torch._dynamo.reset()


def test_compiled_training_matches_eager_and_its_evaluation_does_not_recompile(tiny_model: Path,
                                                                              tmp_path: Path) -> None:
    """compile: true is the same math; the in-run evaluation (generation with a KV cache) runs the
    compiled blocks eagerly instead of recompiling them for every cache length."""
    import torch

    from vlmocr.train.trainer import train

    common = {"max_steps": 2, "lora.dropout": 0.0, "eval.every_steps": 2, "eval.max_new_tokens": 16}
    train(config(tiny_model, tmp_path / "eager", **common, **{"eval.n_samples": 2}))
    counters = torch._dynamo.utils.counters
    torch._dynamo.reset()
    counters.clear()
    train(config(tiny_model, tmp_path / "plain", compile=True, **common, **{"eval.n_samples": 0}))
    graphs_training = counters["stats"]["unique_graphs"]
    torch._dynamo.reset()
    counters.clear()
    train(config(tiny_model, tmp_path / "evaluated", compile=True, **common, **{"eval.n_samples": 2}))
    graphs_with_eval = counters["stats"]["unique_graphs"]
    torch._dynamo.reset()

    assert graphs_training > 0  # the blocks were compiled
    assert graphs_with_eval == graphs_training  # generation compiled nothing more
    eager, compiled = losses(tmp_path / "eager"), losses(tmp_path / "evaluated")
    assert sorted(compiled) == [1, 2]
    for step in (1, 2):
        assert math.isclose(eager[step], compiled[step], rel_tol=1e-4), (step, eager[step], compiled[step])
    assert json.loads((tmp_path / "evaluated" / "provenance.json").read_text())["compile"] is True
    evals = [json.loads(line) for line in (tmp_path / "evaluated" / "metrics.jsonl").read_text().splitlines()
             if '"eval"' in line]
    assert [e["step"] for e in evals] == [2]


@pytest.mark.parametrize("size", [(320, 320), (448, 224), (250, 610)])
def test_compact_pixels_expand_to_the_processors_pixels(tiny_model: Path, size: tuple[int, int]) -> None:
    """Compact pixels (QwenPixels: uint8 patches, expanded on the device) give what the processor gives."""
    import torch
    from PIL import Image
    from transformers import AutoProcessor

    from vlmocr.train.collate import QwenPixels, SampleEncoder, load_image
    from vlmocr.train.data import TrainSample

    processor = AutoProcessor.from_pretrained(tiny_model)
    resolution = load_contract(tiny_model).resolution
    compact = SampleEncoder(processor, resolution, max_length=4096, compact_pixels=True)
    plain = SampleEncoder(processor, resolution, max_length=4096)
    assert isinstance(compact.pixels, QwenPixels) and plain.pixels is None
    # a page with structure in every channel, so a wrong patch order or channel mix shows
    noise = torch.Generator().manual_seed(sum(size))
    pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=noise, dtype=torch.uint8).numpy()
    sample = TrainSample(image=Image.fromarray(pixels), system="s", question="q", answer='{"a":1}',
                         gold={"a": 1}, source="test")
    assert compact.pixels.encode("x<|image_pad|>y", load_image(sample, resolution)) is not None  # no fallback
    c, b = compact.encode(sample), plain.encode(sample)
    assert c.keys() == b.keys()
    for key in ("input_ids", "labels", "image_grid_thw", "position_ids"):
        assert torch.equal(c[key], b[key]), key
    # 1/8 of the bytes: uint8 and one temporal frame
    assert c["pixel_values"].dtype == torch.uint8
    assert c["pixel_values"].numel() * c["pixel_values"].element_size() * 8 == b["pixel_values"].numel() * 4
    expanded = compact.model_inputs(c)["pixel_values"]
    assert expanded.dtype == torch.float32 and expanded.shape == b["pixel_values"].shape
    assert torch.allclose(expanded, b["pixel_values"], rtol=0, atol=1e-5)
    assert plain.model_inputs(b)["pixel_values"] is b["pixel_values"]  # float pixels pass through
    # an image the contract did not resize (sides not a multiple of 28) is not cut
    assert compact.pixels.patches(Image.new("RGB", (300, 300))) is None
