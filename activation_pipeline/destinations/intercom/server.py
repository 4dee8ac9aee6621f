"""A fake Intercom REST API (2.x): contacts (search, create, update), data attributes, tags on contacts and
data events, with Intercom's `error.list` answers, Bearer auth, and its rate limit (10,000 calls a minute,
spread over 10-second windows) answered with 429 and `X-RateLimit-Limit|Remaining|Reset` headers.

Intercom's rules kept here: a custom attribute must exist as a data attribute before a contact uses it;
a user needs an `external_id` or an `email`, both unique (409 `conflict` otherwise); events need
`event_name`, `created_at` and an existing contact (404 otherwise) and at most 10 metadata keys.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from activation_pipeline.sandbox.base import RecordedRequest, Reply, SandboxServer

STANDARD = ("email", "phone", "name", "external_id", "role", "avatar", "owner_id", "signed_up_at",
            "last_seen_at", "unsubscribed_from_emails")  # fmt: skip
TYPES = {"string", "integer", "float", "boolean", "date", "datetime"}
MAX_METADATA_KEYS = 10


def error_list(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Reply:
    """Intercom's error answer."""
    body = {
        "type": "error.list",
        "request_id": secrets.token_hex(10),
        "errors": [{"code": code, "message": message}],
    }
    return Reply(status, body, dict(headers or {}))


def _type_ok(kind: str, value: Any) -> bool:
    if value is None:
        return True
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind in ("date", "datetime"):
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, str)


