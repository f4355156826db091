"""The prompt contract: system message and question, in one place.

The same two strings are used to build training samples, stored with every trained
run and exported model (`vlmocr.json`), and sent by the client. Changing them in one
stage only is the classic way to lose accuracy between training and serving.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from vlmocr.errors import ConfigError

#: The seed's system message, verbatim (including its "palette" spelling).
SYSTEM_MESSAGE = (
    "You are a Vision Language Model specialized in extracting structured data from visual "
    "representations of palette manifests.\n"
    "Your task is to analyze the provided image of a palette manifest and extract the relevant "
    "information into a well-structured JSON format.\n"
    "The palette manifest includes details such as item names, quantities, dimensions, weights, "
    "and other attributes.\n"
    "Focus on identifying key data fields and ensuring the output adheres to the requested JSON "
    "structure.\n"
    "Provide only the JSON output based on the extracted information. Avoid additional "
    "explanations or comments."
)

#: The seed's question; it replaces Roboflow's raw `<JSON>` prefix by default.
QUESTION = "extract data in JSON format"

#: The image placeholder LLaMA-Factory expects in ShareGPT text.
IMAGE_TAG = "<image>"


@dataclass(frozen=True)
class PromptContract:
    """System message and question used from training through serving."""

    system: str = SYSTEM_MESSAGE
    question: str = QUESTION

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PromptContract:
        if not data:
            return cls()
        unknown = set(data) - {"system", "question"}
        if unknown:
            raise ConfigError(f"unknown prompt keys: {sorted(unknown)} (allowed: system, question)")
        return cls(**{k: str(v) for k, v in data.items()})

    def question_for(self, prefix: str | None, *, keep_prefix: bool = False) -> str:
        """The user question for a record: the record's own prefix if asked to keep it."""
        if keep_prefix and prefix:
            return prefix
        return self.question

    def openai_messages(self, image_url: str) -> list[dict[str, Any]]:
        """Chat messages for an OpenAI-compatible server, image before the question."""
        return [
            {"role": "system", "content": self.system},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": image_url}},
                    {"type": "text", "text": self.question},
                ],
            },
        ]
