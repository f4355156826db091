"""Models built offline load in transformers like a hub Qwen2.5-VL and honour the contracts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vlmocr.contract import load_contract
from vlmocr.errors import ConfigError
from vlmocr.models.tokenizer import SPECIAL_TOKENS


def _messages() -> list[dict]:
    return [
        {"role": "system", "content": [{"type": "text", "text": "sys"}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "extract data in JSON format"}]},
    ]


def test_tiny_model_loads_and_generates(tiny_model: Path) -> None:
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model).eval()
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    n_params = sum(p.numel() for p in model.parameters())
    assert 1_000_000 < n_params < 3_000_000

    tok = processor.tokenizer
    cfg = model.config
    # Config token ids are the tokenizer's (never Qwen's hard-coded 151xxx).
    assert cfg.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    assert cfg.video_token_id == tok.convert_tokens_to_ids("<|video_pad|>")
    assert cfg.vision_start_token_id == tok.convert_tokens_to_ids("<|vision_start|>")
    assert cfg.vision_end_token_id == tok.convert_tokens_to_ids("<|vision_end|>")
    assert cfg.text_config.eos_token_id == tok.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    assert cfg.text_config.vocab_size == len(tok)
    # Every Qwen2.5 special token exists and is one token.
    for token in SPECIAL_TOKENS:
        assert len(tok(token, add_special_tokens=False).input_ids) == 1, token

    # The processor enforces the resolution contract stored in vlmocr.json.
    contract = load_contract(tiny_model)
    assert contract.base_model is None
    ip = processor.image_processor
    assert (ip.size["shortest_edge"], ip.size["longest_edge"]) == (
        contract.resolution.min_pixels,
        contract.resolution.max_pixels,
    )
    pre = json.loads((tiny_model / "preprocessor_config.json").read_text())
    assert (pre["min_pixels"], pre["max_pixels"]) == (contract.resolution.min_pixels, contract.resolution.max_pixels)

    text = processor.apply_chat_template(_messages(), add_generation_prompt=True)
    assert "<|vision_start|><|image_pad|><|vision_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
    image = Image.new("RGB", (900, 1200), "white")  # larger than max_pixels: must be scaled down
    inputs = processor(text=[text], images=[image], return_tensors="pt")
    n_image_tokens = int((inputs["input_ids"] == cfg.image_token_id).sum())
    assert n_image_tokens == contract.resolution.visual_tokens(900, 1200)
    assert n_image_tokens <= contract.resolution.max_visual_tokens
    with torch.no_grad():
        a = model.generate(**inputs, max_new_tokens=8, do_sample=False)
        b = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert a.shape[1] > inputs["input_ids"].shape[1]
    assert torch.equal(a, b)


def test_build_refuses_to_overwrite(tmp_path: Path) -> None:
    from vlmocr.models.build import build_model

    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        build_model(out, "tiny")
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(ConfigError, match="unknown model size"):
        build_model(tmp_path / "x", "huge")


@pytest.mark.slow
def test_cli_builds_small_model(tmp_path: Path) -> None:
    out = tmp_path / "small"
    result = subprocess.run(
        [sys.executable, "-m", "vlmocr.cli.app", "model", "build", "--size", "small", "--out", str(out),
         "--max-pixels", str(512 * 28 * 28)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["Qwen2_5_VLForConditionalGeneration"]
    from safetensors import safe_open

    with safe_open(out / "model.safetensors", "pt") as fh:
        n_params = sum(_numel(fh.get_slice(k).get_shape()) for k in fh.keys())
    assert 10_000_000 <= n_params <= 40_000_000
    contract = load_contract(out)
    assert contract.resolution.max_pixels == 512 * 28 * 28
    assert contract.extra["built"]["size"] == "small"
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        assert (out / name).is_file(), name
    # A second build into the same folder is refused with exit code 2 and the files stay.
    again = subprocess.run(
        [sys.executable, "-m", "vlmocr.cli.app", "model", "build", "--size", "tiny", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert again.returncode == 2 and "not empty" in again.stderr
    assert json.loads((out / "config.json").read_text()) == config


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def test_built_sizes_normalize_pixels_with_document_statistics(tiny_model: Path, tmp_path: Path) -> None:
    # A white page must not be a large constant input to a tower trained from scratch: under
    # CLIP's statistics white is ≈ +1.9 in every channel, under the documents' ≈ +0.8.
    import numpy as np
    from PIL import Image
    from transformers import AutoProcessor

    from vlmocr.models.build import PIXEL_NORMS, build_processor

    pre = json.loads((tiny_model / "preprocessor_config.json").read_text())
    assert (tuple(pre["image_mean"]), tuple(pre["image_std"])) == PIXEL_NORMS["documents"]
    assert load_contract(tiny_model).extra["built"]["pixel_norm"] == "documents"

    page = Image.new("RGB", (224, 112), "white")
    processor = AutoProcessor.from_pretrained(tiny_model)
    white = processor.image_processor(images=[page], return_tensors="np")["pixel_values"]
    mean, std = (np.array(v) for v in PIXEL_NORMS["documents"])
    assert np.allclose(white.reshape(-1, 3, 2 * 14 * 14), ((1 - mean) / std)[None, :, None], atol=0.02)

    clip = build_processor(processor.tokenizer, load_contract(tiny_model).resolution, "clip")
    white_clip = clip.image_processor(images=[page], return_tensors="np")["pixel_values"]
    assert white_clip.mean() > 1.8 > 1.0 > white.mean()
    with pytest.raises(ConfigError, match="pixel normalization"):
        build_processor(processor.tokenizer, load_contract(tiny_model).resolution, "imagenet")
