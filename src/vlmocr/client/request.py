"""One image, one chat request: retry only what is transient, report everything else.

Transient (retried up to `max_retries` times with capped, jittered exponential backoff):
connection failures, timeouts, 429 (waiting what `Retry-After` says, capped), and 5xx.
Not retried: 401/403 (`auth`), 404 (`not_found`), other 4xx (`request_rejected`: the
server refused this request, e.g. too many tokens). A 200 whose answer is unusable is a
content failure (see `answers.py`); it is retried only when a temperature ladder is
configured, each rung one more attempt at that temperature. `attempts` counts every
HTTP request sent for the image; `latency_s` runs from the first send to the final
answer, backoff included.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from vlmocr.client.answers import SchemaChecker, parse_answer, safe_text
from vlmocr.client.confidence import answer_confidence, from_openai
from vlmocr.prompts import PromptContract
from vlmocr.records import Prediction

if TYPE_CHECKING:
    import httpx


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried and content failures re-asked."""

    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    retry_after_cap_s: float = 120.0
    temperature_ladder: tuple[float, ...] = ()

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `retry` (0-based): capped, jittered in [½, 1]."""
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * (2**retry))
        return ceiling * (rng or random).uniform(0.5, 1.0)


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or HTTP-date), None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return max(0.0, seconds) if seconds == seconds else None  # NaN check


@dataclass(frozen=True)
class RequestSpec:
    """What every request of one run shares."""

    url: str
    model: str
    prompt: PromptContract
    max_tokens: int
    temperature: float = 0.0
    schema: dict[str, Any] | None = None
    checker: SchemaChecker | None = None
    allow_fenced: bool = False
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    schema_name: str = "vlmocr_target"
    #: Added to every body last (so it may override a key), e.g. vLLM's ignore_eos / min_tokens.
    extra_body: dict[str, Any] = field(default_factory=dict)
    #: Ask for each generated token's log-probability and give every field of an accepted answer a
    #: confidence (`vlmocr.client.confidence`).
    confidence: bool = False

    def body(self, image_url: str, temperature: float) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self.prompt.openai_messages(image_url),
            "max_tokens": self.max_tokens,
            "temperature": temperature,
        }
        if self.schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": self.schema_name, "schema": self.schema, "strict": True},
            }
        if self.confidence:
            body["logprobs"] = True
        body.update(self.extra_body)
        return body


@dataclass
class _Reply:
    data: dict[str, Any] | None = None
    error: str | None = None
    raw: str | None = None
    attempts: int = 0


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def _decode_reply(response: httpx.Response) -> _Reply:
    body = response.content
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _Reply(
            error=f"invalid_utf8: the server's reply is not valid UTF-8 (byte {exc.start})",
            raw=body.decode("utf-8", "backslashreplace"),
        )
    try:
        data = json.loads(text)
        choice = data["choices"][0]
        if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
            raise TypeError("choices[0].message missing")
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return _Reply(error=f"bad_response: not a chat completion ({exc})", raw=safe_text(text[:2000]))
    return _Reply(data=data)


async def _send(http: httpx.AsyncClient, spec: RequestSpec, body: dict[str, Any]) -> _Reply:
    """POST with the transient-retry policy; a _Reply with data, or with a final error."""
    import httpx

    policy = spec.policy
    error = "connection: no attempt made"
    attempts = 0
    for retry in range(policy.max_retries + 1):
        attempts += 1
        wait: float | None = None
        try:
            response = await http.post(spec.url, json=body)
        except httpx.TimeoutException as exc:
            error = f"timeout: no answer in time ({type(exc).__name__})"
        except httpx.TransportError as exc:
            error = f"connection: {type(exc).__name__}: {_short(str(exc)) or 'connection failed'}"
        else:
            status = response.status_code
            if status == 200:
                reply = _decode_reply(response)
                reply.attempts = attempts
                return reply
            detail = _short(response.text)
            if status == 429:
                error = f"rate_limited: HTTP 429 {detail}"
                wait = retry_after_seconds(response.headers.get("retry-after"))
                if wait is not None:
                    wait = min(wait, policy.retry_after_cap_s) + random.uniform(0, 0.1)
            elif status >= 500:
                error = f"server_error: HTTP {status} {detail}"
                after = retry_after_seconds(response.headers.get("retry-after"))
                wait = None if after is None else min(after, policy.retry_after_cap_s)
            elif status in (401, 403):
                return _Reply(error=f"auth: HTTP {status} {detail} (check --api-key)", attempts=attempts)
            elif status == 404:
                return _Reply(error=f"not_found: HTTP 404 {detail} (check --server and --model)", attempts=attempts)
            else:
                return _Reply(error=f"request_rejected: HTTP {status} {detail}", attempts=attempts)
        if retry == policy.max_retries:
            break
        await asyncio.sleep(policy.backoff(retry) if wait is None else wait)
    return _Reply(error=f"{error} (after {attempts} attempts)", attempts=attempts)


def _usage(data: dict[str, Any], key: str) -> int | None:
    value = (data.get("usage") or {}).get(key)
    return int(value) if isinstance(value, int) else None


async def request_image(http: httpx.AsyncClient, spec: RequestSpec, file: str, image_url: str) -> Prediction:
    """Ask for one image's JSON; retries per the policy; never raises for a bad answer."""
    start = time.monotonic()
    attempts = 0
    result: Prediction | None = None
    for temperature in (spec.temperature, *spec.policy.temperature_ladder):
        reply = await _send(http, spec, spec.body(image_url, temperature))
        attempts += reply.attempts
        extra: dict[str, Any] = {"temperature": temperature} if temperature != spec.temperature else {}
        if reply.data is None:
            result = Prediction(
                file=file, error=reply.error, raw=reply.raw, attempts=attempts,
                latency_s=round(time.monotonic() - start, 4), extra=extra,
            )
            if not (reply.error or "").startswith(("invalid_utf8", "bad_response")):
                return result  # transient retries exhausted or rejected: a new temperature won't help
            continue
        choice = reply.data["choices"][0]
        finish = choice.get("finish_reason")
        content = choice["message"].get("content")
        answer = parse_answer(content, finish, schema=spec.checker, allow_fenced=spec.allow_fenced)
        if spec.confidence and answer.ok:
            extra.update(answer_confidence(content, from_openai(choice), fenced=bool(answer.extra.get("fenced"))))
        result = Prediction(
            file=file,
            json=answer.json,
            error=answer.error,
            raw=answer.raw,
            attempts=attempts,
            prompt_tokens=_usage(reply.data, "prompt_tokens"),
            completion_tokens=_usage(reply.data, "completion_tokens"),
            latency_s=round(time.monotonic() - start, 4),
            finish_reason=finish,
            extra={**extra, **answer.extra},
        )
        if answer.ok:
            return result
    assert result is not None
    return result
