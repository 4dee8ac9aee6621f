"""A fake Iterable API: users/update, events/track and their bulk forms, `Api-Key` auth, Iterable's JSON
answers (`{"msg","code","params"}`; bulk: `successCount`, `failCount`, `invalidEmails`, `invalidUserIds`)."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

from activation_pipeline.sandbox.base import RecordedRequest, Reply, SandboxServer, parse_json_body

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
BULK_LIMIT = 1000


def iterable_error(status: int, message: str, code: str = "BadParams") -> Reply:
    """An Iterable error answer."""
    return Reply(status, {"msg": message, "code": code, "params": None})


def user_problem(item: Any, *, event: bool) -> tuple[str, str] | None:
    """(field, reason) when a user or event object is invalid, else None."""
    if not isinstance(item, Mapping):
        return ("body", "must be an object")
    email, user_id = item.get("email"), item.get("userId")
    if not email and not user_id:
        return ("email", "email or userId is required")
    if email and (not isinstance(email, str) or not EMAIL.match(email)):
        return ("email", "invalid email")
    if not event and user_id and not email and not item.get("preferUserId"):
        return ("userId", "a user without email needs preferUserId: true")
    if "dataFields" in item and not isinstance(item["dataFields"], Mapping):
        return ("dataFields", "dataFields must be an object")
    if event:
        if not isinstance(item.get("eventName"), str) or not item["eventName"]:
            return ("eventName", "eventName is required")
        if "createdAt" in item and not isinstance(item["createdAt"], int):
            return ("createdAt", "createdAt must be Unix seconds")
    return None


class IterableSandbox(SandboxServer):
    """Speaks Iterable's user and event endpoints; `users` and `events` hold what it accepted."""

    name = "iterable"

    def __init__(
        self, *, api_key: str = "iterable-sandbox-key", host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(host, port)
        self.api_key = api_key
        self.users: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._state_lock = threading.Lock()

    def handle(self, request: RecordedRequest) -> Reply:
        """Route to the endpoint after checking method, key and body."""
        routes = {
            "/api/users/update": (False, False),
            "/api/events/track": (True, False),
            "/api/users/bulkUpdate": (False, True),
            "/api/events/trackBulk": (True, True),
        }
        if request.path not in routes:
            return iterable_error(404, "Not found", "NotFound")
        if request.method != "POST":
            return iterable_error(405, "Method not allowed", "MethodNotAllowed")
        if request.header("api-key") != self.api_key:
            return iterable_error(401, "Invalid API key", "BadApiKey")
        body, error = parse_json_body(request)
        if error is not None:
            return iterable_error(400, "Invalid JSON body", "BadJsonBody")
        event, bulk = routes[request.path]
        if bulk:
            return self._bulk(body, event)
        problem = user_problem(body, event=event)
        if problem is None and self.item_error(body):
            problem = ("item", str(self.item_error(body)))
        if problem:
            return iterable_error(400, f"{problem[0]}: {problem[1]}")
        self._apply([body], event)
        return Reply(200, {"msg": "", "code": "Success", "params": None})

    def _bulk(self, body: Any, event: bool) -> Reply:
        array = "events" if event else "users"
        if not isinstance(body, Mapping) or not isinstance(body.get(array), list):
            return iterable_error(400, f"{array} must be a list")
        items = body[array]
        if len(items) > BULK_LIMIT:
            return iterable_error(400, f"at most {BULK_LIMIT} {array} per request")
        invalid_emails: list[str] = []
        invalid_user_ids: list[str] = []
        accepted = []
        for item in items:
            problem = user_problem(item, event=event)
            if problem is None and self.item_error(item):
                problem = (
                    "email" if isinstance(item, Mapping) and item.get("email") else "userId",
                    "rejected",
                )
            if problem is None:
                accepted.append(item)
                continue
            if isinstance(item, Mapping) and problem[0] == "email" and item.get("email"):
                invalid_emails.append(str(item["email"]))
            elif isinstance(item, Mapping) and item.get("userId"):
                invalid_user_ids.append(str(item["userId"]))
            elif isinstance(item, Mapping) and item.get("email"):
                invalid_emails.append(str(item["email"]))
        self._apply(accepted, event)
        return Reply(
            200,
            {
                "successCount": len(accepted),
                "failCount": len(items) - len(accepted),
                "invalidEmails": invalid_emails,
                "invalidUserIds": invalid_user_ids,
                "filteredOutFields": [],
                "createdFields": [],
            },
        )

    def _apply(self, items: list[Any], event: bool) -> None:
        with self._state_lock:
            for item in items:
                key = f"userId:{item['userId']}" if item.get("userId") else f"email:{item['email']}"
                if event:
                    self.events.append({"user": key, **dict(item)})
                else:
                    self.users.setdefault(key, {}).update(dict(item.get("dataFields") or {}))
