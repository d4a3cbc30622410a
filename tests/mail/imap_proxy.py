"""A TCP proxy in front of the IMAP test server that acts at chosen moments of a conversation.

Every byte is forwarded unchanged, both ways. Before a command line of a client goes on to
the server, the hooks run with the connection's number (0 for the first client) and the
line: a test can append a message the very instant the poller ends IDLE, or logs out, which
a timing-based test could only aim at. The poller's commands carry no literals, so the
client's side is read line by line.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

Hook = Callable[[int, bytes], None]


class ImapProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.hooks: list[Hook] = []
        self.lines: list[tuple[float, int, bytes]] = []  # (monotonic time, connection, client line)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.server.close()
        for sock in self._sockets:
            _close(sock)

    def __enter__(self) -> ImapProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sockets += [client, upstream]
            number, self._connections = self._connections, self._connections + 1
            threading.Thread(target=self._from_server, args=(upstream, client), daemon=True).start()
            threading.Thread(target=self._from_client, args=(number, client, upstream), daemon=True).start()

    def _from_server(self, upstream: socket.socket, client: socket.socket) -> None:
        try:
            while data := upstream.recv(65536):
                client.sendall(data)
        except OSError:
            pass
        finally:
            _close(client)
            _close(upstream)

    def _from_client(self, number: int, client: socket.socket, upstream: socket.socket) -> None:
        pending = b""
        try:
            while data := client.recv(65536):
                pending += data
                while b"\r\n" in pending:
                    line, pending = pending.split(b"\r\n", 1)
                    self.lines.append((time.monotonic(), number, line))
                    for hook in list(self.hooks):
                        hook(number, line)
                    upstream.sendall(line + b"\r\n")
        except OSError:
            pass
        finally:
            _close(client)
            _close(upstream)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
