"""The naive baseline for training speed: a plain transformers + PEFT LoRA loop.

What a user writes from the model card and PEFT's docs: processor + chat template, labels =
input ids (padding masked), `model(**batch, labels=labels).loss`, PEFT LoRA r=16 on the
language model's attention and MLP projections, torch AdamW (not fused), optional
`model.gradient_checkpointing_enable()` (the usual, whole-model call). Same data, shape and
batch as `vlmocr train` in benchmarks/train_gpu.sh, so the two can be compared in one run.

  python benchmarks/naive_lora.py --model M --dataset D --batch-size 4 --steps 25 --out naive.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", required=True, help="Roboflow folder (train/annotations.jsonl)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--name", default="naive")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vlmocr.prompts import SYSTEM_MESSAGE, QUESTION

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    processor = AutoProcessor.from_pretrained(args.model)
    model = AutoModelForImageTextToText.from_pretrained(args.model, dtype=dtype).to(device)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05,
                      target_modules=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)")
    model = get_peft_model(model, lora)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)

    split = Path(args.dataset) / "train"
    rows = [json.loads(x) for x in (split / "annotations.jsonl").read_text().splitlines() if x.strip()]

    def batch(i: int):
        chosen = [rows[(i * args.batch_size + k) % len(rows)] for k in range(args.batch_size)]
        texts, images = [], []
        for row in chosen:
            messages = [
                {"role": "system", "content": [{"type": "text", "text": SYSTEM_MESSAGE}]},
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]},
                {"role": "assistant", "content": [{"type": "text", "text": row["suffix"]}]},
            ]
            texts.append(processor.apply_chat_template(messages, tokenize=False))
            images.append(Image.open(split / row["image"]).convert("RGB"))
        enc = processor(text=texts, images=images, return_tensors="pt", padding=True)
        labels = enc["input_ids"].clone()
        labels[enc["attention_mask"] == 0] = -100
        return {k: v.to(device) for k, v in enc.items()}, labels.to(device)

    times, tokens = [], []
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for step in range(args.steps):
        inputs, labels = batch(step)
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        loss = model(**inputs, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
            tokens.append(int(inputs["attention_mask"].sum()))
    total = sum(times)
    record = {
        "name": args.name,
        "samples_per_s": args.batch_size * len(times) / total,
        "tokens_per_s": sum(tokens) / total,
        "step_seconds_median": statistics.median(times),
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
        "batch_size": args.batch_size,
        "tokens_per_sample": sum(tokens) / (len(tokens) * args.batch_size),
        "gradient_checkpointing": args.gradient_checkpointing,
        "loss_last": loss.item(),
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "note": "step time excludes data preparation (processor on the main process), like vlmocr's data-wait-free rows",
    }
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
