"""A fake Marketo REST API for static-list membership: identity, lead lookup, list add/remove, Marketo's errors.

Serves `POST /identity/oauth/token` (client credentials, tokens expire after `token_ttl`; `expire_tokens()`
forces 602 and `revoke_tokens()` 601 on the next call), `GET /rest/v1/leads.json` (also as
`POST ...?_method=GET` with a form body; at most 300 filter values; URIs over 8 KB get HTTP 414) and
`POST|DELETE /rest/v1/lists/{listId}/leads.json` (lead ids as `id` query values or a JSON `input`; at most
300). Errors come the Marketo way: HTTP 200 with `success: false` and codes. The rate limit (100 calls in any
20 s) and concurrency limit (10 in flight) are enforced with 606 and 615; `codes_next` scripts them.
Token in a query parameter instead of the `Authorization` header is recorded in `violations`.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from activation_pipeline.sandbox.base import Fault, RecordedRequest, Reply, SandboxServer

MAX_IDS = 300
MAX_URI = 8_192
MESSAGES = {
    "600": "Access token not specified",
    "601": "Access token invalid",
    "602": "Access token expired",
    "606": "Max rate limit '100' exceeded with in '20' secs",
    "615": "Concurrent access limit reached",
    "1003": "Invalid request",
    "1004": "Lead not found",
    "1013": "Static list not found",
    "1015": "Lead not in list",
}


def marketo_failure(code: str, message: str | None = None) -> Reply:
    """Marketo's error answer: HTTP 200, `success: false`, one error code."""
    body = {
        "requestId": _request_id(),
        "success": False,
        "errors": [{"code": code, "message": message or MESSAGES.get(code, "")}],
    }
    return Reply(200, body)


def _request_id() -> str:
    return f"{secrets.token_hex(2)}#{secrets.token_hex(5)}"


