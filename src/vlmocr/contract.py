"""The model contract stored as `vlmocr.json` beside a trained run or exported model.

It carries what training decided and serving must repeat: the prompt (system message,
question), the resolution (min/max pixels), the target JSON schema, the base model and
the versions that made it. Readers fall back to defaults for models without one (a hub
model like Qwen/Qwen2.5-VL-3B-Instruct).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmocr.errors import ConfigError
from vlmocr.fileio import atomic_write_json, provenance
from vlmocr.images import Resolution
from vlmocr.prompts import PromptContract
from vlmocr.schema import manifest_schema

CONTRACT_FILE = "vlmocr.json"


@dataclass(frozen=True)
class ModelContract:
    prompt: PromptContract = field(default_factory=PromptContract)
    resolution: Resolution = field(default_factory=Resolution)
    schema: dict[str, Any] | None = field(default_factory=manifest_schema)
    base_model: str | None = None
    max_new_tokens: int = 1024
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt.to_dict(),
            "resolution": self.resolution.to_dict(),
            "schema": self.schema,
            "base_model": self.base_model,
            "max_new_tokens": self.max_new_tokens,
            "extra": self.extra,
            "provenance": provenance(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelContract:
        return cls(
            prompt=PromptContract.from_dict(data.get("prompt")),
            resolution=Resolution.from_dict(data.get("resolution")),
            schema=data.get("schema"),
            base_model=data.get("base_model"),
            max_new_tokens=int(data.get("max_new_tokens", 1024)),
            extra=dict(data.get("extra") or {}),
        )


def save_contract(directory: Path, contract: ModelContract) -> Path:
    path = Path(directory) / CONTRACT_FILE
    atomic_write_json(path, contract.to_dict())
    return path


def load_contract(model: str | Path | None) -> ModelContract:
    """The contract stored with a model directory, or the defaults if it has none."""
    if model is None:
        return ModelContract()
    path = Path(model) / CONTRACT_FILE
    if not path.is_file():
        return ModelContract()
    try:
        return ModelContract.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: invalid model contract ({exc})") from exc
