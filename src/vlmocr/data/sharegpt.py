"""ShareGPT samples for LLaMA-Factory, in exactly the seed's form, and its dataset_info entry."""

from __future__ import annotations

from typing import Any

from vlmocr.prompts import IMAGE_TAG, PromptContract
from vlmocr.records import Record


def format_sharegpt(
    record: Record, image_ref: str, prompt: PromptContract, *, keep_prefix: bool = False
) -> dict[str, Any]:
    """One sample: id, image, human `<image>\\n` + question, gpt = the suffix verbatim, system."""
    return {
        "id": record.image,
        "image": image_ref,
        "conversations": [
            {"from": "human", "value": f"{IMAGE_TAG}\n" + prompt.question_for(record.prefix, keep_prefix=keep_prefix)},
            {"from": "gpt", "value": record.suffix},
        ],
        "system": prompt.system,
    }


def dataset_info_entry(file_name: str) -> dict[str, Any]:
    """The seed's `dataset_info.json` entry for a ShareGPT file with one image per sample."""
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "images": "image", "system": "system"},
        "tags": {
            "role_tag": "from",
            "content_tag": "value",
            "user_tag": "human",
            "assistant_tag": "gpt",
        },
    }
