"""Turn samples into model inputs: resize, chat template, labels on the answer only, batches.

`SampleEncoder.encode` resizes the image with the resolution contract
(`vlmocr.images.resize_for_model`, the processor's min/max pixels set to the same
values, so it leaves the image as is), renders the prompt with the model's chat
template (system, then the image before the question, then `<|im_start|>assistant\\n`),
and appends the answer tokens and `<|im_end|>`. Labels are -100 everywhere except the
answer and its `<|im_end|>`: the loss never sees the prompt or the image.

`encode` also computes each sample's M-RoPE position ids (temporal, height, width; text
tokens get one running position, an image's tokens their grid row and column) the way
Qwen2.5-VL's `get_rope_index` does, in the data-loader workers. The model is given them, so
the step never runs `get_rope_index` (a Python loop with host syncs per sample), and the
positions do not depend on transformers' input names: since transformers 5 the model
derives M-RoPE positions only when the batch carries the processor's `mm_token_type_ids`,
and without them falls back to 1-D positions that disagree with what vLLM serves.

`preflight` checks, before any training, that image tokens + prompt + answer fit
`max_length` for every sample (for an endless stream: the largest image the contract
allows and the longest answer of a probe), and fails with the numbers otherwise: image
tokens are never truncated silently.

`BatchPlan` orders samples reproducibly from (seed, position): a seeded permutation per
epoch (optionally grouped by length), cut into per-rank micro-batches, so a resumed or
multi-GPU run picks up exactly where the position says.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from vlmocr.errors import TrainingError
from vlmocr.images import Resolution, open_image, resize_for_model
from vlmocr.train.data import SampleSet, TrainSample

log = logging.getLogger(__name__)
IGNORE_INDEX = -100


def chat_messages(system: str, question: str) -> list[dict[str, Any]]:
    """The prompt messages, image before the question (as the client sends them)."""
    return [
        {"role": "system", "content": [{"type": "text", "text": system}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]},
    ]


def load_image(sample: TrainSample, resolution: Resolution) -> Any:
    image = open_image(sample.image) if not hasattr(sample.image, "size") else sample.image.convert("RGB")
    return resize_for_model(image, resolution)


class SampleEncoder:
    """Encodes samples for one processor and resolution (picklable for data-loader workers)."""

    def __init__(self, processor: Any, resolution: Resolution, max_length: int, *,
                 compact_pixels: bool = False) -> None:
        self.processor = processor
        self.resolution = resolution
        self.max_length = max_length
        tok = processor.tokenizer
        self.end_id = tok.convert_tokens_to_ids("<|im_end|>")
        self.image_token_id = tok.convert_tokens_to_ids(getattr(processor, "image_token", "<|image_pad|>"))
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else self.end_id
        self.merge_size = int(getattr(getattr(processor, "image_processor", None), "merge_size", 2) or 2)
        set_processor_resolution(processor, resolution)
        #: compact pixels (`QwenPixels`): encode() returns uint8 patches, which model_inputs() expands where
        #: the batch is (the training device); None (the default, or a processor it does not cover): the
        #: processor's float pixels
        self.pixels = QwenPixels.of(processor) if compact_pixels else None

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        """A batch (or one encoded sample) as the model takes it: compact pixels expanded where they are."""
        if self.pixels is None or "pixel_values" not in batch:
            return batch
        return {**batch, "pixel_values": self.pixels.expand(batch["pixel_values"])}

    def prompt_text(self, sample: TrainSample) -> str:
        return self.processor.apply_chat_template(
            chat_messages(sample.system, sample.question), add_generation_prompt=True, tokenize=False
        )

    def answer_ids(self, answer: str) -> list[int]:
        return self.processor.tokenizer(answer, add_special_tokens=False)["input_ids"] + [self.end_id]

    def encode(self, sample: TrainSample) -> dict[str, Any]:
        import torch

        image = load_image(sample, self.resolution)
        enc = self.pixels.encode(self.prompt_text(sample), image) if self.pixels is not None else None
        if enc is None and self.pixels is not None:  # a batch cannot mix compact and processor pixels
            raise TrainingError(f"{sample.source}: image {image.width}x{image.height} does not fit the patch grid "
                                f"after the contract's resize; set data.compact_pixels: false")
        if enc is None:
            enc = self.processor(text=[self.prompt_text(sample)], images=[image], return_tensors="pt")
        prompt_ids = enc["input_ids"][0]
        answer = torch.tensor(self.answer_ids(sample.answer), dtype=torch.long)
        total = len(prompt_ids) + len(answer)
        if total > self.max_length:
            visual = int((prompt_ids == self.image_token_id).sum())
            raise TrainingError(
                f"{sample.source}: needs {total} tokens (image {visual} + prompt {len(prompt_ids) - visual} "
                f"+ answer {len(answer)}) > max_length {self.max_length}; raise max_length or lower "
                f"resolution.max_pixels (now {self.resolution.max_pixels}). Nothing is truncated."
            )
        input_ids = torch.cat([prompt_ids, answer])
        return {
            "input_ids": input_ids,
            "labels": torch.cat([torch.full_like(prompt_ids, IGNORE_INDEX), answer]),
            "pixel_values": enc["pixel_values"],
            "image_grid_thw": enc["image_grid_thw"],
            "position_ids": mrope_position_ids(input_ids, enc["image_grid_thw"], self.image_token_id,
                                               self.merge_size),
        }


class QwenPixels:
    """The Qwen2-VL image processor's arithmetic, split so that the data-loader workers do only the cheap
    half: `patches` cuts an image already at the contract's size into patches of raw uint8 pixels, one
    temporal frame (1/8 of the processor's float32 bytes, and no float work); `expand` then normalizes
    and repeats them over the temporal patch on the training device, giving the processor's
    `pixel_values` within float rounding. Measured in `benchmarks/data_pipeline_profile.py`.

    Used only where it is the same computation: a Qwen2-VL-family image processor that rescales and
    normalizes, and an image whose sides are multiples of patch x merge size (the contract's resize
    guarantees it).
    """

    def __init__(self, processor: Any) -> None:
        import numpy as np

        ip = processor.image_processor
        self.processor = processor
        self.patch, self.temporal, self.merge = int(ip.patch_size), int(ip.temporal_patch_size), int(ip.merge_size)
        scale = float(ip.rescale_factor)
        mean, std = np.asarray(ip.image_mean, dtype=np.float32), np.asarray(ip.image_std, dtype=np.float32)
        # (x * scale - mean) / std per channel, as one multiply-add
        self.mul = (scale / std).astype(np.float32)
        self.add = (-mean / std).astype(np.float32)
        self.image_token = getattr(processor, "image_token", "<|image_pad|>")

    @classmethod
    def of(cls, processor: Any) -> QwenPixels | None:
        ip = getattr(processor, "image_processor", None)
        if ip is None or not type(ip).__name__.startswith("Qwen2VLImageProcessor"):
            return None
        needed = ("patch_size", "temporal_patch_size", "merge_size", "rescale_factor", "image_mean", "image_std")
        if not all(getattr(ip, name, None) is not None for name in needed):
            return None
        if not (getattr(ip, "do_rescale", True) and getattr(ip, "do_normalize", True)):
            return None
        return cls(processor)

    def patches(self, image: Any) -> tuple[Any, Any] | None:
        """(pixel_values (patches, C*P*P) uint8, image_grid_thw (1, 3)), or None if the size does not fit."""
        import numpy as np
        import torch

        p, m = self.patch, self.merge
        if image.width % (p * m) or image.height % (p * m):
            return None
        gh, gw = image.height // p, image.width // p
        a = np.asarray(image.convert("RGB"))  # H, W, C
        # the processor's patch order: merge groups row-major, then the patches of a group, then C, P, P
        x = a.transpose(2, 0, 1).reshape(3, gh // m, m, p, gw // m, m, p).transpose(1, 4, 2, 5, 0, 3, 6)
        return torch.from_numpy(np.ascontiguousarray(x).reshape(gh * gw, 3 * p * p)), torch.tensor([[1, gh, gw]])

    def expand(self, pixel_values: Any) -> Any:
        """`patches`' uint8 pixel values → the processor's normalized float32 (patches, C*T*P*P), on their
        device; float pixel values (already the processor's) are returned as they are."""
        import torch

        if pixel_values.dtype != torch.uint8:
            return pixel_values
        n, t, pp = pixel_values.shape[0], self.temporal, self.patch * self.patch
        mul = torch.as_tensor(self.mul, device=pixel_values.device).view(1, 3, 1, 1)
        add = torch.as_tensor(self.add, device=pixel_values.device).view(1, 3, 1, 1)
        x = pixel_values.view(n, 3, 1, pp).float() * mul + add
        return x.expand(n, 3, t, pp).reshape(n, 3 * t * pp)

    def encode(self, prompt: str, image: Any) -> dict[str, Any] | None:
        """`processor(text=[prompt], images=[image])`'s input_ids and image_grid_thw, with `patches`' pixel
        values; None where the processor must do it (a size off the grid, not one image in the prompt)."""
        made = self.patches(image)
        if made is None or prompt.count(self.image_token) != 1:
            return None
        pixel_values, grid = made
        tokens = int(grid.prod()) // (self.merge * self.merge)
        text = prompt.replace(self.image_token, self.image_token * tokens)
        ids = self.processor.tokenizer([text], return_tensors="pt")["input_ids"]
        return {"input_ids": ids, "pixel_values": pixel_values, "image_grid_thw": grid}


def mrope_position_ids(input_ids: Any, image_grid_thw: Any, image_token_id: int, merge_size: int = 2) -> Any:
    """(3, L) M-RoPE positions of one unpadded sequence with images, as Qwen2.5-VL computes them.

    Text tokens: one running position, the same on all three axes. The n-th run of image
    tokens is image n (`image_grid_thw[n]` = patches t, h, w; merged by `merge_size` on h and
    w): temporal index, row and column, each offset by the running position, which then
    advances by max(rows, columns).
    """
    import torch

    ids = input_ids.tolist()
    grids = iter(image_grid_thw.tolist())
    positions = torch.empty((3, len(ids)), dtype=torch.long)
    i, current = 0, 0
    while i < len(ids):
        if ids[i] != image_token_id:
            j = i
            while j < len(ids) and ids[j] != image_token_id:
                j += 1
            positions[:, i:j] = torch.arange(current, current + j - i)
            current += j - i
            i = j
            continue
        try:
            t, h, w = next(grids)
        except StopIteration:
            raise TrainingError("more image-token runs than images in image_grid_thw") from None
        rows, cols = h // merge_size, w // merge_size
        count = t * rows * cols
        if ids[i:i + count] != [image_token_id] * count:
            raise TrainingError(f"image tokens at {i} do not match the image grid {t}x{h}x{w}")
        grid = torch.meshgrid(torch.arange(t), torch.arange(rows), torch.arange(cols), indexing="ij")
        positions[:, i:i + count] = torch.stack([axis.reshape(-1) for axis in grid]) + current
        current += max(rows, cols)
        i += count
    return positions


def set_processor_resolution(processor: Any, resolution: Resolution) -> None:
    """Make the processor's own resizing agree with the contract (min/max pixels)."""
    for name in ("image_processor", "video_processor"):
        sub = getattr(processor, name, None)
        if sub is None:
            continue
        size = dict(sub.size) if getattr(sub, "size", None) is not None else {}
        size = {k: v for k, v in size.items() if v is not None}
        size.update({"shortest_edge": resolution.min_pixels, "longest_edge": resolution.max_pixels})
        sub.size = type(sub.size)(**size) if hasattr(sub.size, "__dataclass_fields__") else size
        for attr, value in (("min_pixels", resolution.min_pixels), ("max_pixels", resolution.max_pixels)):
            if hasattr(sub, attr):
                setattr(sub, attr, value)


def pad_batch(features: list[dict[str, Any]], pad_id: int, pad_to_multiple: int = 1) -> dict[str, Any]:
    """Right-pad token rows and their M-RoPE positions; concatenate image patches (Qwen2-VL's flat layout)."""
    import torch

    longest = max(len(f["input_ids"]) for f in features)
    if pad_to_multiple > 1:
        longest = -(-longest // pad_to_multiple) * pad_to_multiple
    ids = torch.full((len(features), longest), pad_id, dtype=torch.long)
    labels = torch.full((len(features), longest), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(features), longest), dtype=torch.long)
    positions = torch.zeros((3, len(features), longest), dtype=torch.long)  # padding stays 0, as in transformers
    for row, f in enumerate(features):
        n = len(f["input_ids"])
        ids[row, :n] = f["input_ids"]
        labels[row, :n] = f["labels"]
        mask[row, :n] = 1
        positions[:, row, :n] = f["position_ids"]
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "labels": labels,
        "position_ids": positions,
        "pixel_values": torch.cat([f["pixel_values"] for f in features]),
        "image_grid_thw": torch.cat([f["image_grid_thw"] for f in features]),
    }


@dataclass(frozen=True)
class PreflightReport:
    """The longest sample found, in tokens, and what it is made of."""

    samples_checked: int
    max_total: int
    max_visual: int
    max_prompt: int
    max_answer: int
    worst: str
    lengths: list[int] | None  # per sample (finite sets), for length grouping


def _image_size(sample: TrainSample) -> tuple[int, int]:
    if hasattr(sample.image, "size"):
        return sample.image.size
    from PIL import Image

    with Image.open(sample.image) as img:
        return img.size


def preflight(samples: SampleSet, encoder: SampleEncoder, *, probe: int = 32) -> PreflightReport:
    """Fail before training if any sample cannot fit `max_length` (with the numbers)."""
    res = encoder.resolution
    stream = samples.size is None
    checked = samples.head(probe) if stream else [samples.get(i) for i in range(len(samples))]
    prompt_cache: dict[tuple[str, str], int] = {}
    rows = []
    for sample in checked:
        key = (sample.system, sample.question)
        if key not in prompt_cache:
            text = encoder.prompt_text(sample)
            ids = encoder.processor.tokenizer(text, add_special_tokens=False)["input_ids"]
            prompt_cache[key] = len(ids) - 1  # the one image placeholder becomes the visual tokens
        visual = res.max_visual_tokens if stream else res.visual_tokens(*_image_size(sample))
        answer = len(encoder.answer_ids(sample.answer))
        rows.append((visual + prompt_cache[key] + answer, visual, prompt_cache[key], answer, sample.source))
    total, visual, prompt, answer, worst = max(rows)
    report = PreflightReport(len(rows), total, visual, prompt, answer, worst,
                             None if stream else [r[0] for r in rows])
    if total > encoder.max_length:
        bound = " (the largest image the resolution contract allows)" if stream else ""
        raise TrainingError(
            f"pre-flight: {worst} needs {total} tokens = image {visual}{bound} + prompt {prompt} + "
            f"answer {answer}, but max_length is {encoder.max_length}. Raise max_length to at least "
            f"{total}, or lower resolution.max_pixels (now {res.max_pixels} = {res.max_visual_tokens} "
            "image tokens). Image tokens are never truncated."
        )
    log.info("pre-flight: %d samples fit; longest %d tokens (image %d + prompt %d + answer %d) <= %d",
             len(rows), total, visual, prompt, answer, encoder.max_length)
    return report


class BatchPlan:
    """Reproducible micro-batches by position: same (seed, position) → same samples.

    Position p (a count of micro-batches over all ranks) covers global sample positions
    [p*B*W, (p+1)*B*W); rank r takes the r-th block of B. For a finite set, global
    position g is element g % n of epoch g // n's seeded permutation.
    """

    def __init__(self, size: int | None, batch_size: int, *, seed: int, shuffle: bool = True,
                 world_size: int = 1, rank: int = 0, lengths: list[int] | None = None,
                 group_by_length: bool = False) -> None:
        self.size = size
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.world_size = world_size
        self.rank = rank
        self.lengths = lengths if group_by_length else None
        self._epoch_cache: tuple[int, list[int]] | None = None

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    def _epoch_order(self, epoch: int) -> list[int]:
        if self._epoch_cache and self._epoch_cache[0] == epoch:
            return self._epoch_cache[1]
        assert self.size is not None
        order = list(range(self.size))
        if self.shuffle:
            random.Random(f"{self.seed}/{epoch}").shuffle(order)
        if self.lengths is not None:
            chunk = self.global_batch * 16
            lengths = self.lengths
            order = [i for s in range(0, len(order), chunk)
                     for i in sorted(order[s:s + chunk], key=lambda i: -lengths[i])]
        self._epoch_cache = (epoch, order)
        return order

    def index_at(self, position: int) -> int:
        if self.size is None:
            return position
        epoch, offset = divmod(position, self.size)
        return self._epoch_order(epoch)[offset]

    def micro_batch(self, micro_step: int) -> list[int]:
        start = micro_step * self.global_batch + self.rank * self.batch_size
        return [self.index_at(g) for g in range(start, start + self.batch_size)]

    def iter_from(self, micro_step: int) -> Iterator[list[int]]:
        while True:
            yield self.micro_batch(micro_step)
            micro_step += 1


class EncodedSamples:
    """A torch map-style dataset over a SampleSet (indices come from a BatchPlan)."""

    def __init__(self, samples: SampleSet, encoder: SampleEncoder) -> None:
        self.samples = samples
        self.encoder = encoder

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.encoder.encode(self.samples.get(index))

    def __len__(self) -> int:  # only used for finite sets
        return len(self.samples)


class Collator:
    def __init__(self, pad_id: int, pad_to_multiple: int = 1) -> None:
        self.pad_id = pad_id
        self.pad_to_multiple = pad_to_multiple

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        return pad_batch(features, self.pad_id, self.pad_to_multiple)


class _PlanSampler:
    """Feeds the DataLoader the plan's micro-batches from a starting position (endless)."""

    def __init__(self, plan: BatchPlan, start: int) -> None:
        self.plan = plan
        self.start = start

    def __iter__(self) -> Iterator[list[int]]:
        return self.plan.iter_from(self.start)


def _worker_ignores_stop_signals(_worker_id: int) -> None:
    """Data-loader workers leave SIGINT and SIGTERM to the trainer.

    A stop signal sent to the whole process group (Ctrl-C in a terminal, `kill -- -PGID`,
    a batch scheduler) would otherwise kill the workers first, and the trainer would die on
    "DataLoader worker killed" instead of finishing its step and saving a checkpoint.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def make_loader(samples: SampleSet, encoder: SampleEncoder, plan: BatchPlan, start_micro_step: int,
                *, num_workers: int = 0, pin_memory: bool = False, pad_to_multiple: int = 1,
                seed: int = 0, prefetch_factor: int = 2) -> Any:
    """An endless DataLoader of padded micro-batches starting at `start_micro_step`.

    It has its own generator, so creating it (at start or on resume) draws nothing from the
    global torch RNG that LoRA dropout uses: resumed runs stay bit-identical.
    """
    import torch
    from torch.utils.data import DataLoader

    return DataLoader(
        EncodedSamples(samples, encoder),  # type: ignore[arg-type]
        batch_sampler=_PlanSampler(plan, start_micro_step),  # type: ignore[arg-type]
        collate_fn=Collator(encoder.pad_id, pad_to_multiple),
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=False,
        prefetch_factor=prefetch_factor if num_workers else None,
        worker_init_fn=_worker_ignores_stop_signals if num_workers else None,
        generator=torch.Generator().manual_seed(seed),
    )
