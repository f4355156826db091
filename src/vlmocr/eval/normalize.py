"""Value normalization before scoring, and Donut's `normalize_dict` / `flatten`.

Two layers, applied in this order:

1. `normalize_values` rewrites every string leaf of a JSON value: Unicode NFC and
   whitespace collapsed by default; case folding and number canonicalisation ("1,200.0"
   → "1200") on request. With `NormalizeConfig.none()` nothing changes.
2. `donut_normalize` / `donut_flatten` are clovaai/donut's `JSONParseEvaluator.normalize_dict`
   and `flatten`, reproduced behaviour for behaviour (keys sorted by (length, name), empty
   values dropped, scalars wrapped in one-item lists, list order kept: the 2022+ version).
   Donut's field F1 and tree edit distance are defined on that form.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

_NUMBER = re.compile(r"^[+-]?(?:\d{1,3}(?:[, ]\d{3})+|\d+)(?:\.\d+)?$")


@dataclass(frozen=True)
class NormalizeConfig:
    """How string values are normalized before they are compared."""

    unicode_nfc: bool = True
    whitespace: bool = True
    casefold: bool = False
    numbers: bool = False

    @classmethod
    def none(cls) -> NormalizeConfig:
        """No normalization at all (scores then equal Donut's evaluator exactly)."""
        return cls(unicode_nfc=False, whitespace=False, casefold=False, numbers=False)

    def to_dict(self) -> dict[str, bool]:
        return {
            "unicode_nfc": self.unicode_nfc,
            "whitespace": self.whitespace,
            "casefold": self.casefold,
            "numbers": self.numbers,
        }


def canonical_number(text: str) -> str | None:
    """The canonical form of a plain number ("1,200.50" → "1200.5"), or None if not one."""
    if not _NUMBER.match(text):
        return None
    try:
        value = Decimal(text.replace(",", "").replace(" ", ""))
    except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
        return None
    if value == value.to_integral_value():
        return str(value.quantize(Decimal(1)))
    return format(value.normalize(), "f")


def normalize_text(text: str, config: NormalizeConfig) -> str:
    """Normalize one string value according to `config`."""
    if config.unicode_nfc:
        text = unicodedata.normalize("NFC", text)
    if config.whitespace:
        text = " ".join(text.split())
    if config.casefold:
        text = text.casefold()
    if config.numbers:
        number = canonical_number(text.strip())
        if number is not None:
            text = number
    return text


def normalize_values(value: Any, config: NormalizeConfig) -> Any:
    """A copy of a JSON value with every string (keys excepted) normalized."""
    if isinstance(value, str):
        return normalize_text(value, config)
    if isinstance(value, dict):
        return {k: normalize_values(v, config) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize_values(v, config) for v in value]
    return value


_SCALARS = (str, int, float)


def donut_normalize(data: Any) -> Any:
    """Donut's `normalize_dict`: sorted keys, empties dropped, scalars as one-item lists.

    Kept quirks: any falsy value (None, "", 0, [], {}) becomes {} and is dropped from its
    parent; a whitespace-only string becomes [""] (kept); booleans are str()-ed as scalars
    but dropped inside lists; a list mixing dicts and scalars keeps only its scalars.
    """
    if not data:
        return {}
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key in sorted(data, key=lambda k: (len(k), k)):
            value = donut_normalize(data[key])
            if value:
                out[key] = value if isinstance(value, list) else [value]
        return out
    if isinstance(data, list):
        if all(isinstance(item, dict) for item in data):
            items = (donut_normalize(item) for item in data)
            return [item for item in items if item]
        return [str(item).strip() for item in data if type(item) in _SCALARS and str(item).strip()]
    return [str(data).strip()]


def donut_flatten(data: Any) -> list[tuple[str, Any]]:
    """Donut's `flatten`: (dotted key path, leaf) pairs; list items share their key."""
    pairs: list[tuple[str, Any]] = []

    def walk(value: Any, key: str) -> None:
        if type(value) is dict:
            for child_key, child in value.items():
                walk(child, f"{key}.{child_key}" if key else child_key)
        elif type(value) is list:
            for item in value:
                walk(item, key)
        else:
            pairs.append((key, value))

    walk(data, "")
    return pairs


try:  # C implementation when installed (a core dependency); pure Python otherwise
    from rapidfuzz.distance import Levenshtein as _RF_LEVENSHTEIN
except ImportError:  # pragma: no cover - rapidfuzz is a core dependency
    _RF_LEVENSHTEIN = None


def _levenshtein_py(a: str, b: str) -> int:
    if a == b:
        return 0
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def levenshtein(a: str, b: str) -> int:
    """Unit-cost edit distance (insert, delete, substitute), as nltk's `edit_distance`."""
    if _RF_LEVENSHTEIN is not None:
        return _RF_LEVENSHTEIN.distance(a, b)
    return _levenshtein_py(a, b)


def similarity(a: str, b: str) -> float:
    """1 - normalized edit distance, in [0, 1] (1.0 for two empty strings)."""
    if a == b:
        return 1.0
    longest = max(len(a), len(b))
    return 1.0 - levenshtein(a, b) / longest
