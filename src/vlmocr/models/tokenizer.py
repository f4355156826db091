"""A byte-level BPE tokenizer trained offline, with Qwen2.5-VL's special tokens and chat template.

The built-in models cannot download Qwen's 151k-token vocabulary, so they get their own:
a byte-level BPE trained in a second on text like what they will read and write (manifest
JSON in the compact form training uses, the prompt contract, Faker-made names, addresses
and dates). The pre-tokenizer regex, the byte-level decoder, the special tokens and the
chat template are Qwen2.5-VL's, so every tool that handles a real Qwen2.5-VL tokenizer
(transformers, vLLM, LLaMA-Factory's qwen2_vl template) handles this one the same way.

Special tokens sit at the end of the vocabulary in Qwen's order; ids differ from Qwen's
(the vocabulary is smaller), which is why model configs read them from the tokenizer.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

from vlmocr._deps import require
from vlmocr.prompts import QUESTION, SYSTEM_MESSAGE
from vlmocr.schema import FIELD_ORDER, FOOTER_FIELDS, HEADER_FIELDS, PRODUCT_FIELDS, dumps_target

#: Qwen2.5's special tokens, in Qwen's id order.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)

#: Qwen2.5-VL-Instruct's chat template (the one shipped with the hub models).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

#: Qwen2's pre-tokenizer split (digits one by one, words with a leading space or symbol).
PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


def _manifest(fake: Any, rng: random.Random) -> dict[str, Any]:
    """A manifest-shaped target with Faker values (every value a string, as in the real data)."""
    def num(lo: int, hi: int) -> str:
        return str(rng.randint(lo, hi))

    date = lambda: fake.date(pattern=rng.choice(["%m/%d/%Y", "%Y-%m-%d", "%d.%m.%Y"]))  # noqa: E731
    header = {
        "route": f"{rng.choice('ABCDEFGH')}{num(1, 999)}",
        "pallet_number": num(1, 40),
        "delivery_date": date(),
        "load": num(1000, 99999),
        "dock": rng.choice(["", num(1, 60), f"D{num(1, 30)}"]),
        "shipment_id": f"{fake.bothify('??-#####').upper()}",
        "destination": fake.address().replace("\n", ", "),
        "asn_number": num(10**9, 10**10 - 1),
        "salesman": fake.name().upper() if rng.random() < 0.5 else fake.name(),
    }
    products = []
    for _ in range(rng.randint(1, 8)):
        products.append(
            {
                "description": f"{num(10000, 999999)} - {fake.catch_phrase().upper()[:40]}",
                "cases": num(1, 200),
                "sales_units": num(1, 500),
                "layers": num(0, 10),
            }
        )
    footer = {
        "total_cases": num(1, 999),
        "total_units": num(1, 9999),
        "total_layers": num(0, 60),
        "printed_date": f"{date()} {fake.time(pattern='%H:%M')}",
        "page_number": num(1, 9),
    }
    assert set(header) == set(HEADER_FIELDS) and set(footer) == set(FOOTER_FIELDS)
    return {**header, "products": products, **footer}


def iter_corpus(n_documents: int = 1500, *, seed: int = 0) -> Iterator[str]:
    """Deterministic training text: manifest JSON (compact and pretty), prompts, free text."""
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    yield SYSTEM_MESSAGE
    yield QUESTION
    yield " ".join(FIELD_ORDER + PRODUCT_FIELDS)
    yield "system user assistant You are a helpful assistant. Picture Video"
    for _ in range(n_documents):
        target = _manifest(fake, rng)
        yield dumps_target(target)
        if rng.random() < 0.2:
            yield json.dumps(target, indent=rng.choice([None, 2, 4]))
        yield fake.sentence(nb_words=rng.randint(4, 14))


def train_tokenizer(vocab_size: int = 4096, *, seed: int = 0, n_documents: int = 1500) -> Any:
    """Train a byte-level BPE on the built-in corpus and wrap it as a `Qwen2Tokenizer`.

    `vocab_size` counts everything: the 256 byte symbols, the merges and the 22 special
    tokens (added last, in Qwen's order). eos is `<|im_end|>` and pad `<|endoftext|>`,
    as in Qwen2.5-VL-Instruct.
    """
    tokenizers = require("tokenizers", extra="train", purpose="Building a model")
    transformers = require("transformers", extra="train", purpose="Building a model")
    from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, trainers

    if vocab_size < 512:
        raise ValueError(f"vocab_size must be at least 512, got {vocab_size}")
    bpe = tokenizers.Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIAL_TOKENS),
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(iter_corpus(n_documents, seed=seed), trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    vocab: dict[str, int] = state["vocab"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    tok = transformers.Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
    )
    tok.add_special_tokens(
        {"additional_special_tokens": list(SPECIAL_TOKENS[1:])},
        replace_extra_special_tokens=False,
    )
    tok.eos_token = "<|im_end|>"
    ids = tok.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    expected = list(range(len(vocab), len(vocab) + len(SPECIAL_TOKENS)))
    if ids != expected:  # pragma: no cover - guards a change in tokenizer internals
        raise RuntimeError(f"special token ids {ids} are not the expected {expected}")
    tok.chat_template = CHAT_TEMPLATE
    return tok


def special_token_ids(tokenizer: Any) -> dict[str, int]:
    """The token ids a Qwen2.5-VL config needs, read from the tokenizer (never hard-coded)."""
    get = tokenizer.convert_tokens_to_ids
    return {
        "bos_token_id": get("<|endoftext|>"),
        "eos_token_id": get("<|im_end|>"),
        "pad_token_id": get("<|endoftext|>"),
        "image_token_id": get("<|image_pad|>"),
        "video_token_id": get("<|video_pad|>"),
        "vision_start_token_id": get("<|vision_start|>"),
        "vision_end_token_id": get("<|vision_end|>"),
    }
