"""Can a Qwen2.5-VL trained from random weights by `vlmocr train` learn to read at all?

The built-in model's runs so far learned the manifest's format but not its values (loss
plateau at about 1.1). That is either scale (too few samples for a from-scratch reader) or
something in the pipeline that keeps the image from reaching the answer. This probe tells
the two apart on a CPU in minutes: every sample has the same question and an answer that
only the image holds (a random 4-digit code drawn on a small page), so the answer can only
be learned by reading. Chance is 1 in 10,000 for the code and 0.1 a digit.
It found the pipeline's blocker: under CLIP's pixel statistics (what Qwen's processor ships)
a tower trained from scratch stayed at chance; under the documents' own it read
(`vlmocr model build --pixel-norm`, docs/builtin.md).

It builds a model (`vlmocr model build`), writes a Roboflow-style folder (train/ valid/ with
annotations.jsonl), trains with `vlmocr train` (every weight, the vision tower too, in-run
evaluation on held-out images) and scores the final weights on 200 more held-out images.

    python benchmarks/probe_reading_cpu.py --digits 1 --font-px 80 --steps 1500 --n-train 12000 \
        --eval-every 250 --pixel-norm clip          # then --pixel-norm documents: the A/B
    python benchmarks/probe_reading_cpu.py --font-px 40 --steps 2000 --n-train 20000 --eval-every 250
    python benchmarks/probe_reading_cpu.py --font-px 14 ...             # a manifest's text size
    python benchmarks/probe_reading_cpu.py --font-px 14 --upscale 2 ... # 4x the visual tokens
    python benchmarks/probe_reading_cpu.py --font-px 20 --render-scale 2 ... # the same, drawn crisp at 2x
    python benchmarks/probe_reading_cpu.py --font-px 20 --render-scale 2 --codes 4 ...  # four codes a page
    # a curriculum: one code on the 4-code page first, then four codes from those weights
    python benchmarks/probe_reading_cpu.py ... --codes 1 --lines 4 --steps 250
    python benchmarks/probe_reading_cpu.py ... --codes 4 --init-from runs/probe-reading/NAME/train/final
    python benchmarks/probe_reading_cpu.py ... --codes 4 --labels   # "route 1234" lines in random order

Writes benchmarks/results/builtin_reading_probe_cpu.json (one record per task and setting;
an existing file keeps its other records).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "benchmarks" / "results" / "builtin_reading_probe_cpu.json"
SYSTEM = "You read codes."
QUESTION = "Read the code in the picture. Answer in JSON."
PAGE = (224, 112)  # 8 x 4 merged tokens: 32 visual tokens a page


def draw_page(codes: list[str], font_px: int, rng: random.Random, scale: int = 1, lines: int = 1,
              page_scale: int = 1):  # -> PIL.Image.Image
    """The codes on a page of PAGE's width and `page_units(lines)` times its height, one in each of
    `lines` bands (in order, top to bottom, at a random place in the band); `scale` draws page and type
    larger (crisp); `page_scale` makes only the page larger (both sides), the type as it was: the same
    codes among page_scale^2 times the visual tokens, as a manifest's few values on a large page."""
    from PIL import Image, ImageDraw

    from vlmocr.data.synth.fonts import get_font

    face = rng.choice(["sans", "serif", "mono"])
    font = get_font(face, font_px * scale)
    size = (PAGE[0] * scale * page_scale, PAGE[1] * scale * page_units(lines) * page_scale)
    band = size[1] // max(lines, len(codes))
    page = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(page)
    for i, code in enumerate(codes):
        left, top, right, bottom = draw.textbbox((0, 0), code, font=font)
        x = rng.randint(0, max(0, size[0] - (right - left))) - left
        y = i * band + rng.randint(0, max(0, band - (bottom - top))) - top
        ink = rng.randint(0, 80)
        draw.text((x, y), code, font=font, fill=(ink, ink, ink))
    return page