class MarketoSandbox(SandboxServer):
    """Fake <munchkin>.mktorest.com."""

    name = "marketo"

    def __init__(
        self,
        client_id: str = "sandbox-client-id",
        client_secret: str = "sandbox-client-secret",  # noqa: S107 - a fake server's test secret
        *,
        token_ttl: int = 3599,
        calls_per_window: int = 100,
        window_seconds: float = 20.0,
        max_concurrent: int = 10,
        create_missing: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """Credentials the identity endpoint accepts, token lifetime and the instance's limits.

        `create_missing` (for demos): email lookups create leads they do not find, as if the CRM had
        synced them, and list calls create unknown static lists.
        """
        super().__init__(host, port)
        self.create_missing = create_missing
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl = token_ttl
        self.calls_per_window = calls_per_window
        self.window_seconds = window_seconds
        self.max_concurrent = max_concurrent
        self.tokens: dict[str, float] = {}
        self.leads: dict[int, dict[str, Any]] = {}
        self.lists: dict[int, set[int]] = {}
        self.violations: list[str] = []
        self.tokens_issued = 0
        self._calls: deque[float] = deque()
        self._in_flight = 0
        self._next_lead = 1000
        self._state = threading.Lock()

    # ------------------------------------------------------------------ test helpers
    def create_list(self, list_id: int) -> None:
        """Make a static list."""
        with self._state:
            self.lists.setdefault(list_id, set())

    def add_lead(self, email: str | None = None, **fields: Any) -> int:
        """Make a lead (the way forms or CRM sync would); returns its id."""
        with self._state:
            self._next_lead += 1
            self.leads[self._next_lead] = {"id": self._next_lead, "email": email, **fields}
            return self._next_lead

    def members(self, list_id: int) -> set[int]:
        """Lead ids in a static list."""
        with self._state:
            return set(self.lists.get(list_id, set()))

    def member_emails(self, list_id: int) -> set[str]:
        """Emails of the leads in a static list."""
        with self._state:
            return {str(self.leads[i].get("email")) for i in self.lists.get(list_id, set())}

    def expire_tokens(self) -> None:
        """Every issued token expires now (next call answers 602)."""
        with self._state:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    def revoke_tokens(self) -> None:
        """Forget every issued token (next call answers 601)."""
        with self._state:
            self.tokens.clear()

    def codes_next(self, count: int, code: str = "606") -> Fault:
        """Answer the next `count` REST calls (not identity) with a Marketo error code in an HTTP 200."""
        return self.add_fault(Fault(marketo_failure(code), lambda r: r.path.startswith("/rest/"), count))

    # ------------------------------------------------------------------ dispatch
    def handle(self, request: RecordedRequest) -> Reply:
        """Serve identity and REST calls."""
        if request.path == "/identity/oauth/token":
            return self._token(request)
        if not request.path.startswith("/rest/"):
            return Reply(404, {"message": "not found"})
        full_uri = len(request.path) + sum(len(k) + len(x) + 2 for k, v in request.query.items() for x in v)
        if full_uri > MAX_URI:
            return Reply(414, "Request-URI Too Long")
        auth = self._auth(request)
        if auth is not None:
            return auth
        with self._state:
            now = time.monotonic()
            while self._calls and self._calls[0] <= now - self.window_seconds:
                self._calls.popleft()
            if len(self._calls) >= self.calls_per_window:
                return marketo_failure("606")
            if self._in_flight >= self.max_concurrent:
                return marketo_failure("615")
            self._calls.append(now)
            self._in_flight += 1
        try:
            return self._rest(request)
        finally:
            with self._state:
                self._in_flight -= 1

    def _violation(self, message: str) -> None:
        with self._state:
            self.violations.append(message)

    def _token(self, request: RecordedRequest) -> Reply:
        form = dict(request.query)
        if request.body:
            form.update(parse_qs(request.body.decode()))
        if "client_secret" in request.query:
            self._violation("client credentials sent in the query string")

        def one(name: str) -> str:
            """The first value of a form field."""
            return (form.get(name) or [""])[0]

        if one("grant_type") != "client_credentials":
            return Reply(
                400,
                {"error": "invalid_request", "error_description": "grant_type must be client_credentials"},
            )
        if one("client_id") != self.client_id or one("client_secret") != self.client_secret:
            return Reply(401, {"error": "unauthorized", "error_description": "Bad client credentials"})
        token = f"{secrets.token_hex(8)}:ab"
        with self._state:
            self.tokens[token] = time.time() + self.token_ttl
            self.tokens_issued += 1
        return Reply(
            200,
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": self.token_ttl,
                "scope": "api@example.com",
            },
        )

    def _auth(self, request: RecordedRequest) -> Reply | None:
        header = request.header("authorization") or ""
        if "access_token" in request.query:
            self._violation("access token sent as a query parameter (deprecated)")
        if not header.startswith("Bearer "):
            return marketo_failure("600")
        with self._state:
            expires = self.tokens.get(header[7:])
        if expires is None:
            return marketo_failure("601")
        if expires <= time.time():
            return marketo_failure("602")
        return None

    # ------------------------------------------------------------------ REST
    def _rest(self, request: RecordedRequest) -> Reply:
        path = request.path
        method = request.method
        if path == "/rest/v1/leads.json":
            if method == "GET":
                return self._lookup(request.query)
            if method == "POST" and request.query.get("_method") == ["GET"]:
                return self._lookup(parse_qs(request.body.decode()))
        parts = path.split("/")
        if (
            len(parts) == 6
            and parts[3] == "lists"
            and parts[5] == "leads.json"
            and method in ("POST", "DELETE")
        ):
            if not parts[4].isdigit():
                return marketo_failure("1003", "listId must be a number")
            return self._membership(request, int(parts[4]))
        return marketo_failure("1003", f"unsupported {method} {path}")

    def _lookup(self, query: Mapping[str, list[str]]) -> Reply:
        field = (query.get("filterType") or [""])[0]
        raw = (query.get("filterValues") or [""])[0]
        if not field or not raw:
            return marketo_failure("1003", "filterType and filterValues are required")
        values = raw.split(",")
        if len(values) > MAX_IDS:
            self._violation(f"{len(values)} filter values in one lookup")
            return marketo_failure("1003", "Too many values in filter, max 300")
        wanted = [f for f in (query.get("fields") or ["id,email"])[0].split(",") if f]
        email = field.lower() == "email"
        keys = {v.lower() if email else v for v in values}
        with self._state:
            if self.create_missing and email:
                known = {str(lead.get("email", "")).lower() for lead in self.leads.values()}
                for missing in keys - known:
                    self._next_lead += 1
                    self.leads[self._next_lead] = {"id": self._next_lead, "email": missing}
            found = []
            for lead in self.leads.values():
                value = lead.get("id" if field == "id" else field)
                if value is None:
                    continue
                text = str(value).lower() if email else str(value)
                if text in keys:
                    found.append({f: lead.get(f) for f in wanted if f in lead or f == "id"})
        return Reply(200, {"requestId": _request_id(), "success": True, "result": found})

    def _membership(self, request: RecordedRequest, list_id: int) -> Reply:
        ids: list[str] = []
        for value in request.query.get("id", []):
            ids += [v for v in value.split(",") if v]
        if request.body:
            try:
                body = json.loads(request.body)
                ids += [str(item.get("id")) for item in body.get("input", [])]
            except (ValueError, AttributeError):
                return marketo_failure("1003", "malformed JSON body")
        if not ids:
            return marketo_failure("1003", "id is required")
        if len(ids) > MAX_IDS:
            self._violation(f"{len(ids)} lead ids in one list call")
            return marketo_failure("1003", "Too many ids, max 300")
        if not all(i.isdigit() for i in ids):
            return marketo_failure("1003", "lead ids must be numbers")
        result = []
        with self._state:
            if self.create_missing:
                self.lists.setdefault(list_id, set())
            members = self.lists.get(list_id)
            if members is None:
                return marketo_failure("1013")
            for lead_id in (int(i) for i in ids):
                if lead_id not in self.leads:
                    result.append(
                        {
                            "id": lead_id,
                            "status": "skipped",
                            "reasons": [{"code": "1004", "message": "Lead not found"}],
                        }
                    )
                elif request.method == "POST":
                    members.add(lead_id)
                    result.append({"id": lead_id, "status": "added"})
                elif lead_id in members:
                    members.discard(lead_id)
                    result.append({"id": lead_id, "status": "removed"})
                else:
                    result.append(
                        {
                            "id": lead_id,
                            "status": "skipped",
                            "reasons": [{"code": "1015", "message": "Lead not in list"}],
                        }
                    )
        return Reply(200, {"requestId": _request_id(), "success": True, "result": result})
