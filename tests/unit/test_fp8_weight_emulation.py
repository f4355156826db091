"""benchmarks/fp8_weight_emulation.py: linear weights become FP8 values with vLLM's scale groups."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import benchmark_module

torch = pytest.importorskip("torch")


def test_linear_weights_become_e4m3_values_and_merged_projections_share_a_scale(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    fp8 = benchmark_module("fp8_weight_emulation")
    gen = torch.Generator().manual_seed(0)
    weights = {
        "model.layers.0.self_attn.q_proj.weight": torch.randn(8, 8, generator=gen),
        "model.layers.0.self_attn.k_proj.weight": torch.randn(4, 8, generator=gen) * 10,  # the group's largest
        "model.layers.0.self_attn.v_proj.weight": torch.randn(4, 8, generator=gen),
        "model.layers.0.mlp.down_proj.weight": torch.randn(8, 16, generator=gen),
        "model.embed_tokens.weight": torch.randn(32, 8, generator=gen),
        "model.layers.0.input_layernorm.weight": torch.randn(8, generator=gen),
    }
    model = tmp_path / "model"
    model.mkdir()
    save_file({k: v.to(torch.bfloat16) for k, v in weights.items()}, model / "model.safetensors")
    (model / "config.json").write_text("{}")
    summary = fp8.emulate(model, tmp_path / "out")
    out = load_file(tmp_path / "out" / "model.safetensors")
    before = load_file(model / "model.safetensors")
    assert (tmp_path / "out" / "config.json").is_file()
    assert summary["tensors_quantized"] == 4 and summary["scale_groups"] == 2
    assert json.loads((tmp_path / "out" / "fp8_emulation.json").read_text())["tensors_kept"] == 2
    for kept in ("model.embed_tokens.weight", "model.layers.0.input_layernorm.weight"):
        assert torch.equal(out[kept], before[kept])
    group = [f"model.layers.0.self_attn.{p}_proj.weight" for p in "qkv"]
    scale = max(float(before[k].float().abs().max()) for k in group) / fp8.E4M3_MAX
    for name in [*group, "model.layers.0.mlp.down_proj.weight"]:
        s = scale if name in group else float(before[name].float().abs().max()) / fp8.E4M3_MAX
        codes = out[name].float() / s
        # each value is scale x an E4M3 number (up to the bf16 rounding of the product)
        back = codes.to(torch.float8_e4m3fn).float()
        assert torch.allclose(codes, back, rtol=1e-2, atol=1e-3), name
        assert not torch.equal(out[name], before[name])  # 3 mantissa bits: something always moves
        assert float((out[name].float() - before[name].float()).norm() / before[name].float().norm()) < 0.1
    # q and v are quantized with k's (larger) scale, exactly as the merged qkv weight is in vLLM
    for name in group:
        w = before[name].float()
        expected = (w / scale).clamp(-448, 448).to(torch.float8_e4m3fn).float() * scale
        assert torch.equal(out[name], expected.to(torch.bfloat16)), name
