"""Round trip on the tiny model: `vlmocr train` → `vlmocr export` → reload equals what was trained."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vlmocr.contract import load_contract
from vlmocr.export.merge import ExportConfig, export_model
from vlmocr.export.verify import VerifyConfig

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
PROMPT = {"system": "Extract the manifest as JSON.", "question": "extract data in JSON format"}
NO_VLLM = VerifyConfig(vllm=False)


def train_run(base: Path, out: Path, **overrides: Any) -> Path:
    from vlmocr.train.config import load_config
    from vlmocr.train.trainer import train

    settings: dict[str, Any] = {
        "model": str(base), "out": str(out), "batch_size": 2, "max_steps": 6, "log_every": 1,
        "prompt": PROMPT, "data.synth": {"size": [320, 320], "augment": "none", "max_products": 1},
        "eval.n_samples": 0, "checkpoint.every_steps": 3, "optim.learning_rate": 5e-3,
    }
    settings.update(overrides)
    result = train(load_config(None, settings))
    assert result.stopped == "completed"
    return out


def inputs_for(model_dir: Path) -> Any:
    """A synthetic manifest page with the run's prompt, through the exported processor."""
    from transformers import AutoProcessor

    from vlmocr.data.synth import SynthConfig, iter_samples
    from vlmocr.images import resize_for_model

    contract = load_contract(model_dir)
    sample = next(iter_samples(SynthConfig(seed=7, size=(320, 320), augment="none"), split="test", limit=1))
    image = resize_for_model(sample.image.convert("RGB"), contract.resolution)
    processor = AutoProcessor.from_pretrained(model_dir)
    messages = [
        {"role": "system", "content": contract.prompt.system},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": contract.prompt.question}]},
    ]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return processor(text=[text], images=[image], return_tensors="pt")


def greedy(model: Any, inputs: Any, n: int = 12) -> list[int]:
    import torch

    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=n, do_sample=False)
    return out[0, inputs["input_ids"].shape[1]:].tolist()


def test_lora_run_exports_to_what_was_trained(tiny_model: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    run = train_run(tiny_model, tmp_path / "run")
    result = export_model(run, tmp_path / "export", ExportConfig(dtype="fp32", verification=NO_VLLM))
    assert result.verification.ok and result.source == (run / "final").resolve()

    contract = load_contract(result.path)
    assert contract.prompt.system == PROMPT["system"] and contract.base_model == str(tiny_model)
    assert contract.resolution == load_contract(run).resolution
    assert json.loads((result.path / "vlmocr.json").read_text())["extra"]["method"] == "lora"

    inputs = inputs_for(result.path)
    exported = AutoModelForImageTextToText.from_pretrained(result.path, dtype=torch.float32).eval()
    base = AutoModelForImageTextToText.from_pretrained(tiny_model, dtype=torch.float32).eval()
    with torch.no_grad():
        base_logits = base(**inputs).logits
    trained = PeftModel.from_pretrained(base, run / "final").eval()
    with torch.no_grad():
        got, want = exported(**inputs).logits, trained(**inputs).logits
    assert (got - want).abs().max() <= 1e-4
    assert (got - base_logits).abs().max() > 1e-2
    assert greedy(exported, inputs) == greedy(trained, inputs)

    # A complete intermediate checkpoint exports too.
    step = run / "checkpoints" / "step-000003"
    assert (step / "COMPLETE").is_file()
    checkpoint = export_model(step, tmp_path / "step3", ExportConfig(dtype="bf16", verification=NO_VLLM))
    assert checkpoint.verification.ok and checkpoint.source == step.resolve()


def test_full_run_exports_its_weights(tiny_model: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    run = train_run(tiny_model, tmp_path / "full", method="full", max_steps=3,
                     **{"optim.learning_rate": 1e-3, "checkpoint.every_steps": 0})
    result = export_model(run, tmp_path / "export", ExportConfig(dtype="fp32", verification=NO_VLLM))
    checks = {c.name: c.status for c in result.verification.checks}
    assert result.kind == "full" and checks["changed"] == "ok" and checks["logits"] == "ok"
    trained = {}
    for shard in sorted((run / "final").glob("*.safetensors")):
        trained.update(load_file(shard))
    exported = {}
    for name in result.weight_files:
        exported.update(load_file(result.path / name))
    assert trained.keys() == exported.keys()
    assert all(torch.equal(trained[k].float(), exported[k]) for k in trained)
