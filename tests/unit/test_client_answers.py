"""Answer parsing (no repair), retry arithmetic, image preparation and small client helpers."""

from __future__ import annotations

import base64
import io
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from PIL import Image

from vlmocr.client.answers import SchemaChecker, decoding_schema, error_kind, parse_answer
from vlmocr.client.extract import discover_images, normalize_base_url, percentile, prepare_image
from vlmocr.client.output import flatten, is_final
from vlmocr.client.request import RetryPolicy, retry_after_seconds
from vlmocr.errors import ConfigError, ImageError
from vlmocr.images import Resolution
from vlmocr.schema import manifest_schema

SMALL = Resolution(min_pixels=4 * 28 * 28, max_pixels=16 * 28 * 28)


@pytest.mark.parametrize(
    ("content", "finish", "kind"),
    [
        (None, "stop", "empty"),
        ("   ", "stop", "empty"),
        ('{"a": 1', "length", "length"),
        ('{"a": 1}', "length", "length"),  # cut at max_tokens even if it happens to parse
        ('{"a": 1} trailing', "stop", "invalid_json"),
        ('{"a": 1, "a": 2}', "stop", "invalid_json"),
        ('{"a": NaN}', "stop", "invalid_json"),
        ("Here is the JSON: {}", "stop", "invalid_json"),
        ('```json\n{"a": 1}\n```', "stop", "fenced_json"),
        ('```\n{"a": 1}\n```', "stop", "fenced_json"),
    ],
)
def test_bad_answers_are_named_and_keep_raw(content: str | None, finish: str, kind: str) -> None:
    answer = parse_answer(content, finish)
    assert error_kind(answer.error) == kind and answer.json is None and answer.raw == content


def test_good_answers_parse_exactly() -> None:
    assert parse_answer(' \n{"a": [1, "x"]}\n', "stop").json == {"a": [1, "x"]}
    fenced = parse_answer('```json\n{"a": 1}\n```', "stop", allow_fenced=True)
    assert fenced.json == {"a": 1} and fenced.extra == {"fenced": True}
    # allow_fenced accepts a fence, not prose around it
    assert parse_answer('Sure! ```json\n{"a": 1}\n```', "stop", allow_fenced=True).error.startswith("invalid_json")


def test_schema_checker_reports_the_path() -> None:
    checker = SchemaChecker(manifest_schema())
    answer = parse_answer('{"route": "x"}', "stop", schema=checker)
    assert answer.error.startswith("schema_violation: at (root): ") and "required" in answer.error
    control = '{"route": "a\\u0007b"}'  # a control character the schema's pattern forbids
    assert checker.violation({"route": "a\u0007b"}) is not None and parse_answer(control, "stop", schema=checker).error
    with pytest.raises(ConfigError):
        SchemaChecker({"type": "nonsense-type"})


def test_decoding_schema_drops_only_unenforceable_keywords() -> None:
    schema = {
        "type": "object",
        "properties": {
            "s": {"type": "string", "pattern": "^a*$", "maxLength": 5, "minLength": 1},
            "plain": {"type": "string", "maxLength": 5},
            "n": {"type": "number", "multipleOf": 2, "maximum": 9},
            "l": {"type": "array", "uniqueItems": True, "maxItems": 3, "items": {"type": "string"}},
        },
    }
    sent, dropped = decoding_schema(schema)
    assert sent["properties"]["s"] == {"type": "string", "pattern": "^a*$"}
    assert sent["properties"]["plain"] == {"type": "string", "maxLength": 5}
    assert sent["properties"]["n"] == {"type": "number", "maximum": 9}
    assert sent["properties"]["l"] == {"type": "array", "maxItems": 3, "items": {"type": "string"}}
    assert sorted(dropped) == ["/properties/l:uniqueItems", "/properties/n:multipleOf",
                               "/properties/s:maxLength", "/properties/s:minLength"]
    assert schema["properties"]["s"]["maxLength"] == 5  # the original is untouched


def test_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("0.5") == 0.5
    date = (now + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert retry_after_seconds(date, now=now) == pytest.approx(30.0)
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 0.0  # in the past
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    assert retry_after_seconds("-4") == 0.0


def test_backoff_is_capped_and_jittered() -> None:
    policy = RetryPolicy(backoff_base_s=0.5, backoff_cap_s=4.0)
    rng = random.Random(0)
    waits = [policy.backoff(retry, rng) for retry in range(10) for _ in range(20)]
    assert max(waits) <= 4.0 and min(waits) >= 0.25
    late = [policy.backoff(9, rng) for _ in range(50)]
    assert len(set(late)) > 1 and all(2.0 <= w <= 4.0 for w in late)


def test_final_rows() -> None:
    assert is_final({"json": {"a": 1}, "error": None})
    assert is_final({"json": None, "error": "length: cut"})
    assert is_final({"json": None, "error": "image_error: corrupt"})
    assert not is_final({"json": None, "error": "timeout: no answer (after 6 attempts)"})
    assert not is_final({"json": None, "error": "auth: HTTP 401"})
    assert not is_final({"json": None, "error": None})


def test_flatten_and_helpers() -> None:
    flat = flatten({"a": "1", "p": [{"d": "x"}, {"d": "y"}], "e": [], "n": None})
    assert flat == {"a": "1", "p.0.d": "x", "p.1.d": "y", "e": "", "n": ""}
    assert flatten([1, 2]) == {"0": 1, "1": 2} and flatten("s") == {"json": "s"}
    assert normalize_base_url("localhost:8000") == "http://localhost:8000/v1"
    assert normalize_base_url("https://api.example.com/v1/") == "https://api.example.com/v1"
    assert percentile([], 50) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5 and percentile([5.0], 95) == 5.0


def test_discover_images(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ("b.jpg", "a.PNG", "notes.txt", "sub/c.webp"):
        (tmp_path / "d" / name).write_bytes(b"x")
    found = discover_images([tmp_path / "d", tmp_path / "d" / "b.jpg"])
    assert [p.name for p in found] == ["a.PNG", "b.jpg"]
    assert [p.name for p in discover_images([tmp_path / "d"], recursive=True)] == ["a.PNG", "b.jpg", "c.webp"]
    with pytest.raises(ConfigError, match="no such file"):
        discover_images([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no images"):
        discover_images([tmp_path / "empty"])


def _decode(url: str) -> tuple[str, bytes, tuple[int, int]]:
    header, data = url.split(",", 1)
    raw = base64.b64decode(data)
    with Image.open(io.BytesIO(raw)) as img:
        return header, raw, img.size


def test_prepare_image_resizes_once_or_passes_through(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    Image.new("RGB", (500, 300), "white").save(big)
    header, _, (w, h) = _decode(prepare_image(big, SMALL))
    assert header == "data:image/jpeg;base64" and w % 28 == 0 and h % 28 == 0 and w * h <= SMALL.max_pixels
    exact = tmp_path / "exact.png"
    Image.new("RGB", (112, 84), "white").save(exact)  # already multiples of 28 within the bounds
    header, raw, size = _decode(prepare_image(exact, SMALL))
    assert header == "data:image/png;base64" and raw == exact.read_bytes() and size == (112, 84)
    with pytest.raises(ImageError):
        prepare_image(tmp_path / "nope.png", SMALL)


def test_client_imports_without_torch() -> None:
    import subprocess

    code = ("import sys, vlmocr.client.extract, vlmocr.client.offline, vlmocr.cli.extract, vlmocr.serve.vllm;"
            "bad=[m for m in ('torch','vllm','transformers') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
