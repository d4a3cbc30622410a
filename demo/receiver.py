"""A webhook receiver on 127.0.0.1, in a process of its own, for the demo and the benchmarks.

    python -m demo.receiver [--port P] [--record FILE] [--verify] [--delay SECONDS]

It answers every POST with 200 `{"success": true}` over keep-alive HTTP/1.1, and:
- `--record FILE`: keeps each request (arrival time on the system-wide monotonic clock,
  headers, body) and writes them to FILE as JSON lines when it stops (SIGTERM/SIGINT);
  nothing else happens while requests arrive. `GET /count` answers how many it has.
- `--verify`: checks each signature with the reference `standardwebhooks` package, using
  the endpoint secret in `DEMO_WEBHOOK_SECRET`, and prints one line per webhook.
- `--delay SECONDS`: answers each webhook that much later, like a receiver across the
  internet (requests on other connections are not held up).

The first line on stdout is `listening on <url>`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{"success": true}'
KEPT_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "user-agent")


@dataclass
class Request:
    arrived: float
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def as_json(self) -> str:
        kept = {k: v for k, v in self.headers.items() if k in KEPT_HEADERS}
        # latin-1 maps every byte to one code point: the body comes back byte for byte.
        return json.dumps({"arrived": self.arrived, "headers": kept, "body": self.body.decode("latin-1")})


def load_records(path: str) -> list[Request]:
    """The requests a `--record` receiver wrote, in arrival order."""
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [Request(r["arrived"], "POST", "", r["headers"], r["body"].encode("latin-1")) for r in rows]


def parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = ([*lines[0].split(" "), "", ""])[:3]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return method, path, headers


@dataclass
class Receiver:
    verify: bool = False
    secret: str = ""
    keep: bool = False
    delay: float = 0
    received: list[Request] = field(default_factory=list)
    count: int = 0

    def handle(self, request: Request) -> bytes:
        if request.method == "GET" and request.path == "/count":
            body = str(self.count).encode()
            return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        self.count += 1
        if self.keep:
            self.received.append(request)
        if self.verify:
            print(describe(request, self.secret), flush=True)
        return OK


def describe(request: Request, secret: str) -> str:
    """One line for a received webhook: signature check, detector, subject, links."""
    from standardwebhooks import Webhook, WebhookVerificationError

    try:
        payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
        check = "signature OK"
    except WebhookVerificationError as e:
        payload, check = {}, f"SIGNATURE REJECTED ({e})"
    links = ", ".join(link.get("provider", "?") for link in payload.get("delivery_links", [])) or "no links"
    rule = payload.get("routing_rule") or {}
    extra = f", rule {rule.get('name')!r} ({rule.get('priority')})" if rule else ""
    when = payload.get("delivery_time") or "-"
    return (
        f"[receiver] {time.strftime('%H:%M:%S')} {request.headers.get('webhook-id', '?')} {check}: "
        f"{payload.get('detector') or 'no detector'}, delivery {when}, {links}{extra} | {payload.get('subject', '')}"
    )


class Connection(asyncio.Protocol):
    """HTTP/1.1 with keep-alive and Content-Length bodies: all the sender uses."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            method, path, headers = parse_head(bytes(self.buffer[:end]))
            length = int(headers.get("content-length") or 0)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            answer = self.receiver.handle(Request(time.monotonic(), method, path, headers, body))
            if self.receiver.delay and method == "POST":
                asyncio.get_running_loop().call_later(self.receiver.delay, self.transport.write, answer)
            else:
                self.transport.write(answer)


async def serve(receiver: Receiver, port: int, record: str | None) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(receiver), "127.0.0.1", port)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on http://127.0.0.1:{bound}/hook", flush=True)
    stopped = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    await stopped.wait()
    server.close()
    if record:
        with open(record, "w", encoding="utf-8") as f:
            f.writelines(r.as_json() + "\n" for r in receiver.received)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A local webhook receiver for the demo and the benchmarks.")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port")
    parser.add_argument("--record", metavar="FILE", help="write every request to FILE (JSON lines) at exit")
    parser.add_argument("--verify", action="store_true", help="verify signatures (DEMO_WEBHOOK_SECRET) and print")
    parser.add_argument("--delay", type=float, default=0, help="answer each webhook this many seconds later")
    args = parser.parse_args(argv)
    secret = os.environ.get("DEMO_WEBHOOK_SECRET", "")
    if args.verify and not secret:
        sys.exit("--verify needs the endpoint's signing secret in DEMO_WEBHOOK_SECRET")
    receiver = Receiver(verify=args.verify, secret=secret, keep=bool(args.record), delay=args.delay)
    asyncio.run(serve(receiver, args.port, args.record))


if __name__ == "__main__":
    main()
