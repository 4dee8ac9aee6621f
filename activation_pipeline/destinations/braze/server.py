"""A fake Braze REST endpoint: `POST /users/track` with Bearer auth, at most 75 objects a request, per-item
`errors` in a 201 answer; keeps the users' attributes and events it accepted."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from activation_pipeline.sandbox.base import (
    RecordedRequest,
    Reply,
    SandboxServer,
    json_error,
    parse_json_body,
)

MAX_OBJECTS = 75
ARRAYS = ("attributes", "events", "purchases")
PRIMARY_KEYS = ("external_id", "user_alias", "braze_id")
NO_DATA = "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields."


def _is_time(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def object_problem(array: str, item: Any) -> str | None:
    """Why an object is invalid for Braze, or None."""
    if not isinstance(item, Mapping):
        return "invalid_object"
    present = [k for k in PRIMARY_KEYS if item.get(k)]
    if len(present) > 1:
        return "ambiguous_user_identifier"
    if not present and not (item.get("email") or item.get("phone")):
        return "missing_user_identifier"
    alias = item.get("user_alias")
    if alias is not None and (
        not isinstance(alias, Mapping) or not alias.get("alias_name") or not alias.get("alias_label")
    ):
        return "invalid_user_alias"
    if array == "events":
        if not isinstance(item.get("name"), str) or not item["name"]:
            return "missing_event_name"
        if not _is_time(item.get("time")):
            return "invalid_time"
        if "properties" in item and not isinstance(item["properties"], Mapping):
            return "invalid_properties"
    if array == "purchases" and not all(k in item for k in ("product_id", "currency", "price", "time")):
        return "invalid_purchase"
    return None


def user_key(item: Mapping[str, Any]) -> str:
    """A printable key of the user an object names."""
    if item.get("external_id"):
        return f"external_id:{item['external_id']}"
    if isinstance(item.get("user_alias"), Mapping):
        return f"alias:{item['user_alias'].get('alias_label')}:{item['user_alias'].get('alias_name')}"
    for key in ("braze_id", "email", "phone"):
        if item.get(key):
            return f"{key}:{item[key]}"
    return "unknown"


class BrazeSandbox(SandboxServer):
    """Speaks Braze's /users/track; `users` and `events` hold what it accepted."""

    name = "braze"

    def __init__(self, *, api_key: str = "braze-sandbox-key", host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.api_key = api_key
        self.users: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._state_lock = threading.Lock()

    def handle(self, request: RecordedRequest) -> Reply:
        """Validate and apply one /users/track request."""
        if request.path != "/users/track":
            return json_error(404, "Not found")
        if request.method != "POST":
            return json_error(405, "Method not allowed")
        if request.header("authorization") != f"Bearer {self.api_key}":
            return json_error(401, "Invalid API key")
        body, error = parse_json_body(request)
        if error is not None:
            return error
        if not isinstance(body, Mapping) or any(k in body and not isinstance(body[k], list) for k in ARRAYS):
            return json_error(400, NO_DATA)
        total = sum(len(body.get(k) or []) for k in ARRAYS)
        if total == 0:
            return json_error(400, NO_DATA)
        if total > MAX_OBJECTS:
            return json_error(400, f"Too many objects: at most {MAX_OBJECTS} per request, got {total}")
        errors: list[dict[str, Any]] = []
        processed = dict.fromkeys(ARRAYS, 0)
        accepted: list[tuple[str, Mapping[str, Any]]] = []
        for array in ARRAYS:
            for index, item in enumerate(body.get(array) or []):
                problem = object_problem(array, item) or self.item_error(item)
                if problem:
                    errors.append({"type": problem, "input_array": array, "index": index})
                else:
                    processed[array] += 1
                    accepted.append((array, item))
        self._apply(accepted)
        answer: dict[str, Any] = {"message": "success" if accepted else "Valid data must be provided."}
        for array in ARRAYS:
            if array in body:
                answer[f"{array}_processed"] = processed[array]
        if errors:
            answer["errors"] = errors
        return Reply(201 if accepted else 400, answer)

    def _apply(self, accepted: list[tuple[str, Mapping[str, Any]]]) -> None:
        with self._state_lock:
            for array, item in accepted:
                if array == "attributes":
                    fields = {
                        k: v for k, v in item.items() if k not in PRIMARY_KEYS and not k.startswith("_")
                    }
                    self.users.setdefault(user_key(item), {}).update(fields)
                elif array == "events":
                    self.events.append({"user": user_key(item), **dict(item)})
