"""A real HTTP server on 127.0.0.1 that answers as Render's deploy hook and deploys API do."""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SERVICE = "srv-test123"
HOOK_KEY = "hookKey-s3cr3t-0123456789"
API_KEY = "rnd_apiKey-s3cr3t-ABCDEFGHIJ"


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def next_reply(queue: deque[tuple[int, Any]], default: tuple[int, Any]) -> tuple[int, Any]:
    return queue.popleft() if queue else default


@dataclass
class FakeRender:
    hook_replies: deque[tuple[int, Any]] = field(default_factory=deque)
    create_replies: deque[tuple[int, Any]] = field(default_factory=deque)
    statuses: deque[str] = field(default_factory=lambda: deque(["build_in_progress", "update_in_progress", "live"]))
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> Call:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                call = Call(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                fake.calls.append(call)
                return call

            def _authorised(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {API_KEY}":
                    return True
                self._answer(401, {"message": "unauthorized"})
                return False

            def do_POST(self) -> None:
                call = self._record()
                if call.path == f"/deploy/{SERVICE}?key={HOOK_KEY}":
                    self._answer(*next_reply(fake.hook_replies, (200, {"deploy": {"id": "dep-hook"}})))
                elif call.path == f"/v1/services/{SERVICE}/deploys" and self._authorised():
                    self._answer(*next_reply(fake.create_replies, (201, {"id": "dep-api", "status": "created"})))
                elif not call.path.startswith("/v1/"):
                    self._answer(404, {"message": "not found"})

            def do_GET(self) -> None:
                call = self._record()
                prefix = f"/v1/services/{SERVICE}/deploys/"
                if call.path.startswith(prefix) and self._authorised():
                    status = fake.statuses.popleft() if len(fake.statuses) > 1 else fake.statuses[0]
                    self._answer(200, {"id": call.path.removeprefix(prefix), "status": status})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.hook_url = f"{self.base_url}/deploy/{SERVICE}?key={HOOK_KEY}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeRender:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def paths(self) -> list[str]:
        return [f"{c.method} {c.path}" for c in self.calls]
