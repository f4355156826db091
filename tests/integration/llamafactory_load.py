"""Run inside a LLaMA-Factory venv: load a converted dataset through LLaMA-Factory's own pipeline.

Usage: python llamafactory_load.py MODEL_DIR DATASET_DIR DATASET_NAME OUT_DIR
Prints one JSON object describing every preprocessed sample.
"""

import json
import sys

from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
from llamafactory.hparams import get_train_args
from llamafactory.model import load_tokenizer

model, dataset_dir, name, out = sys.argv[1:5]
model_args, data_args, training_args, _, _ = get_train_args(
    {
        "model_name_or_path": model,
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "lora",
        "dataset": name,
        "dataset_dir": dataset_dir,
        "template": "qwen2_vl",
        "cutoff_len": 8192,
        "output_dir": out,
        "overwrite_cache": True,
        "preprocessing_num_workers": 1,
        "report_to": "none",
    }
)
modules = load_tokenizer(model_args)
tokenizer = modules["tokenizer"]
template = get_template_and_fix_tokenizer(tokenizer, data_args)
dataset = get_dataset(template, model_args, data_args, training_args, stage="sft", **modules)["train_dataset"]
image_pad = tokenizer.convert_tokens_to_ids("<|image_pad|>")
samples = []
for row in dataset:
    ids, labels = row["input_ids"], row["labels"]
    first_label = next(i for i, v in enumerate(labels) if v != -100)
    image_positions = [i for i, t in enumerate(ids) if t == image_pad]
    samples.append(
        {
            "images": row.get("images"),
            "image_tokens": len(image_positions),
            "last_image_token": max(image_positions) if image_positions else None,
            "first_label": first_label,
            "prompt": tokenizer.decode(ids[:first_label]),
            "answer": tokenizer.decode([t for t in labels if t != -100], skip_special_tokens=True),
        }
    )
print(json.dumps({"n": len(dataset), "samples": samples}))
