"""Build a small Qwen2.5-VL offline: tokenizer, processor, random weights, model contract.

`build_model(out, "tiny")` writes a complete `Qwen2_5_VLForConditionalGeneration`
directory in a few seconds, with no network: config.json (token ids read from the
tokenizer), model.safetensors, generation_config.json, the tokenizer and chat template
(`vlmocr.models.tokenizer`), a Qwen2-VL image processor whose min/max pixels are the
resolution contract, and `vlmocr.json` (ModelContract, base_model=None). AutoProcessor,
AutoModelForImageTextToText and vLLM (CPU build) load it as they would a hub model.

Sizes: `tiny` (~2M parameters) for tests; `small` (~20M) is the base the built-in model
is trained from. Head sizes are 32/64 so vLLM's CPU attention kernels accept them.

Pixel normalization: Qwen2.5-VL's processor normalizes with CLIP's natural-image statistics
(mean ≈ 0.46, std ≈ 0.27). Its vision tower was pretrained that way, so a model that starts
from Qwen's weights must keep them. A tower trained from random weights on documents should
not: paper is near white, so under CLIP's statistics every patch of a page is a large
constant input (white ≈ +1.9) with the ink a small change on top, and the tower's features
barely differ from page to page. `benchmarks/probe_reading_cpu.py` measured what that does:
a tiny model trained from scratch on a single large digit stayed at chance under CLIP's
statistics (and needed twice the steps to memorize 16 pages), and read under the documents' own. Built sizes
therefore normalize with statistics of the synthetic pages (`PIXEL_NORMS["documents"]`),
written into the processor config, so vLLM and transformers apply the same values.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vlmocr._deps import require
from vlmocr.contract import ModelContract, save_contract
from vlmocr.errors import ConfigError
from vlmocr.fileio import atomic_directory, atomic_write_json
from vlmocr.images import PATCH_FACTOR, Resolution

log = logging.getLogger(__name__)


#: Image mean / std a built model's processor normalizes with (see the module docstring).
PIXEL_NORMS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    # transformers' OPENAI_CLIP_MEAN / OPENAI_CLIP_STD: what Qwen2.5-VL ships.
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    # Pixels of the synthetic training pages (layouts form/two_column/receipt/dense/label,
    # light augmentation, 48 pages; clean renders give 0.85/0.23, phone photos 0.55/0.24).
    "documents": ((0.82, 0.82, 0.81), (0.23, 0.23, 0.22)),
}


@dataclass(frozen=True)
class ModelSize:
    """The shape of a built model (text decoder, vision tower, tokenizer, default resolution)."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    mrope_section: tuple[int, int, int]
    vision_hidden_size: int
    vision_intermediate_size: int
    vision_depth: int
    vision_heads: int
    vision_fullatt_blocks: tuple[int, ...]
    max_position_embeddings: int
    resolution: Resolution = field(default_factory=Resolution)
    #: Embedding rows when larger than the tokenizer (the 3B shape keeps Qwen's 151,936).
    model_vocab_size: int | None = None
    #: Key of PIXEL_NORMS: trained-from-scratch sizes use the documents' statistics.
    pixel_norm: str = "documents"

    def __post_init__(self) -> None:
        head_dim = self.hidden_size // self.num_attention_heads
        if sum(self.mrope_section) * 2 != head_dim:
            raise ConfigError(f"mrope_section {self.mrope_section} must sum to head_dim/2 = {head_dim // 2}")


SIZES: dict[str, ModelSize] = {
    # ~2M parameters; <= 64 visual tokens an image by default so CPU tests stay fast.
    "tiny": ModelSize(
        vocab_size=4096,
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        mrope_section=(4, 6, 6),
        vision_hidden_size=64,
        vision_intermediate_size=192,
        vision_depth=2,
        vision_heads=2,
        vision_fullatt_blocks=(1,),
        max_position_embeddings=4096,
        resolution=Resolution(min_pixels=16 * PATCH_FACTOR**2, max_pixels=64 * PATCH_FACTOR**2),
    ),
    # ~20M parameters; the documents' usual resolution (256..1280 visual tokens).
    "small": ModelSize(
        vocab_size=8192,
        hidden_size=384,
        intermediate_size=1024,
        num_hidden_layers=8,
        num_attention_heads=6,
        num_key_value_heads=2,
        mrope_section=(8, 12, 12),
        vision_hidden_size=256,
        vision_intermediate_size=640,
        vision_depth=4,
        vision_heads=4,
        vision_fullatt_blocks=(1, 3),
        max_position_embeddings=8192,
        resolution=Resolution(),
    ),
    # Qwen2.5-VL-3B's shape (~3.8B parameters), random weights: for speed and memory
    # measurements without the hub. Build it with dtype="bfloat16", device="cuda".
    "3b": ModelSize(
        vocab_size=8192,
        model_vocab_size=151936,
        hidden_size=2048,
        intermediate_size=11008,
        num_hidden_layers=36,
        num_attention_heads=16,
        num_key_value_heads=2,
        mrope_section=(16, 24, 24),
        vision_hidden_size=1280,
        vision_intermediate_size=3420,
        vision_depth=32,
        vision_heads=16,
        vision_fullatt_blocks=(7, 15, 23, 31),
        max_position_embeddings=128000,
        resolution=Resolution(),
        pixel_norm="clip",  # what Qwen2.5-VL-3B ships
    ),
}