def page_units(lines: int) -> int:
    """Page height in PAGE heights: two lines of code fit in one."""
    return max(1, (lines + 1) // 2)


LABELS = ("route", "dock", "load", "bay", "lot", "zone", "unit", "gate")


def answer_of(codes: list[str]) -> dict[str, str]:
    """One code: {"code": ...} as the first probes; several: {"c1": ..., "c2": ...} in page order."""
    return {"code": codes[0]} if len(codes) == 1 else {f"c{i + 1}": c for i, c in enumerate(codes)}


def _draw_pages(folder: Path, first: int, n: int, font_px: int, rng: random.Random, digits: int, scale: int,
                codes: int, lines: int, labels: bool, page_scale: int = 1) -> list[str]:
    """Pages first..first+n-1 into `folder`; their annotation lines."""
    rows = []
    for i in range(first, first + n):
        page_codes = ["".join(rng.choice("0123456789") for _ in range(digits)) for _ in range(codes)]
        name = f"{i:06d}.png"
        if labels:
            keys = list(LABELS[:codes])
            order = rng.sample(range(codes), codes)
            draw_page([f"{keys[j]} {page_codes[j]}" for j in order], font_px, rng, scale, lines, page_scale).save(folder / name)
            answer = dict(zip(keys, page_codes))
        else:
            draw_page(page_codes, font_px, rng, scale, lines, page_scale).save(folder / name)
            answer = answer_of(page_codes)
        rows.append(json.dumps({"image": name, "prefix": QUESTION, "suffix": json.dumps(answer)}))
    return rows


def _draw_chunk(args: tuple) -> list[str]:
    folder, first, n, font_px, seed, chunk, page = args
    return _draw_pages(folder, first, n, font_px, random.Random(f"{seed}-{chunk}"), **page)


CHUNK = 2000  # pages a process draws with one seed when --jobs > 1


def write_split(folder: Path, n: int, font_px: int, seed: int, digits: int = 4, scale: int = 1, codes: int = 1,
                lines: int = 1, labels: bool = False, jobs: int = 1, page_scale: int = 1) -> None:
    """`labels`: each line reads "LABEL CODE" with the page's labels in a random order, and the answer
    lists them in LABELS order (as a manifest's fields: found by their printed label, not their place).
    `jobs` > 1 draws chunks of CHUNK pages in that many processes, each chunk from its own seed
    ("SEED-CHUNK"), so the pages differ from one process's (jobs=1: one generator seeded with SEED)."""
    folder.mkdir(parents=True, exist_ok=True)
    page = {"digits": digits, "scale": scale, "codes": codes, "lines": lines, "labels": labels, "page_scale": page_scale}
    if jobs <= 1:
        rows = _draw_pages(folder, 0, n, font_px, random.Random(seed), **page)
    else:
        from concurrent.futures import ProcessPoolExecutor

        tasks = [(folder, first, min(CHUNK, n - first), font_px, seed, k, page)
                 for k, first in enumerate(range(0, n, CHUNK))]
        with ProcessPoolExecutor(jobs) as pool:
            rows = [row for chunk in pool.map(_draw_chunk, tasks) for row in chunk]
    (folder / "annotations.jsonl").write_text("".join(row + "\n" for row in rows))


def final_scores(model_dir: Path, data: Path, n: int) -> dict[str, Any]:
    """Greedy answers of the trained weights on the test split: code exact match, digit accuracy."""
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from vlmocr.contract import load_contract
    from vlmocr.train.data import TrainSample
    from vlmocr.train.evaluate import generate_answers, parse_json

    contract = load_contract(model_dir)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(model_dir)
    rows = [json.loads(line) for line in (data / "test" / "annotations.jsonl").read_text().splitlines()][:n]
    samples = [TrainSample(source=r["image"], image=str(data / "test" / r["image"]), system=SYSTEM, question=QUESTION,
                           answer=r["suffix"], gold=json.loads(r["suffix"])) for r in rows]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    answers = generate_answers(model, processor, samples, resolution=contract.resolution, max_new_tokens=16 * len(samples[0].gold),
                               batch_size=32, device=device, autocast=None)
    exact = digits = valid = total_codes = total_digits = 0
    for answer, sample in zip(answers, samples):
        parsed = parse_json(answer)
        valid += parsed is not None
        for key, gold in sample.gold.items():
            code = str(parsed.get(key, "")) if isinstance(parsed, dict) else ""
            exact += code == gold
            digits += sum(a == b for a, b in zip(code.ljust(len(gold)), gold))
            total_codes += 1
            total_digits += len(gold)
    return {"n": len(samples), "json_valid": valid / len(samples), "code_exact": exact / total_codes,
            "digit_accuracy": digits / total_digits, "examples": answers[:6]}


def run_probe(args: argparse.Namespace, work: Path, data: Path, lines: int, pixels: int,
              pixel_norm: str) -> tuple[float, float, str | None]:
    """Draw the pages, build (or take) the model and train it: (train seconds, data seconds, what stopped
    it early: "max_seconds", a signal's name, or None).
    Training stops at --max-seconds after the probe started, or when this process gets SIGTERM/SIGINT:
    the trainer checkpoints and the record keeps the curve so far."""
    from vlmocr.images import Resolution
    from vlmocr.models.build import build_model

    started = start = time.perf_counter()
    page = {"digits": args.digits, "scale": args.render_scale, "codes": args.codes, "lines": lines, "labels": args.labels,
            "page_scale": args.page_scale}
    write_split(data / "train", args.n_train, args.font_px, seed=args.train_seed, jobs=args.jobs, **page)
    write_split(data / "valid", 64, args.font_px, seed=2, **page)
    write_split(data / "test", 200, args.font_px, seed=3, **page)
    data_s = time.perf_counter() - start
    model = work / "model"
    if args.init_from:
        model = args.init_from
    else:
        build_model(model, args.size, seed=args.model_seed, resolution=Resolution(min_pixels=pixels, max_pixels=pixels),
                    pixel_norm=pixel_norm, overwrite=True)
    config = {
        "model": str(model), "method": "full", "out": str(work / "train"),
        "data": {"dataset": str(data), "target_format": "verbatim", "num_workers": args.workers},
        "prompt": {"system": SYSTEM, "question": QUESTION},
        "optim": {"learning_rate": args.lr, "weight_decay": 0.01, "warmup_steps": args.warmup, "scheduler": "cosine",
                  "cycles": args.cycles, "cycle_decay": args.cycle_decay},
        "liger": {"auto": None, "on": True, "off": False}[args.liger],
        "batch_size": args.batch, "max_steps": args.steps, "max_length": max(256 * page_units(lines), pixels // 784 + 256), "precision": args.precision,
        "eval": {"every_steps": args.eval_every, "n_samples": 64, "batch_size": 32, "metric": "exact_match"},
        "checkpoint": {"every_steps": 10 ** 6, "keep_last": 1}, "log_every": 20,
    }
    (work / "train.json").write_text(json.dumps(config, indent=2))
    shutil.rmtree(work / "train", ignore_errors=True)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "vlmocr.cli.app", "train", str(work / "train.json")], cwd=REPO)
    asked: list[str] = []

    def stop(signum: int, frame: object) -> None:
        asked.append(signal.Signals(signum).name)
        proc.terminate()  # the trainer checkpoints and stops

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        left = None if args.max_seconds is None else max(1.0, args.max_seconds - (time.perf_counter() - started))
        proc.wait(timeout=left)
    except subprocess.TimeoutExpired:
        print(f"--max-seconds {args.max_seconds}: stopping the run", flush=True)
        asked.append("max_seconds")
        proc.terminate()
    finally:
        proc.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    train_s = time.perf_counter() - start
    if proc.returncode and not asked and not (work / "train" / "final").is_dir():
        raise SystemExit(f"vlmocr train failed (exit {proc.returncode})")
    return train_s, data_s, asked[0] if asked else None


