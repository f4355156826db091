"""Per-field confidence from the model's token log-probabilities.

With `--confidence`, every request asks for the log-probability of each token it generates
(OpenAI's `logprobs: true`; `SamplingParams(logprobs=0)` offline). Once an answer is valid JSON,
each leaf value (string, number, true/false/null) gets the joint probability of the tokens that
spell it: exp(sum of their log-probabilities), the model's own probability of that value given
everything before it. A token that also spells a quote or a colon next to the value counts
towards it; an empty string is scored by the token that closes it.

vLLM reports the probabilities of the model's distribution before sampling settings and
structured-output masks are applied (its default `raw_logprobs` mode), so a value the grammar
forced against the model's wish shows as unlikely.

Leaves are named as the evaluation names a predicted field: `key`, `parent.key`,
`products[2].cases` (indices in the answer's own order). So `vlmocr eval` can tell how well the
confidence separates right values from wrong ones (`vlmocr.eval.confidence`).

Token texts come back decoded one token at a time, so a character split over several tokens
arrives as U+FFFD pieces. Such a run of tokens is given the stretch of the answer between the
tokens around it; when the tokens cannot be laid over the answer at all, no confidence is given
for that answer and the reason is recorded instead.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from json.decoder import scanstring
from typing import Any

REPLACEMENT = "\ufffd"
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_WS = " \t\n\r"
_LITERALS = ("true", "false", "null")


class AlignmentError(ValueError):
    """The generated tokens do not spell the answer's text."""


def _run_pattern(tokens: Sequence[str]) -> str:
    """A regex for tokens holding U+FFFD pieces: each run of them stands for any non-ASCII characters."""
    parts = []
    for token in tokens:
        for i, piece in enumerate(re.split(f"{REPLACEMENT}+", token)):
            if i:
                parts.append(r"[^\x00-\x7f]*")
            parts.append(re.escape(piece))
    return "".join(parts)


def token_spans(tokens: Sequence[str], text: str) -> list[tuple[int, int]]:
    """The character span of `text` each token spells (tokens after the end of `text` get empty spans).

    Raises `AlignmentError` when the tokens cannot be laid over the text.
    """
    spans: list[tuple[int, int]] = []
    pos, i, n = 0, 0, len(tokens)
    while i < n:
        token = tokens[i]
        if pos >= len(text):  # e.g. the end-of-sequence token, decoded as a special token
            spans.append((pos, pos))
            i += 1
            continue
        if REPLACEMENT not in token:
            if not text.startswith(token, pos):
                raise AlignmentError(f"token {i} ({token!r}) does not continue the answer at character {pos}")
            spans.append((pos, pos + len(token)))
            pos += len(token)
            i += 1
            continue
        j = i
        while j < n and REPLACEMENT in tokens[j]:
            j += 1
        k = j
        while k < n and not tokens[k]:
            k += 1
        follow = re.escape(tokens[k]) + "|" if k < n and REPLACEMENT not in tokens[k] else ""
        found = re.compile(f"(?:{_run_pattern(tokens[i:j])})(?={follow}\\Z)", re.DOTALL).match(text, pos)
        if found is None:
            raise AlignmentError(f"tokens {i}-{j - 1} (split characters) do not continue the answer at character {pos}")
        spans.extend([(pos, found.end())] * (j - i))
        pos, i = found.end(), j
    return spans


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WS:
        pos += 1
    return pos


def _join(base: str, key: str) -> str:
    return f"{base}.{key}" if base else key


