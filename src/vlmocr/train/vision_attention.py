"""One attention call per vision layer instead of one per window.

Qwen2.5-VL's vision tower attends within windows (112×112 pixels: 64 patches) in most
layers and within whole images in a few. transformers passes those boundaries as
`cu_seqlens`, but unless `flash_attn` is installed its vision attention splits the packed
sequence with `.tolist()` and runs SDPA window by window: for a batch of four 1,280-token
images that is 320 tiny attention calls per layer, forward and backward, on the 3B shape's
32 vision layers, and a host sync per layer. The GPU idles between the launches.

PyTorch ≥ 2.10 ships `torch.nn.attention.varlen.varlen_attn` (FlashAttention-2 over packed
sequences with cumulative offsets, differentiable). `use_vision_attention` swaps the vision
attention modules' forward for one that makes a single such call per layer. Where it cannot
run (CPU, fp32 activations, an older torch) the forward does what transformers does, so a
model patched here computes the same function everywhere; the choice is made per call.

The language model is untouched (SDPA over padded batches with a causal mask), and so are
saved weights: this is a runtime choice of kernel, not a change to the model.
"""

from __future__ import annotations

import logging
import sys
import types
from typing import Any

from vlmocr.errors import ConfigError

log = logging.getLogger(__name__)
MODES = ("auto", "varlen", "per_window")


def varlen_kernel() -> Any | None:
    """torch's packed-sequence flash attention, or None where this torch lacks it."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


def vision_attention_modules(model: Any) -> list[Any]:
    return [m for m in model.modules()
            if type(m).__name__.endswith("VisionAttention") and hasattr(m, "qkv") and hasattr(m, "proj")]


def _per_window(q: Any, k: Any, v: Any, cu_seqlens: Any, scaling: float) -> Any:
    """What transformers' SDPA path computes: attention inside each [cu[i], cu[i+1]) span."""
    import torch

    lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).tolist()
    outs = []
    for qs, ks, vs in zip(q.split(lengths), k.split(lengths), v.split(lengths)):
        # (len, heads, dim) → (1, heads, len, dim)
        o = torch.nn.functional.scaled_dot_product_attention(
            qs.transpose(0, 1).unsqueeze(0), ks.transpose(0, 1).unsqueeze(0), vs.transpose(0, 1).unsqueeze(0),
            scale=scaling)
        outs.append(o.squeeze(0).transpose(0, 1))
    return torch.cat(outs, dim=0)


def _forward(self: Any, hidden_states: Any, cu_seqlens: Any, position_embeddings: Any = None,
             max_seqlen: int | None = None, **kwargs: Any) -> Any:
    import torch

    seq = hidden_states.shape[0]
    q, k, v = self.qkv(hidden_states).reshape(seq, 3, self.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
    cos, sin = position_embeddings
    q, k = self._vlmocr_rotary(q, k, cos, sin)
    kernel = self._vlmocr_kernel
    if kernel is not None and q.device.type in self._vlmocr_devices and q.dtype in (torch.bfloat16, torch.float16):
        cu = cu_seqlens.to(torch.int32)
        longest = max_seqlen
        if longest is None:
            # Every layer of one forward gets the same boundaries tensor: read its longest span
            # once (a host sync) and keep it on the tensor, not once per layer.
            longest = getattr(cu_seqlens, "_vlmocr_longest", None)
            if longest is None:
                longest = int((cu[1:] - cu[:-1]).max())
                cu_seqlens._vlmocr_longest = longest
        # Positional only: the signature grew keywords between torch releases; the default
        # scale is head_dim ** -0.5, the model's own.
        out = kernel(q.contiguous(), k.contiguous(), v.contiguous(), cu, cu, longest, longest)
    else:
        out = _per_window(q, k, v, cu_seqlens, self.scaling)
    return self.proj(out.reshape(seq, -1).contiguous())


def install(modules: list[Any], kernel: Any, devices: tuple[str, ...] = ("cuda",)) -> None:
    """Give each vision attention module the one-call forward, using `kernel` on `devices`."""
    for m in modules:
        m._vlmocr_rotary = sys.modules[type(m).__module__].apply_rotary_pos_emb_vision
        m._vlmocr_kernel = kernel
        m._vlmocr_devices = devices
        m.forward = types.MethodType(_forward, m)


def use_vision_attention(model: Any, mode: str, device: Any) -> str:
    """Choose the vision tower's attention for `model`; returns the path in use.

    `auto`: `varlen` on a CUDA device when this torch has the kernel, else `per_window`
    (transformers' own code, left in place). `varlen` insists and says why it cannot.
    """
    if mode not in MODES:
        raise ConfigError(f"vision_attention must be one of {MODES}, got {mode!r}")
    modules = vision_attention_modules(model)
    if mode == "per_window" or not modules:
        return "per_window"
    kernel = varlen_kernel()
    if kernel is None or getattr(device, "type", str(device)) != "cuda":
        why = ("this torch has no torch.nn.attention.varlen (PyTorch >= 2.10)" if kernel is None
               else "it needs a CUDA device")
        if mode == "varlen":
            raise ConfigError(f"vision_attention: varlen is not available: {why}; use auto or per_window")
        return "per_window"
    if getattr(model.config, "_attn_implementation", None) and "flash" in model.config._attn_implementation:
        return "flash_attn"  # transformers already passes cu_seqlens to a flash kernel
    install(modules, kernel)
    log.info("vision attention: one varlen flash call per layer (%d layers)", len(modules))
    return "varlen"