def short_float(x: float) -> str:
    """3e-4 -> '3e-4', 1.5e-4 -> '1.5e-4': a learning rate in a record name, exact and short."""
    mantissa, exponent = f"{x:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "probe-reading")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--font-px", type=int, default=40)
    parser.add_argument("--digits", type=int, default=4)
    parser.add_argument("--upscale", type=int, default=1, help="resolution contract of N^2 times the page's "
                        "pixels: the processor upsamples, the same text becomes N^2 times the visual tokens")
    parser.add_argument("--page-scale", type=int, default=1, help="a page N times larger on each side, the type "
                        "as it was (the contract follows): the same codes among N^2 times the visual tokens")
    parser.add_argument("--render-scale", type=int, default=1, help="draw page and type N times larger "
                        "(crisp glyphs; the contract follows): against --upscale N, the same visual tokens")
    parser.add_argument("--pixel-norm", default=None, help="the built model's image normalization "
                        "(vlmocr model build --pixel-norm); default: the size's own")
    parser.add_argument("--n-train", type=int, default=12000)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--cycles", type=int, default=1, help="warm restarts: --steps split into this many cycles, "
                        "each with its own warm-up and cosine to zero (optim.cycles)")
    parser.add_argument("--cycle-decay", type=float, default=1.0, help="each cycle's peak lr is this times the "
                        "one before (optim.cycle_decay)")
    parser.add_argument("--warmup", type=int, default=50, help="warm-up steps (of each cycle)")
    parser.add_argument("--liger", choices=("auto", "on", "off"), default="auto", help="Liger's Triton kernels "
                        "(train config `liger`; auto: on a CUDA GPU when installed)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="training precision (train config "
                        "`precision`; the built-in model trains under bf16 on a GPU, these probes under fp32 by default)")
    parser.add_argument("--model-seed", type=int, default=0, help="seed of the model's random initial weights")
    parser.add_argument("--codes", type=int, default=1, help="codes a page, one a line (answer keys c1..cN)")
    parser.add_argument("--lines", type=int, default=None, help="page height in lines (default --codes): "
                        "--codes 1 --lines 4 draws one code on the page of a 4-code run (a curriculum's first stage)")
    parser.add_argument("--labels", action="store_true", help="each code after its printed label, lines in a "
                        "random order, answer keys the labels in a fixed order (--codes up to 8)")
    parser.add_argument("--init-from", type=Path, default=None, help="start from these trained weights instead of "
                        "a fresh build (a curriculum's second stage; the page size must match)")
    parser.add_argument("--train-seed", type=int, default=1, help="seed of the training pages (another value "
                        "gives fresh pages, e.g. for a run continued with --init-from)")
    parser.add_argument("--name", default=None, help="record name (default: from the settings)")
    parser.add_argument("--jobs", type=int, default=1, help="processes drawing the pages (>1: other pages than "
                        "one process draws from the same seed, see write_split)")
    parser.add_argument("--workers", type=int, default=1, help="training data-loader workers")
    parser.add_argument("--max-seconds", type=float, default=None, help="stop training this long after the probe "
                        "started, page drawing included (the trainer checkpoints; the record keeps the curve so far, "
                        "with no final test); SIGTERM/SIGINT to the probe do the same")
    parser.add_argument("--collect-only", action="store_true", help="train nothing: write the record of the run "
                        "already in the output folder (e.g. one stopped from outside), from its metrics; give the "
                        "settings it ran with")
    parser.add_argument("--gpu-name", default=None, help="with --collect-only: the GPU a run trained on")
    parser.add_argument("--results", type=Path, default=None, help="results file (default: "
                        "benchmarks/results/builtin_reading_probe_cpu.json, or ..._gpu.json where CUDA is present)")
    args = parser.parse_args()
    lines = args.lines or args.codes
    if args.labels and args.codes > len(LABELS):
        parser.error(f"--labels has {len(LABELS)} labels; --codes {args.codes} is more")
    if lines < args.codes:
        parser.error(f"--lines {lines} is fewer than --codes {args.codes}")

    from vlmocr.models.build import SIZES

    pixel_norm = args.pixel_norm or SIZES[args.size].pixel_norm
    name = args.name or (f"font{args.font_px}" + (f"_{args.size}" if args.size != "tiny" else "")
                         + (f"_digits{args.digits}" if args.digits != 4 else "")
                         + f"_{pixel_norm}" + (f"_x{args.upscale}" if args.upscale != 1 else "")
                         + (f"_render{args.render_scale}" if args.render_scale != 1 else "")
                         + (f"_page{args.page_scale}" if args.page_scale != 1 else "")
                         + (f"_codes{args.codes}" if args.codes != 1 else "") + ("_labels" if args.labels else "") + (f"_lines{lines}" if lines != args.codes else "")
                         + (f"_cycles{args.cycles}" if args.cycles != 1 else "")
                         + (f"_decay{args.cycle_decay:g}" if args.cycle_decay != 1 else "")
                         + (f"_liger{args.liger}" if args.liger != "auto" else "")
                         + (f"_{args.precision}" if args.precision != "fp32" else "")
                         + (f"_lr{short_float(args.lr)}" if args.lr != 1e-3 else "")
                         + (f"_mseed{args.model_seed}" if args.model_seed else "")
                         + (f"_tseed{args.train_seed}" if args.train_seed != 1 else "")
                         + ("_continued" if args.init_from else ""))
    pixels = PAGE[0] * PAGE[1] * page_units(lines) * (args.upscale * args.render_scale * args.page_scale) ** 2
    if args.init_from:
        from vlmocr.contract import load_contract

        if load_contract(args.init_from).resolution.max_pixels != pixels:
            parser.error(f"--init-from {args.init_from}: its resolution contract is not this page's {pixels} pixels "
                         "(--codes/--lines/--render-scale/--upscale/--page-scale must match the run it continues)")
    work = args.out / name
    data = work / "data"
    if args.collect_only:
        train_s = data_s = stopped = None
        if not (work / "train" / "metrics.jsonl").is_file():
            parser.error(f"--collect-only: {work / 'train' / 'metrics.jsonl'} does not exist")
    else:
        train_s, data_s, stopped = run_probe(args, work, data, lines, pixels, pixel_norm)
    finished = (work / "train" / "final").is_dir()
    rows = [json.loads(line) for line in (work / "train" / "metrics.jsonl").read_text().splitlines()]
    curve = [{"step": r["step"], "samples_seen": r["step"] * args.batch, "exact_match": r.get("exact_match"),
              "json_valid": r.get("json_valid"), "image_gain_values": r.get("image_gain_values"),
              "image_gain_structure": r.get("image_gain_structure")} for r in rows if r.get("kind") == "eval"]
    losses = [r["loss"] for r in rows if r.get("kind") == "train"]
    curve_steps = [r["step"] for r in rows if r.get("kind") in ("train", "eval")]
    final = final_scores(work / "train" / "final", data, 200) if finished else None

    import torch

    from vlmocr.fileio import cpu_machine

    if args.collect_only:  # where the run trained, not where it is collected
        cuda = any("gpu_peak_gib" in r for r in rows)
        gpu = args.gpu_name
        machine = {"gpu": gpu} if cuda else cpu_machine()
    else:
        cuda = torch.cuda.is_available()
        machine = cpu_machine() | ({"gpu": torch.cuda.get_device_name(0)} if cuda else {})
    result = args.results or (RESULT.with_name("builtin_reading_probe_gpu.json") if cuda else RESULT)
    record = {
        "name": name, "font_px": args.font_px, "digits": args.digits, "pixel_norm": pixel_norm, "page": list(PAGE),
        "render_scale": args.render_scale, "page_scale": args.page_scale,
        "visual_tokens": 32 * page_units(lines) * (args.upscale * args.render_scale * args.page_scale) ** 2,
        "codes": args.codes, "lines": lines, "labels": args.labels, "train_seed": args.train_seed, "init_from": str(args.init_from) if args.init_from else None,
        "model_size": args.size, "model_seed": args.model_seed, "steps": args.steps, "cycles": args.cycles,
        "cycle_decay": args.cycle_decay, "warmup_steps": args.warmup, "liger": args.liger, "precision": args.precision, "batch_size": args.batch, "learning_rate": args.lr,
        "train_images": args.n_train, "samples_seen": max(curve_steps, default=0) * args.batch,
        "stopped_early": not finished, "stopped_by": stopped, "page_jobs": args.jobs,
        "device": "cuda" if cuda else "cpu",
        "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None,
        "train_s": None if train_s is None else round(train_s, 1), "data_s": None if data_s is None else round(data_s, 1),
        "eval_curve": curve, "final_test": final,
        "chance": {"code_exact": 10.0 ** -args.digits, "digit_accuracy": 0.1},
    }
    existing = json.loads(result.read_text()) if result.is_file() else {}
    records = [r for r in existing.get("records", []) if r.get("name") != record["name"]] + [record]
    result.write_text(json.dumps({"machine": machine, "question": QUESTION,
                                  "what": "random digits (record: digits, font_px; codes a page, one a line, two lines to 112 px of a 224-wide page); "
                                          "one question for every sample",
                                  "records": records}, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("name", "loss_first", "loss_last", "train_s", "samples_seen")}
                     | (final or {}), indent=2))


if __name__ == "__main__":
    main()
