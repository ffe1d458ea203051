"""A local stand-in for the Anthropic Messages API, for tests of the real SDK client.

A real ``ThreadingHTTPServer`` on 127.0.0.1 (port 0) in a thread, speaking
``POST /v1/messages`` with the API's JSON shapes: a message (``id``, ``type: "message"``,
``role``, ``content`` [text | tool_use], ``model``, ``stop_reason``, ``usage``) or an error
(``{"type": "error", "error": {"type": ..., "message": ...}}``) with its status and headers.

Each test scripts the replies in order::

    fake.reply_tool_use("submit_triage", {"category": "network"})
    fake.rate_limited(retry_after=1)
    fake.overloaded()
    fake.slow(seconds=2)          # answers after the client's timeout
    fake.reply_stream(["Hel", "lo"])  # a streamed reply (stream: true), as server-sent events

and inspects ``fake.requests`` (every body received, in order) afterwards. With the script
used up the server answers 500 with a message saying so.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Scripted:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    # A streamed reply (``stream: true``): server-sent events written one by one, with
    # ``event_delay`` seconds between them (the browser sees the answer grow).
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    event_delay: float = 0.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # names in lower case
    body: dict[str, Any]


class FakeAnthropic:
    def __init__(self) -> None:
        self.script: deque[Scripted] = deque()
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._counter = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_raw": raw.decode(errors="replace")}
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = fake._record(self.path, headers, body)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.events:
                    self._stream(reply)
                    return
                payload = json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.send_header("request-id", f"req_fake_{len(fake.requests)}")
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    self.close_connection = True

            def _stream(self, reply: Scripted) -> None:
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "text/event-stream")
                    self.send_header("cache-control", "no-cache")
                    self.send_header("connection", "close")
                    self.send_header("request-id", f"req_fake_{len(fake.requests)}")
                    self.end_headers()
                    for name, data in reply.events:
                        frame = f"event: {name}\ndata: {json.dumps(data)}\n\n"
                        self.wfile.write(frame.encode())
                        self.wfile.flush()
                        if reply.event_delay:
                            time.sleep(reply.event_delay)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    # -- lifecycle

    def start(self) -> FakeAnthropic:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- what the server saw

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests]

    def _record(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> Scripted:
        with self._lock:
            self.requests.append(Received(path, headers, body))
            if path.split("?")[0] != "/v1/messages":
                return self._error(404, "not_found_error", f"no route {path}")
            if self.script:
                return self.script.popleft()
            return self._error(500, "api_error", "fake_anthropic: no scripted reply left")

    # -- scripting

    def push(self, status: int, body: dict[str, Any], *, headers=None, delay: float = 0.0):
        self.script.append(Scripted(status, body, dict(headers or {}), delay))
        return self

    def _message(self, content: list[dict[str, Any]], *, stop_reason: str, usage, model: str):
        self._counter += 1
        return {
            "id": f"msg_fake_{self._counter:04d}",
            "type": "message",
            "role": "assistant",
            "content": content,
            "model": model,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
        }

    @staticmethod
    def _error(status: int, kind: str, message: str, headers=None) -> Scripted:
        return Scripted(
            status,
            {"type": "error", "error": {"type": kind, "message": message}},
            dict(headers or {}),
        )

    def reply_text(self, text: str, *, usage=(12, 5), model="claude-haiku-4-5", delay=0.0):
        body = self._message(
            [{"type": "text", "text": text}], stop_reason="end_turn", usage=usage, model=model
        )
        return self.push(200, body, delay=delay)

    def reply_stream(
        self,
        chunks: list[str],
        *,
        usage=(40, 20),
        model="claude-haiku-4-5",
        event_delay: float = 0.0,
    ):
        """A streamed text reply (the request must say ``stream: true``): message_start, one
        content_block_delta per chunk, message_delta with the stop reason, message_stop."""
        message = self._message([], stop_reason=None, usage=(usage[0], 1), model=model)
        events: list[tuple[str, dict[str, Any]]] = [
            ("message_start", {"type": "message_start", "message": message}),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            *(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": c},
                    },
                )
                for c in chunks
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": usage[1]},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        self.script.append(Scripted(200, {}, events=events, event_delay=event_delay))
        return self

    def reply_tool_use(
        self,
        name: str,
        input: dict[str, Any],
        *,
        text: str | None = None,
        tool_id: str = "toolu_fake_01",
        usage=(120, 40),
        model="claude-haiku-4-5",
    ):
        content: list[dict[str, Any]] = []
        if text:
            content.append({"type": "text", "text": text})
        content.append({"type": "tool_use", "id": tool_id, "name": name, "input": input})
        body = self._message(content, stop_reason="tool_use", usage=usage, model=model)
        return self.push(200, body)

    def error(self, status: int, kind: str, message: str, *, headers=None):
        self.script.append(self._error(status, kind, message, headers))
        return self

    def rate_limited(self, *, retry_after: float | None = 1, headers=None):
        extra = dict(headers or {})
        if retry_after is not None:
            extra["retry-after"] = f"{retry_after:g}"
        return self.error(
            429,
            "rate_limit_error",
            "Number of requests has exceeded your rate limit",
            headers=extra,
        )

    def overloaded(self):
        return self.error(529, "overloaded_error", "Overloaded")

    def server_error(self, status: int = 500):
        return self.error(status, "api_error", "Internal server error")

    def bad_request(self, message: str = "messages: field required"):
        return self.error(400, "invalid_request_error", message)

    def slow(self, seconds: float, text: str = "too late"):
        """A reply that arrives after ``seconds`` (longer than the client's timeout)."""
        return self.reply_text(text, delay=seconds)
