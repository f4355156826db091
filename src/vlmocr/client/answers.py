"""One model answer → JSON or a named content error. Nothing is ever repaired.

An answer is accepted only if it is exactly one JSON value (whitespace around it is
allowed, as JSON allows), with no duplicate keys and no NaN/Infinity, valid UTF-8, not cut
off at max_tokens, and valid under the target schema when there is one. Otherwise the
error names what was wrong and the raw text is kept.

Error kinds (the part of `Prediction.error` before the first colon):

- `empty`: no text came back;
- `length`: the model stopped at max_tokens (`finish_reason == "length"`): truncated;
- `invalid_utf8`: the text holds bytes or code points that are not valid UTF-8;
- `fenced_json`: the JSON is wrapped in a Markdown code fence. Accepted only with
  `allow_fenced` (the `--allow-fenced` flag), and then marked `extra.fenced = true`;
- `invalid_json`: not one JSON value (syntax, duplicate key, NaN, trailing text);
- `schema_violation`: valid JSON that breaks the target schema.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from vlmocr.errors import ConfigError

CONTENT_ERRORS = frozenset({"empty", "length", "invalid_utf8", "fenced_json", "invalid_json", "schema_violation"})
FENCE = re.compile(r"^\s*```[ \t]*(?:json|JSON)?[ \t]*\r?\n(?P<body>.*?)\r?\n?[ \t]*```\s*$", re.DOTALL)


@dataclass(frozen=True)
class Answer:
    """What one answer amounted to: parsed JSON, or an error and the raw text."""

    json: Any = None
    error: str | None = None
    raw: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


def error_kind(error: str | None) -> str | None:
    """The kind of an error string ("kind: detail" → "kind")."""
    if error is None:
        return None
    return error.split(":", 1)[0].strip()


class SchemaChecker:
    """A compiled JSON-schema validator that reports the most relevant violation."""

    def __init__(self, schema: dict[str, Any]) -> None:
        import jsonschema

        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            cls.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ConfigError(f"the target schema is not a valid JSON schema: {exc.message}") from exc
        self.schema = schema
        self._validator = cls(schema)

    def violation(self, value: Any) -> str | None:
        """None if `value` is valid, else 'at PATH: MESSAGE' for the best-matching error."""
        import jsonschema

        error = jsonschema.exceptions.best_match(self._validator.iter_errors(value))
        if error is None:
            return None
        path = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return f"at {path}: {error.message[:300]}"


#: Keywords xgrammar (vLLM's default structured-output backend) refuses in combination:
#: a length bound on a string that has a pattern or format, multipleOf on numbers, and
#: uniqueItems/contains bounds on arrays. vLLM rejects the whole request if any is present.
_UNENFORCEABLE_STRING = ("minLength", "maxLength")
_UNENFORCEABLE_NUMBER = ("multipleOf",)
_UNENFORCEABLE_ARRAY = ("uniqueItems", "contains", "minContains", "maxContains")


def _types(node: dict[str, Any]) -> set[str]:
    kind = node.get("type")
    return {kind} if isinstance(kind, str) else {k for k in kind if isinstance(k, str)} if isinstance(kind, list) else set()


def decoding_schema(schema: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The schema to constrain decoding with, and the JSON paths of keywords left out.

    Structured-output engines cannot enforce every JSON-schema keyword (xgrammar refuses a
    string with both a pattern and a length bound, for one). Those keywords are dropped
    from what the server gets; the full schema is still checked on every answer, so an
    answer that breaks one of them is reported as `schema_violation`, never accepted.
    """
    dropped: list[str] = []

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, list):
            return [walk(item, f"{path}/{i}") for i, item in enumerate(node)]
        if not isinstance(node, dict):
            return node
        types = _types(node)
        remove: set[str] = set()
        if "string" in types and ("pattern" in node or "format" in node):
            remove.update(k for k in _UNENFORCEABLE_STRING if k in node)
        if types & {"integer", "number"}:
            remove.update(k for k in _UNENFORCEABLE_NUMBER if k in node)
        if "array" in types:
            remove.update(k for k in _UNENFORCEABLE_ARRAY if k in node)
        dropped.extend(f"{path or '/'}:{k}" for k in sorted(remove))
        return {k: walk(v, f"{path}/{k}") for k, v in node.items() if k not in remove}

    return walk(schema, ""), dropped


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def loads_strict(text: str) -> Any:
    """json.loads that also rejects duplicate keys and NaN/Infinity."""
    return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)


def safe_text(text: str) -> str:
    """`text` with lone surrogates escaped, so it can be written as UTF-8."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def parse_answer(
    content: str | None,
    finish_reason: str | None,
    *,
    schema: SchemaChecker | None = None,
    allow_fenced: bool = False,
) -> Answer:
    """Turn one answer into JSON or a named error (see the module docstring)."""
    if content is None or not content.strip():
        return Answer(error="empty: the model returned no text", raw=content)
    try:
        content.encode("utf-8")
    except UnicodeEncodeError as exc:
        return Answer(
            error=f"invalid_utf8: the answer holds code points that are not valid UTF-8 (position {exc.start})",
            raw=safe_text(content),
        )
    if finish_reason == "length":
        return Answer(error="length: the answer was cut off at max_tokens (raise --max-tokens)", raw=content)
    extra: dict[str, Any] = {}
    text = content
    fence = FENCE.match(content)
    if fence is not None:
        if not allow_fenced:
            return Answer(
                error="fenced_json: the JSON is inside a Markdown code fence (pass --allow-fenced to accept it)",
                raw=content,
            )
        text = fence.group("body")
        extra["fenced"] = True
    try:
        value = loads_strict(text)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        return Answer(error=f"invalid_json: {exc}", raw=content)
    try:  # a \uXXXX escape can smuggle in a lone surrogate, which no UTF-8 file can hold
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return Answer(error="invalid_utf8: the JSON escapes a lone surrogate (not a character)", raw=content)
    if schema is not None:
        problem = schema.violation(value)
        if problem is not None:
            return Answer(error=f"schema_violation: {problem}", raw=content, extra=extra)
    return Answer(json=value, raw=content, extra=extra)
