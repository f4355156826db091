"""Evaluation during training: generate JSON for validation images and score it.

Loss says little about whether the model writes valid, correct JSON, so the best
checkpoint is chosen by a score on generated answers: greedy `generate` on a fixed set of
validation samples (same prompt and resizing as training and serving), answers parsed
with `json.loads`, scored with the evaluation stage's `vlmocr.eval.metrics.summarize`
when it is installed, else with `score_json_fields` below (JSON validity, field F1 and
exact match over flattened (path, value) pairs).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from vlmocr.errors import ConfigError
from vlmocr.train.collate import chat_messages, load_image
from vlmocr.train.data import TrainSample

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalResult:
    step: int
    score: float
    metric: str
    metrics: dict[str, float]
    n: int
    seconds: float
    examples: list[dict[str, Any]] = field(default_factory=list)


def _flatten(value: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in _flatten(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [pair for v in value for pair in _flatten(v, f"{path}[]")]
    return [(path, "" if value is None else str(value).strip())]


def score_json_fields(pairs: Iterable[tuple[Any | None, Any]]) -> dict[str, float]:
    """JSON validity, micro field F1 and exact match over (prediction or None, gold) pairs."""
    n = valid = exact = 0
    tp = n_pred = n_gold = 0
    for pred, gold in pairs:
        n += 1
        gold_fields = Counter(_flatten(gold))
        n_gold += sum(gold_fields.values())
        if pred is None:
            continue
        valid += 1
        pred_fields = Counter(_flatten(pred))
        n_pred += sum(pred_fields.values())
        tp += sum((pred_fields & gold_fields).values())
        exact += int(pred == gold)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "json_valid": valid / n if n else 0.0,
        "field_f1": f1,
        "exact_match": exact / n if n else 0.0,
        "n": float(n),
    }


def score_pairs(pairs: list[tuple[Any | None, Any]]) -> dict[str, float]:
    """The evaluation stage's summary when available, else `score_json_fields`."""
    try:
        from vlmocr.eval.metrics import summarize
    except ImportError:
        return score_json_fields(pairs)
    summary = summarize(pairs)
    data = summary.to_dict() if hasattr(summary, "to_dict") else vars(summary)
    return {k: float(v) for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def parse_json(text: str) -> Any | None:
    try:
        return json.loads(text.strip())
    except (json.JSONDecodeError, ValueError):
        return None


def generate_answers(model: Any, processor: Any, samples: list[TrainSample], *, resolution: Any,
                     max_new_tokens: int, batch_size: int, device: Any, autocast: Any) -> list[str]:
    """Greedy answers for `samples` (left-padded batches, like a server would decode)."""
    import contextlib

    import torch

    tok = processor.tokenizer
    old_side = tok.padding_side
    tok.padding_side = "left"
    end_ids = [tok.convert_tokens_to_ids("<|im_end|>")]
    if tok.pad_token_id is not None:
        end_ids.append(tok.pad_token_id)
    answers: list[str] = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(samples), batch_size):
            chunk = samples[start:start + batch_size]
            texts = [processor.apply_chat_template(chat_messages(s.system, s.question), add_generation_prompt=True,
                                                   tokenize=False) for s in chunk]
            images = [load_image(s, resolution) for s in chunk]
            inputs = processor(text=texts, images=images, return_tensors="pt", padding=True).to(device)
            amp = (torch.autocast(device.type, dtype=autocast) if autocast is not None
                   else contextlib.nullcontext())
            with torch.no_grad(), amp:
                out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                     eos_token_id=end_ids, pad_token_id=end_ids[-1], use_cache=True)
            new = out[:, inputs["input_ids"].shape[1]:]
            answers.extend(tok.batch_decode(new, skip_special_tokens=True))
    finally:
        tok.padding_side = old_side
        model.train(was_training)
    return answers


def evaluate_samples(model: Any, processor: Any, samples: list[TrainSample], *, step: int, metric: str,
                     resolution: Any, max_new_tokens: int, batch_size: int, device: Any,
                     autocast: Any) -> EvalResult:
    """Generate, parse and score; `score` is `metrics[metric]`."""
    start = time.perf_counter()
    answers = generate_answers(model, processor, samples, resolution=resolution, max_new_tokens=max_new_tokens,
                               batch_size=batch_size, device=device, autocast=autocast)
    pairs = [(parse_json(a), s.gold) for a, s in zip(answers, samples)]
    metrics = score_pairs(pairs)
    if metric not in metrics:
        raise ConfigError(f"eval.metric {metric!r} is not one of {sorted(metrics)}")
    examples = [{"source": s.source, "answer": a[:2000], "valid": p is not None}
                for (p, _), a, s in zip(pairs, answers, samples)][:4]
    return EvalResult(step, float(metrics[metric]), metric, metrics, len(samples),
                      time.perf_counter() - start, examples)
