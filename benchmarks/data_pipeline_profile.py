"""Where a training sample's CPU time goes in `vlmocr train`'s data pipeline (one data-loader worker).

The built-in model's training (docs/builtin.md) waits 20-27 % of its step time for data with 10
workers on a 16-core GPU host. This script builds the pipeline `vlmocr train` builds for it (the
synthetic stream of `configs/full-scratch.yaml` with the trained layouts, the model's processor and
resolution contract, `SampleEncoder`, `Collator`) and times, per sample, in this one process
(process CPU time, so a busy machine skews it less than wall time):

- render: the synthetic page and its photo-like augmentation (`SampleSet.get`);
- resize: `load_image` (the contract's resize; the processor then leaves the size as is);
- template: the chat template (`prompt_text`);
- pixels: image patches and prompt tokens, both ways on every sample (the same image): the
  Qwen2.5-VL processor call (`processor`: normalized float32 patches) and compact pixels (`compact`,
  `vlmocr.train.collate.QwenPixels`, what `vlmocr train` uses by default: uint8 patches of one frame,
  expanded on the training device; its tokens are checked equal to the processor's, and its expanded
  pixels' largest difference is recorded; `expand_on_cpu` is that expansion timed here);
- answer: the answer's tokens; positions: the M-RoPE position ids; collate: padding a batch (each way).

Each variant's samples/CPU-second is the common stages plus its pixel and collate stages: what one
data-loader worker can feed. `--loader-workers N` also times the real DataLoader both ways (wall clock).

`--compare-processors` also times the processor with `use_fast=False` and `use_fast=True` side by
side on the same images (transformers' PIL/numpy and torch/torchvision image processors).

    python benchmarks/data_pipeline_profile.py [--model src/vlmocr/assets/builtin] [--n 96]
        [--loader-workers 1,2 --loader-batches 12] [--compare-processors]
        [--out benchmarks/results/data_pipeline_profile_cpu.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path
from typing import Any

from vlmocr.fileio import cpu_machine, library_versions

TRAINED = ["form", "two_column", "receipt", "dense"]


def _timed(totals: dict[str, float], name: str, fn: Any, *args: Any) -> Any:
    start = time.process_time()
    out = fn(*args)
    totals[name] = totals.get(name, 0.0) + time.process_time() - start
    return out


def profile(model: str, n: int, batch: int, augment: str) -> dict[str, Any]:
    """Per-sample CPU time of each stage; both pixel paths run on every sample (the same image)."""
    import torch
    import transformers

    from vlmocr.contract import load_contract
    from vlmocr.train import collate
    from vlmocr.train.data import from_synth

    torch.set_num_threads(1)  # as in a data-loader worker
    contract = load_contract(Path(model))
    resolution = contract.resolution
    processor = transformers.AutoProcessor.from_pretrained(model)
    encoder = collate.SampleEncoder(processor, resolution, 4096, compact_pixels=True)
    if encoder.pixels is None:
        raise SystemExit(f"{model}: no compact pixels for its image processor (not a Qwen2-VL-family one)")
    samples = from_synth({"layouts": TRAINED, "augment": augment, "photos_per_doc": 1}, "train",
                         prompt=contract.prompt, target_format="compact")
    collator = collate.Collator(encoder.pad_id)
    for i in range(2):  # warm caches: fonts, Faker, the tokenizer
        encoder.encode(samples.get(10_000 + i))
    totals: dict[str, float] = {}
    features: dict[str, list[dict[str, Any]]] = {"processor": [], "compact": []}
    pixel_bytes = {"processor": 0, "compact": 0}
    tokens, patches, worst = 0, 0, 0.0
    for i in range(n):
        sample = _timed(totals, "render", samples.get, i)
        image = _timed(totals, "resize", collate.load_image, sample, resolution)
        prompt = _timed(totals, "template", encoder.prompt_text, sample)
        encoded = {"processor": _timed(totals, "pixels_processor",
                                       lambda p=prompt, im=image: processor(text=[p], images=[im], return_tensors="pt")),
                   "compact": _timed(totals, "pixels_compact", encoder.pixels.encode, prompt, image)}
        ref, small = encoded["processor"], encoded["compact"]
        if small is None or not torch.equal(small["input_ids"], ref["input_ids"]):
            raise SystemExit(f"sample {i}: compact pixels did not reproduce the processor's tokens")
        expanded = _timed(totals, "expand_on_cpu", encoder.pixels.expand, small["pixel_values"])  # on a GPU: there
        worst = max(worst, float((expanded - ref["pixel_values"]).abs().max()))
        answer = _timed(totals, "answer", lambda s=sample: torch.tensor(encoder.answer_ids(s.answer)))
        ids = torch.cat([ref["input_ids"][0], answer])
        positions = _timed(totals, "positions", collate.mrope_position_ids, ids, ref["image_grid_thw"],
                           encoder.image_token_id, encoder.merge_size)
        for name, enc in encoded.items():
            pixel_bytes[name] += enc["pixel_values"].numel() * enc["pixel_values"].element_size()
            features[name].append({"input_ids": ids, "labels": ids.clone(), "pixel_values": enc["pixel_values"],
                                   "image_grid_thw": enc["image_grid_thw"], "position_ids": positions})
            if len(features[name]) == batch:
                _timed(totals, f"collate_{name}", collator, features[name])
                features[name] = []
        tokens += len(ids)
        patches += int(ref["pixel_values"].shape[0])
    own = ("pixels_", "collate_", "expand_")
    common = sum(v for k, v in totals.items() if not k.startswith(own))
    variants = {}
    for name in ("processor", "compact"):  # compact: what a worker does (the device expands)
        cpu = common + totals[f"pixels_{name}"] + totals.get(f"collate_{name}", 0.0)
        variants[name] = {"cpu_s": round(cpu, 3), "samples_per_cpu_s": round(n / cpu, 2),
                          "pixels_share": round(totals[f"pixels_{name}"] / cpu, 3)}
    return {
        "n": n, "augment": augment, "batch_for_collate": batch,
        "mean_tokens": round(tokens / n, 1), "mean_patches": round(patches / n, 1),
        "image_processor": type(processor.image_processor).__name__,
        "ms_per_sample": {k: round(1000 * v / n, 2) for k, v in totals.items()},
        "variants": variants,
        "compact_over_processor": round(variants["compact"]["samples_per_cpu_s"]
                                        / variants["processor"]["samples_per_cpu_s"], 2),
        "pixels_processor_over_compact": round(totals["pixels_processor"] / totals["pixels_compact"], 2),
        "pixel_mib_per_sample": {k: round(v / n / 2**20, 2) for k, v in pixel_bytes.items()},
        "max_abs_pixel_diff": worst,
    }


def loader(model: str, workers: int, batches: int, batch: int, augment: str) -> dict[str, Any]:
    """Wall-clock samples/s of `vlmocr train`'s DataLoader (`make_loader`, `workers` processes, one
    prefetched batch each) with processor pixels and with compact pixels, one after the other; each
    batch is moved to the GPU when there is one (else kept here) and made model inputs there."""
    import torch
    import transformers

    from vlmocr.contract import load_contract
    from vlmocr.train import collate
    from vlmocr.train.data import from_synth

    contract = load_contract(Path(model))
    processor = transformers.AutoProcessor.from_pretrained(model)
    samples = from_synth({"layouts": TRAINED, "augment": augment, "photos_per_doc": 1}, "train",
                         prompt=contract.prompt, target_format="compact")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # the batch goes there, as in training
    out: dict[str, Any] = {"workers": workers, "batches": batches, "batch_size": batch, "device": str(device)}
    for name, kwargs in (("processor", {}), ("compact", {"compact_pixels": True})):
        encoder = collate.SampleEncoder(processor, contract.resolution, 4096, **kwargs)
        plan = collate.BatchPlan(None, batch, seed=0)
        it = iter(collate.make_loader(samples, encoder, plan, 0, num_workers=workers, prefetch_factor=1))
        next(it)  # workers started, first batch made
        start = time.perf_counter()
        for _ in range(batches):
            mb = next(it)
            on_device = encoder.model_inputs({k: v.to(device) for k, v in mb.items()})
        if device.type == "cuda":
            torch.cuda.synchronize()
        wall = time.perf_counter() - start
        del it
        out[name] = {"wall_s": round(wall, 2), "samples_per_s": round(batches * batch / wall, 2),
                     "pixel_dtype_sent": str(mb["pixel_values"].dtype),
                     "pixel_dtype_model": str(on_device["pixel_values"].dtype)}
    out["compact_over_processor"] = round(out["compact"]["samples_per_s"] / out["processor"]["samples_per_s"], 2)
    return out


def compare_processors(model: str, n: int, augment: str) -> dict[str, Any]:
    """The image processor alone, slow (PIL/numpy) against fast (torch), on the same resized images."""
    import torch
    import transformers

    from vlmocr.contract import load_contract
    from vlmocr.train.collate import load_image, set_processor_resolution
    from vlmocr.train.data import from_synth

    torch.set_num_threads(1)
    contract = load_contract(Path(model))
    samples = from_synth({"layouts": TRAINED, "augment": augment, "photos_per_doc": 1}, "train",
                         prompt=contract.prompt, target_format="compact")
    images = [load_image(samples.get(i), contract.resolution) for i in range(n)]
    out: dict[str, Any] = {}
    reference = None
    for use_fast in (False, True):
        try:
            proc = transformers.AutoImageProcessor.from_pretrained(model, use_fast=use_fast)
        except (ValueError, ImportError) as exc:
            out[f"use_fast={use_fast}"] = {"error": str(exc)[:200]}
            continue
        set_processor_resolution(type("P", (), {"image_processor": proc})(), contract.resolution)
        proc(images=images[:2], return_tensors="pt")
        start = time.process_time()
        results = [proc(images=[im], return_tensors="pt") for im in images]
        cpu = time.process_time() - start
        pixels = torch.cat([r["pixel_values"] for r in results])
        row = {"class": type(proc).__name__, "ms_per_image": round(1000 * cpu / n, 2)}
        if reference is None:
            reference = pixels
        else:
            row["max_abs_diff_vs_slow"] = float((pixels.float() - reference.float()).abs().max())
            row["same_shape"] = tuple(pixels.shape) == tuple(reference.shape)
        out[f"use_fast={use_fast}"] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="src/vlmocr/assets/builtin")
    parser.add_argument("--n", type=int, default=96)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--augment", default="light")
    parser.add_argument("--compare-processors", action="store_true")
    parser.add_argument("--loader-workers", default="", help="also time make_loader with N workers (N or N,M,...)")
    parser.add_argument("--loader-batches", type=int, default=12)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/data_pipeline_profile_cpu.json"))
    args = parser.parse_args()
    import os

    result: dict[str, Any] = {
        "benchmark": "data_pipeline_profile", "date": datetime.date.today().isoformat(),
        "machine": cpu_machine() | {"load_average_before": list(os.getloadavg())},
        "libraries": library_versions(), "model": args.model,
        "pipeline": profile(args.model, args.n, args.batch, args.augment),
    }
    if args.loader_workers:
        result["loader"] = [loader(args.model, int(w), args.loader_batches, args.batch, args.augment)
                            for w in str(args.loader_workers).split(",")]
    if args.compare_processors:
        result["image_processors"] = compare_processors(args.model, min(args.n, 48), args.augment)
    result["machine"]["load_average_after"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("pipeline",) + (("loader",) if args.loader_workers else ()) + (
        ("image_processors",) if args.compare_processors else ())}, indent=1))


if __name__ == "__main__":
    main()
