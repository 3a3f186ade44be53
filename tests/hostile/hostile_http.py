"""A hostile HTTP platform on 127.0.0.1: real sockets, answers written byte by byte as a broken server would.

``HostilePlatform`` serves the contract's paths; what it answers for each (method, path)
is a ``Behaviour``: a function that gets the parsed request and the raw socket and writes
whatever it likes (a valid answer, a truncated chunk, a lying Content-Length, a gzip bomb,
a drip of one byte at a time, a redirect...).  Requests are counted per (method, path)
logins per username and Authorization headers by value, so tests check what the load generator really sent.  It runs
in threads of the test process (Locust runs in a subprocess against it) and binds a
free port on 127.0.0.1 only.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

__all__ = [
    "LOGIN",
    "Behaviour",
    "HostilePlatform",
    "Request",
    "answer",
    "deflate_bomb",
    "drip",
    "gzip_bomb",
    "json_answer",
    "token_answer",
]

LOGIN = ("POST", "/api/v1/auth/login")


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode("latin-1")).items()}


Behaviour = Callable[[Request, socket.socket], bool]
"""Writes an answer; returns True to keep the connection open for the next request."""


def answer(status: int, body: bytes = b"", headers: dict[str, str] | None = None, *, close: bool = False) -> Behaviour:
    def write(_req: Request, sock: socket.socket) -> bool:
        head = {"Content-Type": "application/json", "Content-Length": str(len(body)), **(headers or {})}
        if close:
            head["Connection"] = "close"
        lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in head.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        return not close

    return write


def json_answer(doc: object, status: int = 200) -> Behaviour:
    return answer(status, json.dumps(doc).encode())


def token_answer(token: object) -> Behaviour:
    return json_answer({"access_token": token, "token_type": "bearer"})


def gzip_bomb(inflated: int, *, encoding: str = "gzip") -> Behaviour:
    """A valid JSON document padded with spaces to ``inflated`` bytes, compressed (about 1000:1)."""
    doc = b'{"agents": [], "pad": "' + b" " * (inflated - 26) + b'"}'
    packed = gzip.compress(doc, 9) if encoding == "gzip" else zlib.compress(doc, 9)
    return answer(200, packed, {"Content-Encoding": encoding})


def deflate_bomb(inflated: int) -> Behaviour:
    return gzip_bomb(inflated, encoding="deflate")


def drip(raw: bytes, interval: float) -> Behaviour:
    """Write ``raw`` one byte at a time, ``interval`` seconds apart (a slowloris-style answer)."""

    def write(_req: Request, sock: socket.socket) -> bool:
        for i in range(len(raw)):
            sock.sendall(raw[i : i + 1])
            time.sleep(interval)
        return False

    return write


@dataclass
class HostilePlatform:
    routes: dict[tuple[str, str], Behaviour]
    default: Behaviour = field(default_factory=lambda: json_answer({"detail": "Not Found"}, 404))
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    logins: Counter[str] = field(default_factory=Counter)
    tokens: Counter[str] = field(default_factory=Counter)
    """Authorization header values received, with how often."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.port = self._sock.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self._open.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        try:
            while not self._stopped.is_set():
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target = lines[0].split(" ")[:2]
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
                length = int(headers.get("content-length", "0") or 0)
                while len(buffer) < length:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                body, buffer = buffer[:length], buffer[length:]
                req = Request(method, target.split("?")[0], headers, body)
                key = (req.method, req.path)
                with self._lock:
                    self.requests[key] += 1
                    if key == LOGIN:
                        self.logins[req.form.get("username", "")] += 1
                    if "authorization" in headers:
                        self.tokens[headers["authorization"]] += 1
                behaviour = self.routes.get(key) or self._by_prefix(req) or self.default
                if not behaviour(req, conn):
                    return
        except OSError:
            return
        finally:
            with self._lock:
                self._open.discard(conn)
            conn.close()

    def _by_prefix(self, req: Request) -> Behaviour | None:
        for (method, path), behaviour in self.routes.items():
            if method == req.method and path.endswith("/*") and req.path.startswith(path[:-1]):
                return behaviour
        return None

    def stop(self) -> None:
        self._stopped.set()
        self._sock.close()
        with self._lock:
            for conn in list(self._open):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
