"""CPU cost of one image request outside the GPU: the client's work and the server front-end's.

When GPU serving stops scaling with the GPU not saturated, the per-request CPU work is the
first suspect. This measures it, per image, single-threaded, on the same 768x768 synthetic
manifests the GPU benchmark sends (`bench_serve_gpu.py`) and the default resolution
contract (256..1280 visual tokens):

client side
  raw_client_base64    read the JPEG file + base64 (what a plain client does; the server resizes)
  vlmocr_prepare_image `vlmocr.client.inputs.prepare_image`: decode, resize to the contract
                       (bicubic, like the processor), JPEG q95, base64 (vlmocr extract's work,
                       run in a thread pool beside the event loop)
server front-end (what vLLM's API-server process does for each new image, before the engine)
  server_decode        base64 decode + PIL open + RGB convert of the data URL
  hf_processor_fast    the model's Qwen2-VL image processor (torchvision backend), original image
  hf_processor_slow    the same with the PIL/numpy backend (use_fast=False)
  *_preresized         the processor on an image vlmocr already resized (no resize left to do)
  chat_template        the chat template + tokenisation of the prompt (text part)

Each figure is CPU milliseconds an image (process time, one torch thread, median over the
images after a warm-up), and `ceiling_images_per_s_one_core` = 1000 / ms: the most images a
second one core can feed doing only that step. The machine is named in the result; a GPU
host's cores are faster or slower than this one's, so read the ratios first.

    python benchmarks/bench_frontend_cpu.py [--n 48] [--model DIR] [--out benchmarks/results/frontend_cpu.json]
"""

from __future__ import annotations

import argparse
import base64
import datetime
import io
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vlmocr.fileio import cpu_machine, library_versions

RESULTS = Path(__file__).parent / "results"


def cost(fn: Callable[[Any], Any], items: list[Any], warmup: int = 3) -> dict[str, float]:
    """Median and mean CPU ms of fn(item) over items, after `warmup` untimed calls."""
    for item in items[:warmup]:
        fn(item)
    times = []
    for item in items:
        t0 = time.process_time()
        fn(item)
        times.append((time.process_time() - t0) * 1000)
    median = statistics.median(times)
    return {"cpu_ms_median": round(median, 2), "cpu_ms_mean": round(statistics.fmean(times), 2),
            "ceiling_images_per_s_one_core": round(1000 / median, 1) if median > 0 else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--model", default=None,
                        help="model folder whose processor to use (default: a tiny model built here; "
                             "every Qwen2.5-VL size has the same image processor)")
    parser.add_argument("--out", type=Path, default=RESULTS / "frontend_cpu.json")
    args = parser.parse_args()

    import torch
    from PIL import Image
    from transformers import AutoImageProcessor, AutoTokenizer

    from vlmocr.client.inputs import prepare_image
    from vlmocr.contract import ModelContract
    from vlmocr.images import Resolution

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="vlmocr-frontend-"))
    model_dir = args.model
    if model_dir is None:
        from vlmocr.models.build import build_model

        model_dir = str(work / "tiny")
        build_model(Path(model_dir), "tiny")
    resolution = Resolution()
    images_dir = work / "images"
    images_dir.mkdir()
    from vlmocr.data.synth import SynthConfig, iter_samples

    files = []
    for i, sample in enumerate(iter_samples(SynthConfig(seed=0, augment="light"), split="test", limit=args.n)):
        path = images_dir / f"m{i:03d}.jpg"
        sample.image.save(path, quality=92)
        files.append(path)

    raw_urls = ["data:image/jpeg;base64," + base64.b64encode(p.read_bytes()).decode() for p in files]
    vlmocr_urls = [prepare_image(p, resolution) for p in files]

    def decode(url: str) -> Image.Image:
        data = base64.b64decode(url.split(",", 1)[1])
        with Image.open(io.BytesIO(data)) as im:
            return im.convert("RGB")

    originals = [decode(u) for u in raw_urls]
    resized = [decode(u) for u in vlmocr_urls]
    pixels = {"min_pixels": resolution.min_pixels, "max_pixels": resolution.max_pixels}
    fast = AutoImageProcessor.from_pretrained(model_dir, use_fast=True, **pixels)
    slow = AutoImageProcessor.from_pretrained(model_dir, use_fast=False, **pixels)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prompt = ModelContract().prompt
    messages = prompt.openai_messages("data:image/jpeg;base64,AAAA")

    def template(_: Any) -> Any:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return tokenizer(text)["input_ids"]

    steps = {
        "raw_client_base64": cost(lambda p: base64.b64encode(p.read_bytes()).decode(), files),
        "vlmocr_prepare_image": cost(lambda p: prepare_image(p, resolution), files),
        "server_decode_raw": cost(decode, raw_urls),
        "server_decode_preresized": cost(decode, vlmocr_urls),
        "hf_processor_fast": cost(lambda im: fast(images=[im], return_tensors="pt"), originals),
        "hf_processor_fast_preresized": cost(lambda im: fast(images=[im], return_tensors="pt"), resized),
        "hf_processor_slow": cost(lambda im: slow(images=[im], return_tensors="pt"), originals),
        "hf_processor_slow_preresized": cost(lambda im: slow(images=[im], return_tensors="pt"), resized),
        "chat_template": cost(template, list(range(args.n))),
    }
    grid = fast(images=[originals[0]], return_tensors="pt")["image_grid_thw"][0].tolist()
    def total(*names: str) -> float:
        return round(sum(steps[name]["cpu_ms_median"] for name in names), 2)

    per_request = {
        "raw_client_then_server_fast": total("raw_client_base64", "server_decode_raw", "hf_processor_fast"),
        "vlmocr_client_then_server_fast": total("vlmocr_prepare_image", "server_decode_preresized",
                                                "hf_processor_fast_preresized"),
        "server_front_end_fast_raw": total("server_decode_raw", "hf_processor_fast", "chat_template"),
        "server_front_end_fast_preresized": total("server_decode_preresized", "hf_processor_fast_preresized",
                                                  "chat_template"),
    }
    result = {
        "benchmark": "bench_frontend_cpu",
        "date": datetime.date.today().isoformat(),
        "machine": cpu_machine(),
        "libraries": library_versions(),
        "config": {"n": args.n, "image": "vlmocr.data.synth 768x768 JPEG q92, augment light",
                   "resolution": resolution.to_dict(), "image_grid_thw": grid,
                   "raw_jpeg_kib_mean": round(statistics.fmean(len(u) * 3 / 4 for u in raw_urls) / 1024, 1),
                   "vlmocr_jpeg_kib_mean": round(statistics.fmean(len(u) * 3 / 4 for u in vlmocr_urls) / 1024, 1),
                   "torch_threads": 1},
        "steps": steps,
        "per_request_cpu_ms": per_request,
        "ceiling_images_per_s_one_core": {k: round(1000 / v, 1) for k, v in per_request.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["steps"], indent=1))
    print(json.dumps(result["per_request_cpu_ms"], indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
