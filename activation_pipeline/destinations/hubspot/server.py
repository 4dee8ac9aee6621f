"""A fake HubSpot CRM API: contact batch upsert by email and MANUAL list memberships.

Serves `POST /crm/v3/objects/contacts/batch/upsert` (Bearer token; at most 100 inputs; `idProperty` must be a
unique property, here `email`; duplicate ids refuse the batch with 400; unknown properties refuse it with 400
`VALIDATION_ERROR` (HubSpot writes only defined properties); an invalid email fails that input only, in a 207
multi-status answer) and `PUT /crm/v3/lists/{listId}/memberships/add-and-remove` (404 for an unknown list, 400
for a list that is not MANUAL/SNAPSHOT; ids it does not know come back in `recordIdsMissing`). A rolling
10-second window (`calls_per_window`, HubSpot's 100 for private apps) answers 429 with `errorType: RATE_LIMIT`
and the `X-HubSpot-RateLimit-*` headers, as HubSpot does (no `Retry-After`).
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from activation_pipeline.sandbox.base import RecordedRequest, Reply, SandboxServer, parse_json_body

MAX_INPUTS = 100
STANDARD_PROPERTIES = frozenset(
    {
        "email", "firstname", "lastname", "phone", "mobilephone", "company", "jobtitle", "website", "address",
        "city", "state", "zip", "country", "lifecyclestage", "hs_lead_status", "date_of_birth", "gender",
        "industry", "annualrevenue", "numemployees", "salutation",
    }
)  # fmt: skip
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
LIST_PATH = re.compile(r"^/crm/v3/lists/([0-9]+)/memberships/add-and-remove$")


def hubspot_error(status: int, category: str, message: str, **extra: Any) -> Reply:
    """HubSpot's error body: status, message, correlationId, category."""
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category}
    return Reply(status, {**body, **extra})


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class HubSpotSandbox(SandboxServer):
    """Fake api.hubapi.com; `contacts` (by id) and `lists` (id -> member ids) hold what it accepted."""

    name = "hubspot"

    def __init__(
        self,
        *,
        access_token: str = "hubspot-sandbox-token",  # noqa: S107 - a fake server's test secret
        calls_per_window: int = 100,
        window_seconds: float = 10.0,
        create_missing: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """`create_missing` (for demos): unknown properties are defined and unknown lists made MANUAL."""
        super().__init__(host, port)
        self.access_token = access_token
        self.calls_per_window = calls_per_window
        self.window_seconds = window_seconds
        self.create_missing = create_missing
        self.properties: set[str] = set(STANDARD_PROPERTIES)
        self.contacts: dict[str, dict[str, str]] = {}
        self.lists: dict[str, dict[str, Any]] = {}
        self._by_email: dict[str, str] = {}
        self._next_id = 100
        self._calls: deque[float] = deque()
        self._state = threading.Lock()

    def define_property(self, *names: str) -> None:
        """Create contact properties (as an admin would in HubSpot's settings)."""
        with self._state:
            self.properties.update(names)

    def create_list(self, list_id: str, processing_type: str = "MANUAL") -> None:
        """Make a list."""
        with self._state:
            self.lists[list_id] = {"processingType": processing_type, "members": set()}

    def members(self, list_id: str) -> set[str]:
        """Emails of the contacts in a list."""
        with self._state:
            return {self.contacts[i]["email"] for i in self.lists.get(list_id, {}).get("members", set())}

    def contact(self, email: str) -> dict[str, str] | None:
        """A contact's properties by email."""
        with self._state:
            found = self._by_email.get(email.lower())
            return dict(self.contacts[found]) if found else None

    def handle(self, request: RecordedRequest) -> Reply:
        """Authenticate, count against the window, and serve one call."""
        if request.header("authorization") != f"Bearer {self.access_token}":
            return hubspot_error(
                401, "INVALID_AUTHENTICATION", "Authentication credentials not found or invalid."
            )
        with self._state:
            now = time.monotonic()
            while self._calls and self._calls[0] <= now - self.window_seconds:
                self._calls.popleft()
            remaining = self.calls_per_window - len(self._calls)
            if remaining <= 0:
                return self._throttled()
            self._calls.append(now)
        if request.path == "/crm/v3/objects/contacts/batch/upsert":
            if request.method != "POST":
                return hubspot_error(405, "VALIDATION_ERROR", "Method not allowed")
            return self._upsert(request)
        found = LIST_PATH.match(request.path)
        if found:
            if request.method != "PUT":
                return hubspot_error(405, "VALIDATION_ERROR", "Method not allowed")
            return self._membership(request, found.group(1))
        return hubspot_error(404, "OBJECT_NOT_FOUND", f"No route for {request.method} {request.path}")

    def _throttled(self) -> Reply:
        return Reply(
            429,
            {
                "status": "error",
                "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": str(uuid.uuid4()),
                "policyName": "TEN_SECONDLY_ROLLING",
            },
            {
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.window_seconds * 1000)),
                "X-HubSpot-RateLimit-Max": str(self.calls_per_window),
                "X-HubSpot-RateLimit-Remaining": "0",
            },
        )

    def _upsert(self, request: RecordedRequest) -> Reply:
        body, error = parse_json_body(request)
        if error is not None:
            return hubspot_error(400, "VALIDATION_ERROR", "Invalid input JSON")
        inputs = body.get("inputs") if isinstance(body, Mapping) else None
        if not isinstance(inputs, list) or not inputs:
            return hubspot_error(400, "VALIDATION_ERROR", "inputs must be a non-empty array")
        if len(inputs) > MAX_INPUTS:
            return hubspot_error(
                400,
                "VALIDATION_ERROR",
                f"Batch input limit exceeded: at most {MAX_INPUTS}, got {len(inputs)}",
            )
        ids = [str(i.get("id", "")).lower() for i in inputs if isinstance(i, Mapping)]
        if len(ids) != len(inputs) or any(i.get("idProperty") != "email" for i in inputs):
            return hubspot_error(400, "VALIDATION_ERROR", "Each input needs idProperty email and an id")
        if len(set(ids)) != len(ids):
            return hubspot_error(400, "VALIDATION_ERROR", "Duplicate IDs found in batch input")
        with self._state:
            unknown = sorted(
                {k for i in inputs for k in (i.get("properties") or {}) if k not in self.properties}
            )
            if unknown and self.create_missing:
                self.properties.update(unknown)
                unknown = []
        if unknown:
            return hubspot_error(
                400,
                "VALIDATION_ERROR",
                "Property values were not valid: " + ", ".join(f'"{k}" does not exist' for k in unknown),
                errors=[{"message": f'Property "{k}" does not exist', "code": "PROPERTY_DOESNT_EXIST"}
                        for k in unknown],
            )  # fmt: skip
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for item, email in zip(inputs, ids, strict=True):
            properties = {str(k): str(v) for k, v in (item.get("properties") or {}).items()}
            if not EMAIL.match(email) or self.item_error(item):
                errors.append(
                    {
                        "status": "error",
                        "category": "VALIDATION_ERROR",
                        "message": self.item_error(item) or f"Email address {email} is invalid",
                        "context": {"ids": [email]},
                    }
                )
                continue
            with self._state:
                record_id = self._by_email.get(email)
                new = record_id is None
                if record_id is None:
                    self._next_id += 1
                    record_id = str(self._next_id)
                    self._by_email[email] = record_id
                    self.contacts[record_id] = {"email": email}
                self.contacts[record_id].update(properties)
                stored = dict(self.contacts[record_id])
            results.append(
                {"id": record_id, "properties": stored, "new": new, "createdAt": _now(), "updatedAt": _now(),
                 "archived": False}
            )  # fmt: skip
        answer: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": _now(),
            "completedAt": _now(),
        }
        if errors:
            answer |= {"numErrors": len(errors), "errors": errors}
            return Reply(207, answer)
        return Reply(200, answer)

    def _membership(self, request: RecordedRequest, list_id: str) -> Reply:
        body, error = parse_json_body(request)
        if error is not None or not isinstance(body, Mapping):
            return hubspot_error(400, "VALIDATION_ERROR", "Invalid input JSON")
        add = [str(i) for i in body.get("recordIdsToAdd") or []]
        remove = [str(i) for i in body.get("recordIdsToRemove") or []]
        with self._state:
            if list_id not in self.lists and self.create_missing:
                self.lists[list_id] = {"processingType": "MANUAL", "members": set()}
            found = self.lists.get(list_id)
            if found is None:
                return hubspot_error(404, "OBJECT_NOT_FOUND", f"List {list_id} does not exist")
            if found["processingType"] not in ("MANUAL", "SNAPSHOT"):
                return hubspot_error(
                    400, "VALIDATION_ERROR", "Memberships can only be changed on MANUAL or SNAPSHOT lists"
                )
            members: set[str] = found["members"]
            missing = [i for i in add + remove if i not in self.contacts]
            added = [i for i in add if i in self.contacts and i not in members]
            removed = [i for i in remove if i in members]
            members.update(added)
            members.difference_update(removed)
        return Reply(200, {"recordIdsAdded": added, "recordIdsRemoved": removed, "recordIdsMissing": missing})