def leaf_spans(text: str, start: int = 0) -> list[tuple[str, int, int]]:
    """(path, start, end) of every leaf value of the JSON document in `text` (which must be valid JSON).

    Strings are spanned inside their quotes; an empty string by its closing quote.
    """
    leaves: list[tuple[str, int, int]] = []

    def value(pos: int, path: str) -> int:
        pos = _skip_ws(text, pos)
        char = text[pos]
        if char == "{":
            pos = _skip_ws(text, pos + 1)
            if text[pos] == "}":
                return pos + 1
            while True:
                key, pos = scanstring(text, _skip_ws(text, pos) + 1)
                pos = _skip_ws(text, pos) + 1  # the colon
                pos = _skip_ws(text, value(pos, _join(path, key)))
                if text[pos] == "}":
                    return pos + 1
                pos += 1  # the comma
        if char == "[":
            pos = _skip_ws(text, pos + 1)
            if text[pos] == "]":
                return pos + 1
            index = 0
            while True:
                pos = _skip_ws(text, value(pos, f"{path}[{index}]"))
                index += 1
                if text[pos] == "]":
                    return pos + 1
                pos += 1
        if char == '"':
            _, end = scanstring(text, pos + 1)
            leaves.append((path, pos + 1, end - 1) if end - 1 > pos + 1 else (path, end - 1, end))
            return end
        for literal in _LITERALS:
            if text.startswith(literal, pos):
                leaves.append((path, pos, pos + len(literal)))
                return pos + len(literal)
        found = _NUMBER.match(text, pos)
        if found is None:
            raise ValueError(f"not JSON at character {pos}")
        leaves.append((path, pos, found.end()))
        return found.end()

    value(start, "")
    return leaves


def field_confidence(
    tokens: Sequence[str], logprobs: Sequence[float], text: str, *, start: int = 0
) -> dict[str, float]:
    """{leaf path: probability of its value} for the JSON answer `text` (beginning at `start`).

    Raises `AlignmentError` when the tokens do not spell `text`.
    """
    if len(tokens) != len(logprobs):
        raise AlignmentError(f"{len(tokens)} tokens but {len(logprobs)} log-probabilities")
    spans = token_spans(tokens, text)
    result: dict[str, float] = {}
    k = 0  # tokens are in text order, so the search for each leaf starts where the last one began
    for path, lo, hi in leaf_spans(text, start):
        while k < len(spans) and spans[k][1] <= lo:
            k += 1
        total = 0.0
        j = k
        while j < len(spans) and spans[j][0] < hi:
            if spans[j][1] > lo and spans[j][1] > spans[j][0]:
                total += logprobs[j]
            j += 1
        result[path] = round(math.exp(total), 6) if math.isfinite(total) else 0.0
    return result


def from_openai(choice: dict[str, Any]) -> tuple[list[str], list[float]] | None:
    """Token texts and log-probabilities of an OpenAI chat choice, None if it has none."""
    content = (choice.get("logprobs") or {}).get("content")
    if not isinstance(content, list):
        return None
    tokens, values = [], []
    for item in content:
        if not isinstance(item, dict) or not isinstance(item.get("token"), str):
            return None
        logprob = item.get("logprob")
        tokens.append(item["token"])
        values.append(float(logprob) if isinstance(logprob, (int, float)) else -math.inf)
    return tokens, values


def answer_confidence(
    content: str, tokens_and_logprobs: tuple[list[str], list[float]] | None, *, fenced: bool = False
) -> dict[str, Any]:
    """What goes into a prediction's `extra` for an accepted answer: `confidence` (per leaf),
    `min_confidence` and `min_confidence_field`, or `confidence_error` when the server sent no
    log-probabilities or they cannot be laid over the answer. `fenced`: the JSON is inside a code fence."""
    from vlmocr.client.answers import FENCE

    if tokens_and_logprobs is None:
        return {"confidence_error": "the server returned no log-probabilities"}
    fence = FENCE.match(content) if fenced else None
    start = fence.start("body") if fence is not None else 0
    try:
        confidence = field_confidence(*tokens_and_logprobs, content, start=start)
    except (AlignmentError, ValueError, IndexError) as exc:
        return {"confidence_error": f"{type(exc).__name__}: {exc}"}
    extra: dict[str, Any] = {"confidence": confidence}
    if confidence:
        weakest = min(confidence, key=lambda p: confidence[p])
        extra["min_confidence"] = confidence[weakest]
        extra["min_confidence_field"] = weakest
    return extra
