"""Per-field confidence from the model's token log-probabilities.

With `--confidence`, every request asks for the log-probability of each token it generates
(OpenAI's `logprobs: true`; `SamplingParams(logprobs=0)` offline). Once an answer is valid JSON,
each leaf value (string, number, true/false/null) gets the joint probability of the tokens that
spell it and of the token that ends it (a string's closing quote, the delimiter after a number):
exp(sum of their log-probabilities), the model's own probability of that value, stopping where it
stops, given everything before it. An empty string is scored by its closing quote.

vLLM reports the probabilities of the model's distribution before sampling settings and
structured-output masks are applied (its default `raw_logprobs` mode), so a value the grammar
forced against the model's wish shows as unlikely.

Leaves are named as the evaluation names a predicted field (`vlmocr.fields`): `key`, `parent.key`,
`products[2].cases` (indices in the answer's own order). So `vlmocr eval` can tell how well the
confidence separates right values from wrong ones (`vlmocr.eval.confidence`).

Token texts come back decoded one token at a time, so a character split over several tokens
arrives as U+FFFD pieces; each run of them is placed on at most one non-ASCII character, in
whichever way lets the tokens spell the whole answer. The tokens must spell all of it (tokens after
it, such as an end-of-sequence marker, and before it, such as reasoning a server returns apart, are
left out). When they cannot be laid over the answer, or two values would have the same name, no
confidence is given for that answer and the reason is recorded instead (`confidence_error`).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from json.decoder import scanstring
from typing import Any

from vlmocr.client.answers import FENCE
from vlmocr.fields import field_path, item_path

REPLACEMENT = "\ufffd"
_FRAGMENTS = re.compile(f"{REPLACEMENT}+")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_WS = " \t\n\r"
_LITERALS = ("true", "false", "null")


class AlignmentError(ValueError):
    """The generated tokens do not spell the answer's text."""


Span = tuple[int, int] | None

#: How many alignments of the tokens over the answer are followed at once before giving up (split
#: characters are the only source of more than one; in practice there are one to three).
MAX_STATES = 64


def _ends(token: str, text: str, pos: int) -> list[int]:
    """Where `token` can end when it starts at `pos`: its text must match, except that each run of
    U+FFFD in it (a piece of a character split over tokens) covers zero or one non-ASCII character."""
    ends = [pos]
    for i, piece in enumerate(_FRAGMENTS.split(token)):
        found = set()
        for start in ends:
            choices = [start]
            if i and start < len(text) and ord(text[start]) > 127:
                choices.append(start + 1)
            found.update(at + len(piece) for at in choices if text.startswith(piece, at))
        ends = sorted(found)
        if not ends:
            break
    return ends


def _align(tokens: Sequence[str], text: str) -> list[Span]:
    """Spans of `tokens` over all of `text`; tokens after its end (end-of-sequence) get None."""
    if REPLACEMENT not in "".join(tokens):  # the common case: one way to do it, a linear walk
        spans: list[Span] = []
        pos = 0
        for i, token in enumerate(tokens):
            if pos == len(text):
                spans.append(None)
            elif text.startswith(token, pos):
                spans.append((pos, pos + len(token)))
                pos += len(token)
            else:
                raise AlignmentError(f"token {i} ({token[:20]!r}) does not continue the answer at character {pos}")
        if pos != len(text):
            raise AlignmentError(f"the tokens end at character {pos} of the answer's {len(text)}")
        return spans
    # Split characters: follow every way of placing the tokens (back[i][end] = (start, after the end?)).
    states = {0}
    back: list[dict[int, tuple[int, bool]]] = []
    for i, token in enumerate(tokens):
        step: dict[int, tuple[int, bool]] = {}
        for pos in sorted(states):
            if pos == len(text):
                step.setdefault(pos, (pos, True))
            for end in _ends(token, text, pos):
                step.setdefault(end, (pos, False))
        if not step:
            raise AlignmentError(f"token {i} ({token[:20]!r}) does not continue the answer")
        if len(step) > MAX_STATES:
            raise AlignmentError(f"more than {MAX_STATES} ways to place the split characters")
        back.append(step)
        states = set(step)
    if len(text) not in states:
        raise AlignmentError(f"the tokens end at character {max(states)} of the answer's {len(text)}")
    spans = []
    end = len(text)
    for step in reversed(back):
        start, after = step[end]
        spans.append(None if after else (start, end))
        end = start
    return spans[::-1]


def token_spans(tokens: Sequence[str], text: str) -> list[Span]:
    """The character span of `text` each token spells; None for tokens after its end (end-of-sequence).

    The tokens must spell all of `text`. When they do not from their first token, the answer is looked
    for as the end of what they spell (a server that returns reasoning apart from the answer gives the
    log-probabilities of both); the tokens before it get None. Raises `AlignmentError` otherwise.
    """
    try:
        return _align(tokens, text)
    except AlignmentError:
        joined = "".join(tokens)
        at = joined.rfind(text) if text else -1
        if at <= 0:
            raise
        offsets = list(itertools.accumulate(len(t) for t in tokens))
        if at not in offsets:
            raise
        k = offsets.index(at) + 1
        return [None] * k + _align(tokens[k:], text)


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WS:
        pos += 1
    return pos


def leaf_spans(text: str, start: int = 0) -> list[tuple[str, int, int]]:
    """(path, start, end) of every leaf value of the JSON document in `text` (which must be valid JSON).

    Strings are spanned inside their quotes (an empty one is the empty span at its closing quote), so
    `text[end]` is what ends every value: a string's closing quote, the delimiter after a number.
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
                pos = _skip_ws(text, value(pos, field_path(path, key)))
                if text[pos] == "}":
                    return pos + 1
                pos += 1  # the comma
        if char == "[":
            pos = _skip_ws(text, pos + 1)
            if text[pos] == "]":
                return pos + 1
            index = 0
            while True:
                pos = _skip_ws(text, value(pos, item_path(path, index)))
                index += 1
                if text[pos] == "]":
                    return pos + 1
                pos += 1
        if char == '"':
            _, end = scanstring(text, pos + 1)
            leaves.append((path, pos + 1, end - 1))
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

    A value's tokens are those that spell any of it or the character that ends it (a string's
    closing quote, the delimiter after a number), so the choice to stop is scored too; a piece of a
    split character placed on no character counts where it stands. Raises `AlignmentError` when the
    tokens do not spell `text`, ValueError when two values have the same name (keys with dots or
    brackets can make them).
    """
    if len(tokens) != len(logprobs):
        raise AlignmentError(f"{len(tokens)} tokens but {len(logprobs)} log-probabilities")
    placed = [(span[0], span[1], logprob, REPLACEMENT in token)
              for span, token, logprob in zip(token_spans(tokens, text), tokens, logprobs, strict=True)
              if span is not None]
    result: dict[str, float] = {}
    k = 0  # tokens and values are both in text order
    for path, lo, hi in leaf_spans(text, start):
        if path in result:
            raise ValueError(f"two values are both named {path!r}")
        while k < len(placed) and placed[k][1] <= lo and placed[k][0] < lo:
            k += 1
        total = 0.0
        for s, e, logprob, fragment in itertools.islice(placed, k, None):
            if s > hi:
                break
            if (s < e and e > lo) or (s == e and fragment and lo <= s):
                total += logprob
        result[path] = round(math.exp(total), 6) if math.isfinite(total) else 0.0
    return result


def from_openai(choice: dict[str, Any]) -> tuple[list[str], list[float]] | None:
    """Token texts and log-probabilities of an OpenAI chat choice, None if it has none."""
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
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