class IntercomSandbox(SandboxServer):
    """Speaks Intercom's contacts, data attributes, tags and events; `contacts`, `tags`, `events` hold its state."""

    name = "intercom"

    def __init__(
        self,
        *,
        access_token: str = "intercom-sandbox-token",  # noqa: S107 - a fake server's test token
        calls_per_window: int = 1666,
        window_seconds: float = 10.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.access_token = access_token
        self.calls_per_window = calls_per_window
        self.window_seconds = window_seconds
        self.contacts: dict[str, dict[str, Any]] = {}
        self.attributes: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        """Tag id -> name."""
        self.events: list[dict[str, Any]] = []
        self._calls: deque[float] = deque()
        self._next = 1000
        self._state = threading.Lock()

    # ------------------------------------------------------------------ helpers for tests
    def tagged(self, tag_name: str) -> set[str]:
        """External ids (else emails) of the contacts that carry a tag."""
        with self._state:
            ids = {i for i, n in self.tags.items() if n == tag_name}
            return {
                str(c.get("external_id") or c.get("email"))
                for c in self.contacts.values()
                if ids & set(c["tags"])
            }

    def contact_by(self, field: str, value: str) -> dict[str, Any] | None:
        """A contact by external_id or email."""
        with self._state:
            return next((dict(c) for c in self.contacts.values() if c.get(field) == value), None)

    # ------------------------------------------------------------------ dispatch
    def handle(self, request: RecordedRequest) -> Reply:
        """Authenticate, rate-limit and route one call."""
        if request.header("authorization") != f"Bearer {self.access_token}":
            return error_list(401, "unauthorized", "Access Token Invalid")
        with self._state:
            now = time.time()
            while self._calls and self._calls[0] <= now - self.window_seconds:
                self._calls.popleft()
            reset = str(math.ceil((self._calls[0] if self._calls else now) + self.window_seconds))
            limit = {"X-RateLimit-Limit": str(self.calls_per_window), "X-RateLimit-Reset": reset}
            if len(self._calls) >= self.calls_per_window:
                return error_list(
                    429, "rate_limit_exceeded", "Exceeded rate limit", {**limit, "X-RateLimit-Remaining": "0"}
                )
            self._calls.append(now)
            limit["X-RateLimit-Remaining"] = str(self.calls_per_window - len(self._calls))
        body: Any = None
        if request.body:
            try:
                body = json.loads(request.body)
            except ValueError:
                return error_list(400, "parameter_invalid", "Invalid JSON")
        reply = self._route(request, body)
        return Reply(reply.status, reply.body, {**limit, **reply.headers})

    def _route(self, request: RecordedRequest, body: Any) -> Reply:
        parts = [p for p in request.path.split("/") if p]
        method = request.method
        if parts == ["data_attributes"]:
            return self._list_attributes() if method == "GET" else self._create_attribute(body)
        if parts == ["contacts", "search"] and method == "POST":
            return self._search(body)
        if parts == ["contacts"] and method == "POST":
            return self._create_contact(body)
        if len(parts) == 2 and parts[0] == "contacts" and method == "PUT":
            return self._update_contact(parts[1], body)
        if parts == ["tags"] and method == "POST":
            return self._create_tag(body)
        if len(parts) == 3 and parts[0] == "contacts" and parts[2] == "tags" and method == "POST":
            return self._attach(parts[1], body)
        if len(parts) == 4 and parts[0] == "contacts" and parts[2] == "tags" and method == "DELETE":
            return self._detach(parts[1], parts[3])
        if parts == ["events"] and method == "POST":
            return self._event(body)
        return error_list(404, "not_found", "Resource Not Found")

    # ------------------------------------------------------------------ data attributes
    def _list_attributes(self) -> Reply:
        with self._state:
            data = [
                {"type": "data_attribute", "name": n, "model": "contact", "custom": False} for n in STANDARD
            ]
            data += [
                {"type": "data_attribute", "name": n, "model": "contact", "data_type": t, "custom": True}
                for n, t in self.attributes.items()
            ]
        return Reply(200, {"type": "list", "data": data})

    def _create_attribute(self, body: Any) -> Reply:
        if not isinstance(body, Mapping) or not body.get("name") or body.get("data_type") not in TYPES:
            return error_list(400, "parameter_invalid", "name, model and a valid data_type are required")
        if body.get("model") not in ("contact", "company"):
            return error_list(400, "parameter_invalid", "model must be contact or company")
        name = str(body["name"])
        if "." in name or "$" in name:
            return error_list(400, "parameter_invalid", "Attribute names may not contain '.' or '$'")
        with self._state:
            if name in self.attributes or name in STANDARD:
                return error_list(400, "parameter_invalid", f"You already have '{name}' in your workspace.")
            self.attributes[name] = str(body["data_type"])
        return Reply(200, {"type": "data_attribute", "name": name, "model": body["model"],
                           "data_type": body["data_type"], "custom": True})  # fmt: skip

    # ------------------------------------------------------------------ contacts
    def _custom_problem(self, custom: Any) -> Reply | None:
        if custom is None:
            return None
        if not isinstance(custom, Mapping):
            return error_list(400, "parameter_invalid", "custom_attributes must be an object")
        for name, value in custom.items():
            kind = self.attributes.get(name)
            if kind is None:
                return error_list(400, "parameter_invalid", f"Custom attribute '{name}' does not exist")
            if not _type_ok(kind, value):
                return error_list(400, "parameter_invalid", f"Custom attribute '{name}' must be a {kind}")
        return None

    def _conflict(self, body: Mapping[str, Any], own: str | None = None) -> Reply | None:
        for field in ("external_id", "email"):
            value = body.get(field)
            if not value:
                continue
            for contact in self.contacts.values():
                if contact["id"] != own and contact.get(field) == value:
                    return error_list(
                        409,
                        "conflict",
                        f"A contact matching those details already exists with id={contact['id']}",
                    )
        return None

    def _view(self, contact: Mapping[str, Any]) -> dict[str, Any]:
        tags = [{"type": "tag", "id": t} for t in contact["tags"]]
        return {**{k: v for k, v in contact.items() if k != "tags"}, "type": "contact",
                "tags": {"type": "list", "data": tags}}  # fmt: skip

    def _search(self, body: Any) -> Reply:
        query = body.get("query") if isinstance(body, Mapping) else None
        if not isinstance(query, Mapping) or query.get("operator") != "=" or query.get("field") not in (
            "external_id", "email", "id"
        ):  # fmt: skip
            return error_list(400, "parameter_invalid", "unsupported search query in this sandbox")
        with self._state:
            found = [
                self._view(c) for c in self.contacts.values() if c.get(query["field"]) == query.get("value")
            ]
        return Reply(200, {"type": "list", "data": found, "total_count": len(found)})

    def _create_contact(self, body: Any) -> Reply:
        if not isinstance(body, Mapping) or body.get("role", "user") not in ("user", "lead"):
            return error_list(400, "parameter_invalid", "role must be user or lead")
        if body.get("role", "user") == "user" and not (body.get("external_id") or body.get("email")):
            return error_list(400, "parameter_not_found", "email or external_id is required for a user")
        with self._state:
            problem = self._custom_problem(body.get("custom_attributes")) or self._conflict(body)
            if problem is not None:
                return problem
            self._next += 1
            contact_id = f"{self._next:024x}"
            contact = {k: v for k, v in body.items() if k in STANDARD}
            contact.update(
                id=contact_id, role=body.get("role", "user"), tags=[],
                custom_attributes=dict(body.get("custom_attributes") or {}),
            )  # fmt: skip
            self.contacts[contact_id] = contact
            return Reply(200, self._view(contact))

    def _update_contact(self, contact_id: str, body: Any) -> Reply:
        if not isinstance(body, Mapping):
            return error_list(400, "parameter_invalid", "a JSON object is required")
        with self._state:
            contact = self.contacts.get(contact_id)
            if contact is None:
                return error_list(404, "not_found", "User Not Found")
            problem = self._custom_problem(body.get("custom_attributes")) or self._conflict(body, contact_id)
            if problem is not None:
                return problem
            contact.update({k: v for k, v in body.items() if k in STANDARD})
            contact["custom_attributes"].update(body.get("custom_attributes") or {})
            return Reply(200, self._view(contact))

    # ------------------------------------------------------------------ tags
    def _create_tag(self, body: Any) -> Reply:
        if not isinstance(body, Mapping) or not isinstance(body.get("name"), str) or not body["name"]:
            return error_list(400, "parameter_invalid", "name is required")
        with self._state:
            tag_id = next((i for i, n in self.tags.items() if n == body["name"]), None)
            if tag_id is None:
                self._next += 1
                tag_id = str(self._next)
                self.tags[tag_id] = body["name"]
        return Reply(200, {"type": "tag", "id": tag_id, "name": body["name"]})

    def _attach(self, contact_id: str, body: Any) -> Reply:
        tag_id = str(body.get("id")) if isinstance(body, Mapping) else ""
        with self._state:
            contact = self.contacts.get(contact_id)
            if contact is None:
                return error_list(404, "not_found", "User Not Found")
            if tag_id not in self.tags:
                return error_list(404, "tag_not_found", "Tag not found")
            if tag_id not in contact["tags"]:
                contact["tags"].append(tag_id)
            return Reply(200, {"type": "tag", "id": tag_id, "name": self.tags[tag_id]})

    def _detach(self, contact_id: str, tag_id: str) -> Reply:
        with self._state:
            contact = self.contacts.get(contact_id)
            if contact is None:
                return error_list(404, "not_found", "User Not Found")
            if tag_id not in self.tags:
                return error_list(404, "tag_not_found", "Tag not found")
            if tag_id in contact["tags"]:
                contact["tags"].remove(tag_id)
            return Reply(200, {"type": "tag", "id": tag_id, "name": self.tags[tag_id]})

    # ------------------------------------------------------------------ events
    def _event(self, body: Any) -> Reply:
        if not isinstance(body, Mapping) or not body.get("event_name"):
            return error_list(400, "parameter_not_found", "event_name is required")
        if not isinstance(body.get("created_at"), int):
            return error_list(400, "parameter_invalid", "created_at must be a Unix timestamp")
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, Mapping) or len(metadata) > MAX_METADATA_KEYS:
            return error_list(400, "parameter_invalid", "metadata can have at most 10 keys")
        with self._state:
            contact = None
            for field, key in (("user_id", "external_id"), ("email", "email"), ("id", "id")):
                if body.get(field):
                    contact = next((c for c in self.contacts.values() if c.get(key) == body[field]), None)
                    break
            else:
                return error_list(400, "parameter_not_found", "user_id, email or id is required")
            if contact is None:
                return error_list(404, "not_found", "User Not Found")
            self.events.append({"contact": contact["id"], **dict(body)})
        return Reply(202)
