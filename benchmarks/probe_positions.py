"""Which position ids a model's weights were trained with: greedy answers under both, scored.

Qwen2.5-VL serves (transformers `generate` with the processor's full output, vLLM) with M-RoPE
positions: an image's tokens get their grid row and column, and text after the image resumes
at the running position + max(rows, columns). Training batches that lack the processor's
`mm_token_type_ids` (transformers 5) and carry no position ids make the model fall back to
1-D positions (0, 1, 2, ... over every token). Weights trained that way answer well only
under 1-D positions. This generates greedy answers for N test images twice, with M-RoPE
(`mm_token_type_ids` given) and with 1-D positions (left out), scores both with
`vlmocr.eval.metrics.summarize` against the gold answers, and writes the JSON.

    python benchmarks/probe_positions.py MODEL_DIR DATASET_SPLIT_DIR [--n 6] [--max-new-tokens 1024]
        [--out benchmarks/results/builtin_positions_probe.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

from vlmocr.fileio import cpu_machine, library_versions

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("split", type=Path, help="a Roboflow split folder (annotations.jsonl + images)")
    parser.add_argument("--n", type=int, default=6)
    parser.add_argument("--max-new-tokens", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=RESULTS / "builtin_positions_probe.json")
    args = parser.parse_args()

    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from vlmocr.contract import load_contract
    from vlmocr.eval.metrics import summarize
    from vlmocr.images import open_image, resize_for_model
    from vlmocr.train.collate import chat_messages

    contract = load_contract(args.model)
    processor = AutoProcessor.from_pretrained(args.model)
    processor.tokenizer.padding_side = "left"
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(args.model, dtype=torch.float32).eval()
    rows = [json.loads(line) for line in (args.split / "annotations.jsonl").read_text().splitlines()][: args.n]
    prompt = processor.apply_chat_template(chat_messages(contract.prompt.system, contract.prompt.question),
                                           add_generation_prompt=True, tokenize=False)
    images = [resize_for_model(open_image((args.split / r["image"]).read_bytes()), contract.resolution) for r in rows]
    enc = processor(text=[prompt] * len(rows), images=images, return_tensors="pt", padding=True)
    if "mm_token_type_ids" not in enc:
        raise SystemExit("this transformers' processor returns no mm_token_type_ids: nothing to compare")
    end = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    golds = [json.loads(r["suffix"]) for r in rows]
    modes = {}
    for mode in ("mrope", "one_d"):
        inputs = dict(enc) if mode == "mrope" else {k: v for k, v in enc.items() if k != "mm_token_type_ids"}
        start = time.perf_counter()
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=args.max_new_tokens, do_sample=False,
                                 eos_token_id=[end], pad_token_id=end)
        answers = processor.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        preds = []
        for answer in answers:
            try:
                preds.append(json.loads(answer))
            except json.JSONDecodeError:
                preds.append(None)
        summary = summarize(list(zip(preds, golds)))
        modes[mode] = {"json_valid": summary.json_valid, "field_f1": summary.field_f1,
                       "ted_accuracy": summary.ted_accuracy, "seconds": round(time.perf_counter() - start, 1),
                       "answers": answers}
        print(mode, json.dumps({k: v for k, v in modes[mode].items() if k != "answers"}), flush=True)
    result = {"benchmark": "probe_positions", "date": datetime.date.today().isoformat(), "machine": cpu_machine(),
              "libraries": library_versions(), "model": args.model, "split": str(args.split), "n": len(rows),
              "max_new_tokens": args.max_new_tokens, "golds": golds, "modes": modes}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
