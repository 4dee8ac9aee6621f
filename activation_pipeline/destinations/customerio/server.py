"""A fake Customer.io Track API v2: `POST /api/v2/batch` with Basic auth (site id : API key), requests of at
most 500 KB and actions of at most 32 KB, 207 with per-action `errors` (`batch_index`), 400 when nothing in
the batch is valid, 429 above the fair-use rate (100 requests a second); keeps the people, objects and events
it accepted."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from activation_pipeline.sandbox.base import RecordedRequest, Reply, SandboxServer

MAX_REQUEST_BYTES = 500 * 1024
MAX_ACTION_BYTES = 32 * 1024
PERSON_KEYS = ("id", "email", "cio_id")
ULID = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")


def _meta_error(status: int, message: str) -> Reply:
    return Reply(status, {"meta": {"error": message}})


def action_problem(action: Any) -> tuple[str, str] | None:
    """(field, message) of why Customer.io refuses one batch action, or None."""
    if not isinstance(action, Mapping):
        return "", "action must be an object"
    kind, verb = action.get("type"), action.get("action")
    identifiers = action.get("identifiers")
    if kind not in ("person", "object"):
        return "type", "type must be person or object"
    if not isinstance(identifiers, Mapping):
        return "identifiers", "identifiers are required"
    if kind == "person":
        present = [k for k in PERSON_KEYS if identifiers.get(k) not in (None, "")]
        if len(present) != 1 or set(identifiers) - set(PERSON_KEYS):
            return "identifiers", "exactly one of id, email or cio_id is required"
        if verb not in ("identify", "event", "delete", "page", "screen", "suppress", "unsuppress"):
            return "action", f"unsupported action {verb!r} for person"
    elif not identifiers.get("object_type_id") or not identifiers.get("object_id"):
        return "identifiers", "object_type_id and object_id are required"
    elif verb not in ("identify", "delete", "event"):
        return "action", f"unsupported action {verb!r} for object"
    if "attributes" in action and not isinstance(action["attributes"], Mapping):
        return "attributes", "attributes must be an object"
    if "timestamp" in action and not isinstance(action["timestamp"], int):
        return "timestamp", "timestamp must be Unix seconds"
    if verb == "event":
        if not isinstance(action.get("name"), str) or not action["name"]:
            return "name", "event name is required"
        if "id" in action and not (isinstance(action["id"], str) and ULID.match(action["id"])):
            return "id", "id must be a ULID"
    return None


class CustomerioSandbox(SandboxServer):
    """Speaks Customer.io's Track API v2 batch endpoint; `people`, `objects`, `events` hold what it accepted."""

    name = "customerio"

    def __init__(
        self,
        *,
        site_id: str = "sandbox-site",
        api_key: str = "customerio-sandbox-key",
        requests_per_second: int = 100,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.auth = "Basic " + base64.b64encode(f"{site_id}:{api_key}".encode()).decode()
        self.requests_per_second = requests_per_second
        self.people: dict[str, dict[str, Any]] = {}
        self.objects: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.event_ids: set[str] = set()
        self._recent: deque[float] = deque()
        self._state_lock = threading.Lock()

    def handle(self, request: RecordedRequest) -> Reply:
        """Validate and apply one batch request."""
        if request.path != "/api/v2/batch":
            return _meta_error(404, "not found")
        if request.method != "POST":
            return _meta_error(405, "method not allowed")
        if request.header("authorization") != self.auth:
            return _meta_error(401, "Unauthorized request")
        with self._state_lock:
            now = time.monotonic()
            while self._recent and self._recent[0] <= now - 1.0:
                self._recent.popleft()
            if len(self._recent) >= self.requests_per_second:
                return _meta_error(429, "rate limit exceeded")
            self._recent.append(now)
        if len(request.body) > MAX_REQUEST_BYTES:
            return _meta_error(413, "request body is larger than 500KB")
        try:
            body = json.loads(request.body)
        except ValueError:
            return _meta_error(400, "malformed JSON")
        if not isinstance(body, Mapping) or not isinstance(body.get("batch"), list) or not body["batch"]:
            return _meta_error(400, "batch must be a non-empty array")
        errors: list[dict[str, Any]] = []
        accepted: list[Mapping[str, Any]] = []
        for index, action in enumerate(body["batch"]):
            size = len(json.dumps(action, separators=(",", ":")).encode())
            problem = (
                ("", "action is larger than 32KB") if size > MAX_ACTION_BYTES else action_problem(action)
            )
            scripted = self.item_error(action) if problem is None else None
            if scripted is not None:
                problem = ("", scripted)
            if problem is None:
                accepted.append(action)
            else:
                errors.append(
                    {"batch_index": index, "reason": "invalid", "field": problem[0], "message": problem[1]}
                )
        if not accepted:
            return Reply(400, {"errors": errors})
        self._apply(accepted)
        return Reply(207, {"errors": errors}) if errors else Reply(200, {})

    def _apply(self, accepted: list[Mapping[str, Any]]) -> None:
        with self._state_lock:
            for action in accepted:
                identifiers = action["identifiers"]
                if action["type"] == "object":
                    key = f"{identifiers['object_type_id']}:{identifiers['object_id']}"
                    self.objects.setdefault(key, {}).update(action.get("attributes") or {})
                    continue
                key = next(f"{k}:{identifiers[k]}" for k in PERSON_KEYS if identifiers.get(k))
                if action["action"] == "identify":
                    self.people.setdefault(key, {}).update(action.get("attributes") or {})
                elif action["action"] == "event":
                    if action.get("id") in self.event_ids:
                        continue  # the same ULID again: deduplicated
                    if action.get("id"):
                        self.event_ids.add(action["id"])
                    self.events.append({"person": key, **dict(action)})
