"""Base of the fake destination servers: a threaded HTTP server on 127.0.0.1 that records every request and
can be scripted to misbehave ("429 with Retry-After: 1 for the next 3 requests", "500 once", "400 for
records matching X").

A subclass implements `handle(request) -> Reply` in the destination's real wire format. Faults are checked
before `handle`; the first fault whose `match` accepts the request answers instead and uses up one of its
`times`. Every request is recorded with the status it was answered with and when it arrived.
Admin endpoints (for a sandbox in another process): `GET /__sandbox/requests`, `POST /__sandbox/reset`.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

ADMIN_PREFIX = "/__sandbox/"


@dataclass(frozen=True)
class RecordedRequest:
    """One request the sandbox received, and the status it answered with."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    """Header names lower-cased."""
    body: bytes
    received_at: float
    status: int = 0

    def json(self) -> Any:
        """The body parsed as JSON (None when empty)."""
        return json.loads(self.body) if self.body else None

    def header(self, name: str, default: str | None = None) -> str | None:
        """A header by case-insensitive name."""
        return self.headers.get(name.lower(), default)

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly view (for the admin endpoint)."""
        return {
            "method": self.method,
            "path": self.path,
            "query": dict(self.query),
            "headers": dict(self.headers),
            "body": self.body.decode("utf-8", "replace"),
            "received_at": self.received_at,
            "status": self.status,
        }


@dataclass(frozen=True)
class Reply:
    """What the sandbox answers."""

    status: int = 200
    body: Any = None
    """dict/list -> JSON; str/bytes sent as is; None -> empty body."""
    headers: Mapping[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        """Body bytes and headers (with a Content-Type when the body is JSON)."""
        headers = dict(self.headers)
        if self.body is None:
            return b"", headers
        if isinstance(self.body, bytes):
            return self.body, headers
        if isinstance(self.body, str):
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            return self.body.encode(), headers
        headers.setdefault("Content-Type", "application/json")
        return json.dumps(self.body).encode(), headers


def json_error(status: int, message: str, **extra: Any) -> Reply:
    """A JSON error reply."""
    return Reply(status, {"message": message, **extra})


@dataclass
class Fault:
    """A scripted answer used instead of the real one while `times` lasts (None: forever)."""

    reply: Reply | Callable[[RecordedRequest], Reply]
    match: Callable[[RecordedRequest], bool] | None = None
    times: int | None = 1

    def applies(self, request: RecordedRequest) -> bool:
        """Whether this fault answers `request`."""
        if self.times is not None and self.times <= 0:
            return False
        return self.match is None or self.match(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in separate writes; no 40 ms delayed-ACK stalls
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            received_at=time.time(),
        )
        reply = self.server.sandbox.dispatch(request)
        payload, headers = reply.encoded()
        self.send_response(reply.status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging (bodies and paths may hold personal data)."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        super().__init__(address, _Handler)


class SandboxServer:
    """A fake destination on 127.0.0.1 (port 0 = any free port); subclasses implement `handle`."""

    name = "sandbox"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _Server((host, port), self)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._item_rules: list[tuple[Callable[[Any], bool], str]] = []

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        """Serve in a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"{self.name}-sandbox"
            )
            self._thread.daemon = True
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ recording
    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far (admin requests excluded), oldest first."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget recorded requests and faults."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()
            self._item_rules.clear()

    # ------------------------------------------------------------------ faults
    def add_fault(self, fault: Fault) -> Fault:
        """Script a fault (checked in the order added)."""
        with self._lock:
            self._faults.append(fault)
        return fault

    def fail_next(
        self,
        count: int,
        status: int,
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        match: Callable[[RecordedRequest], bool] | None = None,
    ) -> Fault:
        """Answer the next `count` (matching) requests with `status`."""
        reply = Reply(status, body if body is not None else {"message": f"scripted {status}"}, headers or {})
        return self.add_fault(Fault(reply, match, count))

    def throttle_next(self, count: int, retry_after: float | str = 1) -> Fault:
        """Answer the next `count` requests 429 with `Retry-After`."""
        value = retry_after if isinstance(retry_after, str) else str(int(retry_after))
        return self.fail_next(
            count, 429, headers={"Retry-After": value}, body={"message": "Too Many Requests"}
        )

    def fail_once(self, status: int = 500) -> Fault:
        """Answer the next request with `status` (default 500)."""
        return self.fail_next(1, status)

    def reject_items(self, match: Callable[[Any], bool], error: str = "invalid") -> None:
        """Have the destination refuse every item (object, event, user, message) `match` accepts."""
        with self._lock:
            self._item_rules.append((match, error))

    def item_error(self, item: Any) -> str | None:
        """The scripted error of an item, if a `reject_items` rule matches it."""
        with self._lock:
            rules = list(self._item_rules)
        for match, error in rules:
            try:
                if match(item):
                    return error
            except (KeyError, TypeError, AttributeError):
                continue
        return None

    def successful(self, path: str | None = None) -> list[RecordedRequest]:
        """Requests answered 2xx (optionally only those to `path`)."""
        return [r for r in self.requests if 200 <= r.status < 300 and (path is None or r.path == path)]

    # ------------------------------------------------------------------ dispatch
    def dispatch(self, request: RecordedRequest) -> Reply:
        """Answer one request: admin endpoint, scripted fault, or `handle`; record it."""
        if request.path.startswith(ADMIN_PREFIX):
            return self._admin(request)
        reply: Reply | None = None
        with self._lock:
            for fault in self._faults:
                if fault.applies(request):
                    if fault.times is not None:
                        fault.times -= 1
                    reply = fault.reply(request) if callable(fault.reply) else fault.reply
                    break
        if reply is None:
            try:
                reply = self.handle(request)
            except Exception as error:  # a sandbox bug must show as a 500, not a hung client
                reply = json_error(500, f"sandbox error: {type(error).__name__}: {error}")
        recorded = dataclasses.replace(request, status=reply.status)
        with self._lock:
            self._requests.append(recorded)
        return reply

    def _admin(self, request: RecordedRequest) -> Reply:
        action = request.path[len(ADMIN_PREFIX) :]
        if action == "requests" and request.method == "GET":
            return Reply(200, [r.summary() for r in self.requests])
        if action == "reset" and request.method == "POST":
            self.reset()
            return Reply(200, {"ok": True})
        return json_error(404, "unknown sandbox admin endpoint")

    def handle(self, request: RecordedRequest) -> Reply:
        """Answer a request in the destination's wire format (subclasses override)."""
        return Reply(200, {"ok": True})


def parse_json_body(request: RecordedRequest) -> tuple[Any, Reply | None]:
    """The JSON body, or an error reply when it is missing or malformed."""
    if (request.header("content-type") or "").split(";")[0].strip() != "application/json":
        return None, json_error(400, "Content-Type must be application/json")
    try:
        return json.loads(request.body), None
    except (ValueError, UnicodeDecodeError):
        return None, json_error(400, "malformed JSON body")
