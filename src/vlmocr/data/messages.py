"""Chat `messages` samples with content parts (image + text), for TRL and ms-swift.

Each sample holds `images` (paths) and `messages` whose user turn has an
`{"type": "image", "image": path}` part before the question, the layout TRL's
vision-language collator and transformers' chat templates read.
"""

from __future__ import annotations

from typing import Any

from vlmocr.prompts import PromptContract
from vlmocr.records import Record


def format_messages(
    record: Record, image_ref: str, prompt: PromptContract, *, keep_prefix: bool = False
) -> dict[str, Any]:
    return {
        "id": record.image,
        "images": [image_ref],
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": prompt.system}]},
            {
                "role": "user",
                "content": [
                    {"type": "image", "image": image_ref},
                    {"type": "text", "text": prompt.question_for(record.prefix, keep_prefix=keep_prefix)},
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": record.suffix}]},
        ],
    }
