"""A fake OpenAI-compatible server for fault injection (stdlib http.server on 127.0.0.1).

Each chat request takes the next scripted `Action` (or the default): a normal answer,
an HTTP status with headers, a connection reset, raw bytes, or a delay. The server
records every request body so tests can check what the client sent. Run as a module
(`python -m tests.unit.test_client_fake_server PORT`) it serves until killed and starts
a grandchild process, standing in for vLLM in the process-group tests.

The tests at the bottom pin the fake's own behaviour, so the client tests stand on it.
"""

from __future__ import annotations

import base64
import io
import json
import socket
import struct
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from vlmocr.schema import FIELD_ORDER, PRODUCT_FIELDS, dumps_target


def manifest(**overrides: Any) -> dict[str, Any]:
    """A schema-valid manifest."""
    value: dict[str, Any] = {name: f"v-{name}" for name in FIELD_ORDER if name != "products"}
    value["products"] = [{name: "1" for name in PRODUCT_FIELDS}]
    value.update(overrides)
    return value


VALID = dumps_target(manifest())


@dataclass
class Action:
    """What the fake does with one chat request."""

    content: str | None = VALID
    finish_reason: str = "stop"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    reset: bool = False
    delay: float = 0.0
    # Hold the answer until this many requests have been in flight at once (or
    # hold_timeout passed): measures how many the client can have open, without
    # depending on how fast a loaded machine gets them out.
    hold_until: int = 0
    hold_timeout: float = 20.0
    # OpenAI's choices[0].logprobs.content: [{"token", "logprob", "bytes"}...], sent when set.
    logprobs: list[dict[str, Any]] | None = None


class FakeOpenAI:
    """Scripted OpenAI-compatible server; use as a context manager."""

    def __init__(
        self,
        script: list[Action] | None = None,
        *,
        default: Action | None = None,
        models: list[str] | None = None,
        root: str | None = None,
        port: int = 0,
    ) -> None:
        self.script: deque[Action] = deque(script or [])
        self.default = default or Action()
        self.models = models or ["fake-model"]
        self.root = root
        self.requests: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._peak = threading.Condition(self._lock)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def next_action(self) -> Action:
        with self._lock:
            return self.script.popleft() if self.script else self.default

    def image_sizes(self) -> list[tuple[int, int]]:
        """(width, height) of the image in every chat request received."""
        from PIL import Image

        sizes = []
        for body in self.requests:
            url = body["messages"][1]["content"][0]["image_url"]["url"]
            data = base64.b64decode(url.split(",", 1)[1])
            with Image.open(io.BytesIO(data)) as img:
                sizes.append(img.size)
        return sizes

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/health":
                    self._send(200, b"")
                elif self.path == "/v1/models":
                    data = [{"id": m, "object": "model", "root": fake.root or m} for m in fake.models]
                    self._send(200, json.dumps({"object": "list", "data": data}).encode())
                else:
                    self._send(404, b'{"error":"not found"}')

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                action = fake.next_action()
                with fake._lock:
                    fake.requests.append(body)
                    fake.times.append(time.monotonic())
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                    fake._peak.notify_all()
                    if action.hold_until:
                        fake._peak.wait_for(lambda: fake.max_in_flight >= action.hold_until, action.hold_timeout)
                try:
                    if action.delay:
                        time.sleep(action.delay)
                    if action.reset:  # RST instead of an answer
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        self.connection.close()
                        self.close_connection = True
                        return
                    if action.body is not None:
                        self._send(action.status, action.body, action.headers)
                    elif action.status != 200:
                        error = {"error": {"message": f"fake {action.status}", "code": action.status}}
                        self._send(action.status, json.dumps(error).encode(), action.headers)
                    else:
                        answer = {
                            "id": "fake", "object": "chat.completion", "model": body.get("model"),
                            "choices": [{"index": 0, "finish_reason": action.finish_reason,
                                         "message": {"role": "assistant", "content": action.content}}],
                            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
                        }
                        if action.logprobs is not None:
                            answer["choices"][0]["logprobs"] = {"content": action.logprobs}
                        self._send(200, json.dumps(answer).encode(), action.headers)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

        return Handler


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "fake-model", "messages": [], **extra}


def test_fake_answers_scripted_actions_in_order() -> None:
    script = [Action(status=429, headers={"Retry-After": "3"}), Action(content="hello")]
    with FakeOpenAI(script) as fake, httpx.Client() as http:
        first = http.post(f"{fake.base_url}/chat/completions", json=chat_body())
        second = http.post(f"{fake.base_url}/chat/completions", json=chat_body())
        third = http.post(f"{fake.base_url}/chat/completions", json=chat_body())
        models = http.get(f"{fake.base_url}/models").json()
    assert (first.status_code, first.headers["retry-after"]) == (429, "3")
    assert second.json()["choices"][0]["message"]["content"] == "hello"
    assert json.loads(third.json()["choices"][0]["message"]["content"]) == manifest()
    assert [m["id"] for m in models["data"]] == ["fake-model"]
    assert len(fake.requests) == 3


def test_fake_reset_breaks_the_connection() -> None:
    with FakeOpenAI([Action(reset=True)]) as fake, httpx.Client() as http:
        with pytest.raises(httpx.TransportError):
            http.post(f"{fake.base_url}/chat/completions", json=chat_body())


def _serve_forever(port: int) -> None:  # pragma: no cover - runs in a child process
    import subprocess

    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])  # a grandchild in our group
    with FakeOpenAI(port=port):
        print(f"fake server listening on {port}", flush=True)
        while True:
            time.sleep(1)


if __name__ == "__main__":  # pragma: no cover
    _serve_forever(int(sys.argv[1]))
