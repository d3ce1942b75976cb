"""The loopback HTTP server the fakes share: recording, fault injection, clean shutdown.

A TEST DOUBLE: see :mod:`tests.support.doubles`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeHttpServer", "RecordedRequest", "Reply"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it, and the status it answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Fault:
    status: int
    remaining: int
    body: Any
    headers: dict[str, str]


class _Server(ThreadingHTTPServer):
    # A client opening many connections at once (the alert sink delivers up to
    # 32 keys together) must not find the listen queue full: the default is 5.
    request_queue_size = 128


class FakeHttpServer:
    """A ThreadingHTTPServer on 127.0.0.1 with a free port, run in a daemon thread.

    Subclasses implement :meth:`handle` (method, path, query, headers, body) -> Reply.
    Use as a context manager; :attr:`url` is its base URL.
    """

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as the real services offer: a client sending many
            # alerts reuses its connections instead of opening one per request.
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                fake._serve(self)

            def do_GET(self) -> None:
                fake._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # tests read self.requests, not stderr

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeHttpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def fail_next(
        self,
        count: int,
        status: int = 429,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next ``count`` requests with ``status`` instead of handling them."""
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        with self._lock:
            self._faults.append(_Fault(status, count, body, headers))

    def clear_faults(self) -> None:
        """Forget the failures :meth:`fail_next` asked for; answer normally again."""
        with self._lock:
            self._faults.clear()

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
    ) -> Reply:
        raise NotImplementedError

    def fault_body(self, status: int) -> Any:
        """What the service answers with ``status`` when no body was given to :meth:`fail_next`."""
        return {"message": f"injected HTTP {status}"}

    def wait_for(self, condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        split = urlsplit(handler.path)
        query = parse_qs(split.query)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            fault = self._faults[0] if self._faults else None
            if fault is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.pop(0)
        if fault is not None:
            reply = Reply(
                fault.status,
                fault.body if fault.body is not None else self.fault_body(fault.status),
                fault.headers,
            )
        else:
            reply = self.handle(handler.command, split.path, query, headers, body)
        with self._lock:
            self.requests.append(
                RecordedRequest(handler.command, split.path, query, headers, body, reply.status)
            )
        payload = json.dumps(reply.body).encode() if reply.body is not None else b""
        handler.send_response(reply.status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        for key, value in reply.headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(payload)
