"""The one-call vision attention computes what transformers' window-by-window SDPA does."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from vlmocr.errors import ConfigError  # noqa: E402
from vlmocr.train import vision_attention as va  # noqa: E402


def _tower(dtype):
    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

    cfg = Qwen2_5_VLVisionConfig(depth=3, hidden_size=64, intermediate_size=128, num_heads=4, out_hidden_size=48,
                                 window_size=112, fullatt_block_indexes=[1], patch_size=14, spatial_merge_size=2,
                                 temporal_patch_size=2, in_channels=3)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    return Qwen2_5_VisionTransformerPretrainedModel(cfg).to(dtype).eval()


def _varlen_reference(q, k, v, cu_q, cu_k, max_q, max_k):
    """Packed-sequence attention written out: what torch's varlen flash kernel computes."""
    assert cu_q.dtype == torch.int32 and q.shape[0] == int(cu_q[-1])
    assert max_q == int((cu_q[1:] - cu_q[:-1]).max())
    out = torch.empty_like(q)
    for a, b in zip(cu_q[:-1].tolist(), cu_q[1:].tolist()):
        s = torch.einsum("qhd,khd->hqk", q[a:b].float(), k[a:b].float()) * q.shape[-1] ** -0.5
        out[a:b] = torch.einsum("hqk,khd->qhd", s.softmax(-1), v[a:b].float()).to(q.dtype)
    return out


def _inputs(grids):
    grid = torch.tensor(grids)
    n = int(grid.prod(-1).sum())
    torch.manual_seed(1)
    return torch.randn(n, 3 * 2 * 14 * 14), grid


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_one_call_matches_per_window(dtype):
    # Two images of different sizes: windows at the edges are smaller than 64 patches.
    pixels, grid = _inputs([[1, 20, 12], [1, 8, 18]])
    tower = _tower(dtype)
    with torch.no_grad():
        expected = tower(pixels.to(dtype), grid_thw=grid)
        expected = getattr(expected, "pooler_output", expected)
        va.install(va.vision_attention_modules(tower), _varlen_reference, devices=("cpu",))
        got = tower(pixels.to(dtype), grid_thw=grid)
        got = getattr(got, "pooler_output", got)
    tol = 3e-2 if dtype == torch.bfloat16 else 1e-5
    assert got.shape == expected.shape
    torch.testing.assert_close(got.float(), expected.float(), atol=tol, rtol=tol)


def test_gradients_flow_through_the_one_call_path():
    pixels, grid = _inputs([[1, 8, 8]])
    tower = _tower(torch.bfloat16)
    va.install(va.vision_attention_modules(tower), _varlen_reference, devices=("cpu",))
    out = tower(pixels.to(torch.bfloat16), grid_thw=grid)
    out = getattr(out, "pooler_output", out)
    out.float().square().mean().backward()
    qkv = va.vision_attention_modules(tower)[0].qkv.weight.grad
    assert qkv is not None and torch.isfinite(qkv.float()).all() and qkv.abs().sum() > 0


def test_auto_keeps_transformers_code_on_cpu_and_varlen_says_why():
    tower = _tower(torch.float32)
    before = [m.forward for m in va.vision_attention_modules(tower)]
    assert va.use_vision_attention(tower, "auto", torch.device("cpu")) == "per_window"
    assert [m.forward for m in va.vision_attention_modules(tower)] == before
    with pytest.raises(ConfigError, match="varlen is not available"):
        va.use_vision_attention(tower, "varlen", torch.device("cpu"))
    with pytest.raises(ConfigError, match="vision_attention must be one of"):
        va.use_vision_attention(tower, "fast", torch.device("cpu"))
