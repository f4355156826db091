"""The extraction client against a fake OpenAI server: every failure mode the issue names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.unit.test_client_fake_server import VALID, Action, FakeOpenAI, manifest
from vlmocr.client.extract import ExtractConfig, ExtractResult, extract
from vlmocr.contract import ModelContract, save_contract
from vlmocr.errors import ConfigError, ServerError
from vlmocr.images import Resolution
from vlmocr.prompts import PromptContract
from vlmocr.schema import STRING_PATTERN, manifest_schema

RESOLUTION = Resolution(min_pixels=4 * 28 * 28, max_pixels=16 * 28 * 28)
PROMPT = PromptContract(system="You read manifests.", question="JSON please")
KEYS = {"file", "json", "error", "raw", "attempts", "prompt_tokens", "completion_tokens", "latency_s",
        "finish_reason", "extra"}


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    path = tmp_path / "model"
    path.mkdir()
    save_contract(path, ModelContract(prompt=PROMPT, resolution=RESOLUTION, max_new_tokens=300))
    return path


def make_images(folder: Path, n: int, size: tuple[int, int] = (300, 200)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"doc{i:02d}.jpg"
        Image.new("RGB", size, (255 - i, 250, 240)).save(path)
        paths.append(path)
    return paths


def run(fake: FakeOpenAI, images: list[Path], tmp_path: Path, **overrides: Any) -> tuple[ExtractResult, list[dict]]:
    settings: dict[str, Any] = {
        "server": fake.base_url, "out": tmp_path / "preds.jsonl", "backoff_base_s": 0.01,
        "backoff_cap_s": 0.05, "concurrency": 1,
    }
    settings.update(overrides)
    result = extract(images, ExtractConfig(**settings))
    rows = [json.loads(line) for line in (tmp_path / "preds.jsonl").read_text().splitlines()]
    return result, rows


def test_ok_path_sends_contract_and_resized_base64(tmp_path: Path, model_dir: Path) -> None:
    images = make_images(tmp_path / "img", 2, size=(900, 600))  # larger than max_pixels: resized
    with FakeOpenAI(root=str(model_dir)) as fake:
        result, rows = run(fake, images, tmp_path)
    assert result.ok == 2 and result.failed == 0 and result.contract_source.endswith("vlmocr.json")
    assert {row["file"] for row in rows} == {str(p) for p in images}
    for row in rows:
        assert set(row) == KEYS
        assert row["json"] == manifest() and row["error"] is None and row["attempts"] == 1
        assert (row["prompt_tokens"], row["completion_tokens"], row["finish_reason"]) == (100, 20, "stop")
    body = fake.requests[0]
    assert body["model"] == "fake-model" and body["max_tokens"] == 300 and body["temperature"] == 0.0
    assert body["messages"][0] == {"role": "system", "content": PROMPT.system}
    assert body["messages"][1]["content"][1] == {"type": "text", "text": PROMPT.question}
    assert body["messages"][1]["content"][0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    sent = fmt["json_schema"]["schema"]
    assert sent["properties"]["route"] == {"type": "string", "pattern": STRING_PATTERN}  # no maxLength: see below
    assert {k: v for k, v in sent.items() if k != "properties"} == {
        k: v for k, v in manifest_schema().items() if k != "properties"}
    for width, height in fake.image_sizes():
        assert width % 28 == 0 and height % 28 == 0
        assert RESOLUTION.min_pixels <= width * height <= RESOLUTION.max_pixels


def test_429_waits_for_retry_after(tmp_path: Path) -> None:
    images = make_images(tmp_path / "img", 1)
    with FakeOpenAI([Action(status=429, headers={"Retry-After": "1"})]) as fake:
        result, rows = run(fake, images, tmp_path)
    assert rows[0]["json"] == manifest() and rows[0]["attempts"] == 2
    assert fake.times[1] - fake.times[0] >= 0.95  # honoured, not the 0.05 s backoff cap


def test_5xx_retried_then_reported_as_transient(tmp_path: Path) -> None:
    images = make_images(tmp_path / "img", 2)
    script = [Action(status=500), Action(status=503), Action()]
    with FakeOpenAI(script, default=Action(status=502)) as fake:
        result, rows = run(fake, images, tmp_path, max_retries=2)
    by_file = {row["file"]: row for row in rows}
    first, second = by_file[str(images[0])], by_file[str(images[1])]
    assert first["json"] == manifest() and first["attempts"] == 3
    assert second["json"] is None and second["error"].startswith("server_error: HTTP 502")
    assert second["attempts"] == 3 and result.errors == {"server_error": 1}


def test_connection_reset_is_retried(tmp_path: Path) -> None:
    images = make_images(tmp_path / "img", 1)
    with FakeOpenAI([Action(reset=True)]) as fake:
        _, rows = run(fake, images, tmp_path)
    assert rows[0]["json"] == manifest() and rows[0]["attempts"] == 2


def test_truncated_json_with_length_is_reported_not_repaired(tmp_path: Path) -> None:
    images = make_images(tmp_path / "img", 1)
    truncated = VALID[:40]
    with FakeOpenAI([Action(content=truncated, finish_reason="length")]) as fake:
        result, rows = run(fake, images, tmp_path)
    row = rows[0]
    assert row["json"] is None and row["error"].startswith("length:") and row["raw"] == truncated
    assert row["attempts"] == 1 and len(fake.requests) == 1 and result.errors == {"length": 1}


def test_temperature_ladder_reasks_content_failures(tmp_path: Path) -> None:
    images = make_images(tmp_path / "img", 1)
    with FakeOpenAI([Action(content="{not json"), Action(content="{still not")]) as fake:
        _, rows = run(fake, images, tmp_path, temperature_ladder=(0.4, 0.8))
    assert [body["temperature"] for body in fake.requests] == [0.0, 0.4, 0.8]
    assert rows[0]["json"] == manifest() and rows[0]["attempts"] == 3
    assert rows[0]["extra"] == {"temperature": 0.8}


def test_code_fence_is_an_error_unless_allowed(tmp_path: Path) -> None:
    fenced = f"```json\n{VALID}\n```"
    images = make_images(tmp_path / "img", 1)
    with FakeOpenAI([Action(content=fenced)]) as fake:
        _, rows = run(fake, images, tmp_path)
    assert rows[0]["json"] is None and rows[0]["error"].startswith("fenced_json") and rows[0]["raw"] == fenced
    with FakeOpenAI([Action(content=fenced)]) as fake:
        _, rows = run(fake, images, tmp_path, allow_fenced=True, mode="overwrite")
    assert rows[0]["json"] == manifest() and rows[0]["extra"] == {"fenced": True}


def test_invalid_utf8_body_and_lone_surrogates(tmp_path: Path) -> None:
    envelope = json.dumps({"choices": [{"finish_reason": "stop", "message": {"content": "X"}}]}).encode()
    bad_bytes = envelope.replace(b'"X"', b'"\xff\xfe{"')
    # A lone surrogate in the answer text itself, and one escaped inside the answer's JSON.
    in_text = json.dumps({"choices": [{"finish_reason": "stop", "message": {"content": '{"a":"\udc80"}'}}]})
    in_json = json.dumps({"choices": [{"finish_reason": "stop", "message": {"content": '{"a":"\\udc80"}'}}]})
    images = make_images(tmp_path / "img", 3)
    script = [Action(body=bad_bytes), Action(body=in_text.encode()), Action(body=in_json.encode())]
    with FakeOpenAI(script) as fake:
        result, rows = run(fake, images, tmp_path, use_schema=False)
    assert [row["error"].split(":")[0] for row in rows] == ["invalid_utf8"] * 3
    assert "\\xff" in rows[0]["raw"] and "\\udc80" in rows[1]["raw"] and "\\udc80" in rows[2]["raw"]
    assert result.failed == 3  # and the file was written: every row read back above


def test_slow_answers_time_out_and_are_retried(tmp_path: Path) -> None:
    images = make_images(tmp_path / "img", 2)
    # Margins wide enough for a loaded machine: 3 s answers against a 1 s timeout.
    script = [Action(delay=3.0), Action(delay=3.0), Action()]
    with FakeOpenAI(script) as fake:
        _, rows = run(fake, images, tmp_path, timeout_s=1.0, max_retries=1)
    by_file = {row["file"]: row for row in rows}
    slow, fine = by_file[str(images[0])], by_file[str(images[1])]
    assert slow["error"].startswith("timeout:") and slow["attempts"] == 2
    assert fine["json"] == manifest() and fine["attempts"] == 1


def test_schema_violation_and_no_schema(tmp_path: Path) -> None:
    images = make_images(tmp_path / "img", 1)
    wrong = json.dumps(manifest(total_cases=120))  # a number where the schema wants a string
    with FakeOpenAI([Action(content=wrong)]) as fake:
        _, rows = run(fake, images, tmp_path)
    assert rows[0]["error"].startswith("schema_violation: at total_cases") and rows[0]["json"] is None
    with FakeOpenAI([Action(content=wrong)]) as fake:
        _, rows = run(fake, images, tmp_path, use_schema=False, mode="overwrite")
    assert "response_format" not in fake.requests[0]
    assert rows[0]["json"]["total_cases"] == 120 and rows[0]["error"] is None


def test_keywords_the_decoder_cannot_enforce_are_still_checked(tmp_path: Path) -> None:
    """xgrammar refuses pattern + maxLength; the server gets the pattern, the client checks the length."""
    images = make_images(tmp_path / "img", 1)
    too_long = json.dumps(manifest(route="x" * 201))
    with FakeOpenAI([Action(content=too_long)]) as fake:
        _, rows = run(fake, images, tmp_path)
    assert "maxLength" not in json.dumps(fake.requests[0]["response_format"])
    assert rows[0]["error"].startswith("schema_violation: at route") and "too long" in rows[0]["error"]


def test_custom_schema_file(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    (tmp_path / "s.json").write_text(json.dumps(schema))
    images = make_images(tmp_path / "img", 1)
    with FakeOpenAI([Action(content='{"a":1}')]) as fake:
        _, rows = run(fake, images, tmp_path, schema_path=tmp_path / "s.json")
    assert fake.requests[0]["response_format"]["json_schema"]["schema"] == schema
    assert rows[0]["json"] == {"a": 1}
    (tmp_path / "bad.json").write_text('{"type": 12}')
    with FakeOpenAI() as fake, pytest.raises(ConfigError, match="not a valid JSON schema"):
        run(fake, images, tmp_path, schema_path=tmp_path / "bad.json")


def test_client_errors_are_not_retried(tmp_path: Path) -> None:
    images = make_images(tmp_path / "img", 2)
    with FakeOpenAI([Action(status=400), Action(status=401)]) as fake:
        result, rows = run(fake, images, tmp_path)
    assert [row["error"].split(":")[0] for row in rows] == ["request_rejected", "auth"]
    assert [row["attempts"] for row in rows] == [1, 1] and len(fake.requests) == 2


def test_concurrency_is_bounded(tmp_path: Path) -> None:
    images = make_images(tmp_path / "img", 12)
    # The fake holds answers until 4 are open at once (or 1 s): 3 workers reach 3 and
    # never 4, on a machine of any speed.
    with FakeOpenAI(default=Action(hold_until=4, hold_timeout=1.0)) as fake:
        result, rows = run(fake, images, tmp_path, concurrency=3)
    assert result.ok == 12 and len(rows) == 12
    assert fake.max_in_flight == 3


def test_concurrency_spans_several_connection_pools(tmp_path: Path) -> None:
    # 20 workers over pools of 8 connections (3 pools): all of them in flight at once,
    # never more than asked for. The fake holds each answer until 20 are open (or 20 s
    # passed), so a client capped at one pool's 8 connections fails however fast it is.
    images = make_images(tmp_path / "img", 40)
    with FakeOpenAI(default=Action(hold_until=20)) as fake:
        result, rows = run(fake, images, tmp_path, concurrency=20, pool_connections=8)
    assert result.ok == 40 and len(rows) == 40
    assert fake.max_in_flight == 20


def test_unreadable_image_is_a_row_and_no_request(tmp_path: Path) -> None:
    images = make_images(tmp_path / "img", 1)
    broken = tmp_path / "img" / "broken.png"
    broken.write_bytes(b"not an image")
    with FakeOpenAI() as fake:
        result, rows = run(fake, [*images, broken], tmp_path)
    by_file = {row["file"]: row for row in rows}
    assert by_file[str(broken)]["error"].startswith("image_error:")
    assert len(fake.requests) == 1 and result.ok == 1


def test_model_discovery(tmp_path: Path) -> None:
    images = make_images(tmp_path / "img", 1)
    with FakeOpenAI(models=["a", "b"]) as fake:
        with pytest.raises(ConfigError, match="choose one with --model"):
            run(fake, images, tmp_path)
        result, _ = run(fake, images, tmp_path, model="b")
    assert result.model == "b" and fake.requests[0]["model"] == "b"
    assert result.contract_source == "defaults"


def test_server_down_is_a_clear_error(tmp_path: Path) -> None:
    images = make_images(tmp_path / "img", 1)
    config = ExtractConfig(server="http://127.0.0.1:9", out=tmp_path / "p.jsonl", max_retries=1,
                           backoff_base_s=0.01, connect_timeout_s=0.5)
    with pytest.raises(ServerError, match="cannot reach the server"):
        extract(images, config)
    assert not (tmp_path / "p.jsonl").exists()


def test_several_servers_share_the_work(tmp_path: Path) -> None:
    images = make_images(tmp_path / "img", 12)
    with FakeOpenAI(default=Action(delay=0.05)) as a, FakeOpenAI(default=Action(delay=0.05)) as b:
        result, rows = run(a, images, tmp_path, server=f"{a.base_url},{b.base_url}", concurrency=4)
    assert result.ok == 12 and sorted(row["file"] for row in rows) == sorted(str(p) for p in images)
    assert len(a.requests) >= 3 and len(b.requests) >= 3 and len(a.requests) + len(b.requests) == 12


def test_a_server_that_goes_away_hands_its_images_to_the_others(tmp_path: Path) -> None:
    images = make_images(tmp_path / "img", 10)
    with FakeOpenAI(default=Action(reset=True)) as dead, FakeOpenAI() as alive:
        result, rows = run(dead, images, tmp_path, server=[dead.base_url, alive.base_url], concurrency=4,
                           max_retries=1)
    assert dead.requests, "the dead server was asked first by its share of the workers"
    assert result.ok == 10 and result.failed == 0 and len(rows) == 10
    assert len(alive.requests) == 10


def test_when_every_server_goes_away_the_rows_say_so(tmp_path: Path) -> None:
    images = make_images(tmp_path / "img", 6)
    with FakeOpenAI(default=Action(reset=True)) as a, FakeOpenAI(default=Action(reset=True)) as b:
        result, rows = run(a, images, tmp_path, server=[a.base_url, b.base_url], concurrency=2, max_retries=0)
    assert result.failed == 6 and len(rows) == 6
    assert all(row["error"].startswith("connection:") for row in rows)


def test_servers_must_serve_one_model(tmp_path: Path) -> None:
    images = make_images(tmp_path / "img", 1)
    with FakeOpenAI(models=["a"]) as a, FakeOpenAI(models=["b"]) as b:
        with pytest.raises(ConfigError, match="serve different models"):
            run(a, images, tmp_path, server=[a.base_url, b.base_url])
        result, _ = run(a, images, tmp_path, server=[a.base_url, b.base_url], model="a")
    assert result.ok == 1 and result.model == "a"
    with pytest.raises(ConfigError, match="given twice"):
        ExtractConfig(server="127.0.0.1:8000, http://127.0.0.1:8000/v1")