@dataclass(frozen=True)
class BuiltModel:
    """Where a built model was written and what it is."""

    path: Path
    size: str
    n_parameters: int
    resolution: Resolution
    token_ids: dict[str, int]
    seconds: float


def qwen_config(size: ModelSize, token_ids: dict[str, int], vocab_size: int) -> Any:
    """A `Qwen2_5_VLConfig` for `size`, with the tokenizer's special token ids."""
    transformers = require("transformers", extra="train", purpose="Building a model")
    text = {
        "vocab_size": vocab_size,
        "hidden_size": size.hidden_size,
        "intermediate_size": size.intermediate_size,
        "num_hidden_layers": size.num_hidden_layers,
        "num_attention_heads": size.num_attention_heads,
        "num_key_value_heads": size.num_key_value_heads,
        "max_position_embeddings": size.max_position_embeddings,
        "max_window_layers": size.num_hidden_layers,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 1_000_000.0,
            "mrope_section": list(size.mrope_section),
        },
        "bos_token_id": token_ids["bos_token_id"],
        "eos_token_id": token_ids["eos_token_id"],
        "pad_token_id": token_ids["pad_token_id"],
        "tie_word_embeddings": True,
    }
    vision = {
        "depth": size.vision_depth,
        "hidden_size": size.vision_hidden_size,
        "intermediate_size": size.vision_intermediate_size,
        "num_heads": size.vision_heads,
        "out_hidden_size": size.hidden_size,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": list(size.vision_fullatt_blocks),
        "tokens_per_second": 2,
    }
    return transformers.Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=token_ids["image_token_id"],
        video_token_id=token_ids["video_token_id"],
        vision_start_token_id=token_ids["vision_start_token_id"],
        vision_end_token_id=token_ids["vision_end_token_id"],
        tie_word_embeddings=True,
    )


def pixel_norm_values(name: str) -> tuple[list[float], list[float]]:
    """(image_mean, image_std) of PIXEL_NORMS[name]; a ConfigError for an unknown name."""
    if name not in PIXEL_NORMS:
        raise ConfigError(f"unknown pixel normalization {name!r} (choose: {', '.join(PIXEL_NORMS)})")
    mean, std = PIXEL_NORMS[name]
    return list(mean), list(std)


def build_processor(tokenizer: Any, resolution: Resolution, pixel_norm: str = "documents") -> Any:
    """A `Qwen2_5_VLProcessor` whose image processor enforces the resolution contract and
    normalizes pixels with `PIXEL_NORMS[pixel_norm]`."""
    transformers = require("transformers", extra="train", purpose="Building a model")
    from vlmocr.models.tokenizer import CHAT_TEMPLATE

    mean, std = pixel_norm_values(pixel_norm)
    image_processor = transformers.Qwen2VLImageProcessor(
        min_pixels=resolution.min_pixels, max_pixels=resolution.max_pixels, image_mean=mean, image_std=std
    )
    video_processor = transformers.Qwen2VLVideoProcessor(
        min_pixels=resolution.min_pixels, max_pixels=resolution.max_pixels, image_mean=mean, image_std=std
    )
    return transformers.Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )


def write_resolution(directory: Path, resolution: Resolution) -> None:
    """Put min/max pixels in every processor file of `directory` (both spellings, as Qwen ships them).

    transformers 5 keeps the image processor inside `processor_config.json`; older
    transformers, LLaMA-Factory and many scripts read `preprocessor_config.json`, which
    is written too so that the contract is visible wherever a tool looks.
    """
    sizes = {"min_pixels": resolution.min_pixels, "max_pixels": resolution.max_pixels,
             "size": {"shortest_edge": resolution.min_pixels, "longest_edge": resolution.max_pixels}}
    directory = Path(directory)
    combined = directory / "processor_config.json"
    if combined.is_file():
        data = json.loads(combined.read_text(encoding="utf-8"))
        for key in ("image_processor", "video_processor"):
            if isinstance(data.get(key), dict):
                data[key].update(sizes)
        atomic_write_json(combined, data)
        if isinstance(data.get("image_processor"), dict):
            atomic_write_json(directory / "preprocessor_config.json", data["image_processor"])
    single = directory / "preprocessor_config.json"
    if not single.is_file():
        raise FileNotFoundError(f"{directory}: no preprocessor_config.json or processor_config.json")
    data = json.loads(single.read_text(encoding="utf-8"))
    data.update(sizes)
    atomic_write_json(single, data)


def build_model(
    out: Path,
    size: str = "tiny",
    *,
    resolution: Resolution | None = None,
    seed: int = 0,
    overwrite: bool = False,
    dtype: str = "float32",
    device: str | None = None,
    pixel_norm: str | None = None,
) -> BuiltModel:
    """Write a complete Qwen2.5-VL directory with random weights to `out`.

    `pixel_norm` (a key of PIXEL_NORMS) defaults to the size's own: the documents'
    statistics for sizes trained from scratch, CLIP's for the 3B stand-in.

    The directory appears only when complete (built in a temp folder, then renamed). An
    existing non-empty `out` is an error unless `overwrite`. `dtype` is what the weights are
    saved in; `device` (e.g. "cuda") is where they are initialised (fast for the 3B shape).
    """
    if size not in SIZES:
        raise ConfigError(f"unknown model size {size!r} (choose: {', '.join(SIZES)})")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ConfigError(f"{out} already exists and is not empty (pass --overwrite to replace it)")
    torch = require("torch", extra="train", purpose="Building a model")
    transformers = require("transformers", extra="train", purpose="Building a model")
    from vlmocr.models.tokenizer import special_token_ids, train_tokenizer

    shape = SIZES[size]
    pixel_norm = pixel_norm or shape.pixel_norm
    pixel_norm_values(pixel_norm)  # an unknown name fails before the tokenizer is trained
    resolution = resolution or shape.resolution
    start = time.perf_counter()
    tokenizer = train_tokenizer(shape.vocab_size, seed=seed)
    token_ids = special_token_ids(tokenizer)
    config = qwen_config(shape, token_ids, max(len(tokenizer), shape.model_vocab_size or 0))
    if dtype not in ("float32", "bfloat16", "float16"):
        raise ConfigError(f"dtype must be float32, bfloat16 or float16, got {dtype!r}")
    torch.manual_seed(seed)
    with torch.device(device or "cpu"):
        model = transformers.Qwen2_5_VLForConditionalGeneration(config).to(getattr(torch, dtype)).eval()
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=token_ids["bos_token_id"],
        eos_token_id=[token_ids["eos_token_id"], token_ids["bos_token_id"]],
        pad_token_id=token_ids["pad_token_id"],
        do_sample=False,
    )
    n_parameters = sum(p.numel() for p in model.parameters())
    processor = build_processor(tokenizer, resolution, pixel_norm)
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    with atomic_directory(out, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        write_resolution(tmp, resolution)
        save_contract(
            tmp,
            ModelContract(
                resolution=resolution,
                base_model=None,
                extra={"built": {"size": size, "seed": seed, "pixel_norm": pixel_norm, "shape": _shape_dict(shape)}},
            ),
        )
        make_readable(tmp)
    seconds = time.perf_counter() - start
    log.info("built %s Qwen2.5-VL (%d parameters) in %.1f s → %s", size, n_parameters, seconds, out)
    return BuiltModel(
        path=out,
        size=size,
        n_parameters=n_parameters,
        resolution=resolution,
        token_ids=token_ids,
        seconds=seconds,
    )


def make_readable(directory: Path) -> None:
    """Give a finished folder normal permissions (temp folders and files are created private)."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    directory.chmod(0o777 & ~umask)
    for path in directory.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def _shape_dict(shape: ModelSize) -> dict[str, Any]:
    data = asdict(shape)
    data.pop("resolution")
    return data
