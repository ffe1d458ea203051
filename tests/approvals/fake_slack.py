"""A local stand-in for Slack's Web API: a real HTTP server on 127.0.0.1 in a thread.

slack_sdk's WebClient is pointed at it (``SLACK_API_BASE_URL``). It answers the methods the
approvals integration calls (chat.postMessage, chat.update, chat.postEphemeral, views.open)
with Slack's JSON shapes, refuses a wrong bot token like Slack does (``invalid_auth``), and
records every call for the test to inspect.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Call:
    method: str
    token: str
    body: dict[str, Any]


class FakeSlack:
    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[Call] = []
        self._ts = 1700000000
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                if "json" in (self.headers.get("content-type") or ""):
                    body = json.loads(raw or b"{}")
                else:
                    body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                token = (self.headers.get("authorization") or "").removeprefix("Bearer ")
                method = self.path.rsplit("/", 1)[-1]
                reply = fake._answer(method, token, body)
                payload = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/"

    def _answer(self, method: str, token: str, body: dict) -> dict:
        with self._lock:
            self.calls.append(Call(method, token, body))
            if token != self.token:
                return {"ok": False, "error": "invalid_auth"}
            self._ts += 1
            ts = f"{self._ts}.000100"
        if method == "chat.postMessage":
            return {"ok": True, "channel": body.get("channel"), "ts": ts, "message": body}
        if method == "chat.update":
            return {"ok": True, "channel": body.get("channel"), "ts": body.get("ts")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": ts}
        if method == "views.open":
            return {"ok": True, "view": {"id": "V1", **(body.get("view") or {})}}
        return {"ok": False, "error": "unknown_method"}

    def of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def start(self) -> FakeSlack:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
