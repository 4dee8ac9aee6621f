"""A fake SendGrid v3 Marketing Contacts API: upsert into lists, job status, email search, list removal.

Serves `PUT /v3/marketing/contacts` (Bearer key; 1 to 30,000 contacts and at most 6 MB; each needs a valid
`email`; only reserved fields at the top and defined custom field ids under `custom_fields`; the lists in
`list_ids` must exist; a refusal is a 400 whose `errors[].field` names `contacts[i].<field>`; success is a 202
with a `job_id`), `GET /v3/marketing/contacts/imports/{id}` (`pending` for `pending_polls` polls, then
`completed` with counts), `POST /v3/marketing/contacts/search/emails` (at most 100 emails; 404 when none is a
contact) and `DELETE /v3/marketing/lists/{id}/contacts?contact_ids=...` (202 with a `job_id`; 404 for an
unknown list). Past `calls_per_window` calls in `window_seconds` it answers 429 with `X-RateLimit-Limit`,
`X-RateLimit-Remaining` and `X-RateLimit-Reset`.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from typing import Any

from activation_pipeline.destinations.sendgrid.client import CUSTOM_FIELD_ID, RESERVED_FIELDS
from activation_pipeline.sandbox.base import RecordedRequest, Reply, SandboxServer, parse_json_body

MAX_CONTACTS = 30_000
MAX_BYTES = 6 * 1024 * 1024
MAX_SEARCH = 100
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
LIST_CONTACTS = re.compile(r"^/v3/marketing/lists/([A-Za-z0-9-]+)/contacts$")
JOB = re.compile(r"^/v3/marketing/contacts/imports/([A-Za-z0-9-]+)$")


def sendgrid_error(status: int, message: str, field: str | None = None) -> Reply:
    """SendGrid's error body: `errors: [{field, message}]`."""
    return Reply(status, {"errors": [{"field": field, "message": message}]})


class SendGridSandbox(SandboxServer):
    """Fake api.sendgrid.com; `contacts` (by email) and `lists` (id -> contact ids) hold what it accepted."""

    name = "sendgrid"

    def __init__(
        self,
        *,
        api_key: str = "SG.sandbox-key",
        calls_per_window: int = 600,
        window_seconds: float = 60.0,
        pending_polls: int = 0,
        create_missing: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """`create_missing` (for demos): unknown lists and custom field ids are created on first use."""
        super().__init__(host, port)
        self.api_key = api_key
        self.calls_per_window = calls_per_window
        self.window_seconds = window_seconds
        self.pending_polls = pending_polls
        self.create_missing = create_missing
        self.custom_fields: set[str] = set()
        self.contacts: dict[str, dict[str, Any]] = {}
        self.lists: dict[str, set[str]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self._calls: deque[float] = deque()
        self._state = threading.Lock()

    def create_list(self, list_id: str) -> None:
        """Make a contact list."""
        with self._state:
            self.lists.setdefault(list_id, set())

    def define_custom_field(self, field_id: str) -> None:
        """Define a custom field (its id, e.g. `e1_T`)."""
        with self._state:
            self.custom_fields.add(field_id)

    def members(self, list_id: str) -> set[str]:
        """Emails of the contacts in a list."""
        with self._state:
            by_id = {c["id"]: email for email, c in self.contacts.items()}
            return {by_id[i] for i in self.lists.get(list_id, set())}

    def handle(self, request: RecordedRequest) -> Reply:
        """Authenticate, count against the window, and serve one call."""
        if request.header("authorization") != f"Bearer {self.api_key}":
            return sendgrid_error(401, "authorization required")
        with self._state:
            now = time.monotonic()
            while self._calls and self._calls[0] <= now - self.window_seconds:
                self._calls.popleft()
            if len(self._calls) >= self.calls_per_window:
                reset = int(time.time() + self._calls[0] + self.window_seconds - now) + 1
                return Reply(
                    429,
                    {"errors": [{"field": None, "message": "too many requests"}]},
                    {"X-RateLimit-Limit": str(self.calls_per_window), "X-RateLimit-Remaining": "0",
                     "X-RateLimit-Reset": str(reset)},
                )  # fmt: skip
            self._calls.append(now)
        path, method = request.path, request.method
        if path == "/v3/marketing/contacts" and method == "PUT":
            return self._upsert(request)
        if path == "/v3/marketing/contacts/search/emails" and method == "POST":
            return self._search(request)
        if (job := JOB.match(path)) and method == "GET":
            return self._job(job.group(1))
        if (found := LIST_CONTACTS.match(path)) and method == "DELETE":
            return self._remove(request, found.group(1))
        return sendgrid_error(404, f"no route for {method} {path}")

    def _upsert(self, request: RecordedRequest) -> Reply:
        if len(request.body) > MAX_BYTES:
            return sendgrid_error(413, "request body is larger than 6 MB")
        body, error = parse_json_body(request)
        if error is not None or not isinstance(body, Mapping):
            return sendgrid_error(400, "invalid JSON")
        contacts = body.get("contacts")
        if not isinstance(contacts, list) or not 1 <= len(contacts) <= MAX_CONTACTS:
            return sendgrid_error(400, f"contacts must hold 1 to {MAX_CONTACTS} contacts", "contacts")
        list_ids = [str(i) for i in body.get("list_ids") or []]
        errors: list[dict[str, Any]] = []
        with self._state:
            for n, list_id in enumerate(list_ids):
                if list_id not in self.lists:
                    if self.create_missing:
                        self.lists[list_id] = set()
                    else:
                        errors.append(
                            {"field": f"list_ids[{n}]", "message": f"list {list_id} does not exist"}
                        )
            for i, contact in enumerate(contacts):
                errors += self._contact_errors(i, contact)
        if errors:
            return Reply(400, {"errors": errors})
        job_id = str(uuid.uuid4())
        created = updated = 0
        with self._state:
            for contact in contacts:
                email = str(contact["email"]).lower()
                stored = self.contacts.get(email)
                if stored is None:
                    created += 1
                    stored = self.contacts[email] = {"id": str(uuid.uuid4()), "email": email}
                else:
                    updated += 1
                stored.update({k: v for k, v in contact.items() if k not in ("email", "custom_fields")})
                stored.setdefault("custom_fields", {}).update(contact.get("custom_fields") or {})
                for list_id in list_ids:
                    self.lists[list_id].add(stored["id"])
            self.jobs[job_id] = {
                "polls": 0,
                "results": {"requested_count": len(contacts), "created_count": created, "updated_count": updated,
                            "deleted_count": 0, "errored_count": 0},
            }  # fmt: skip
        return Reply(202, {"job_id": job_id})

    def _contact_errors(self, index: int, contact: Any) -> list[dict[str, Any]]:
        where = f"contacts[{index}]"
        if not isinstance(contact, Mapping):
            return [{"field": where, "message": "must be an object"}]
        found = []
        if not EMAIL.match(str(contact.get("email", ""))):
            found.append({"field": f"{where}.email", "message": "email address is invalid"})
        scripted = self.item_error(contact)
        if scripted:
            found.append({"field": f"{where}.email", "message": scripted})
        for key in contact:
            if key not in RESERVED_FIELDS and key not in ("email", "custom_fields"):
                found.append({"field": f"{where}.{key}", "message": f"unknown field {key}"})
        for key in contact.get("custom_fields") or {}:
            if key in self.custom_fields:
                continue
            if self.create_missing and CUSTOM_FIELD_ID.match(key):
                self.custom_fields.add(key)
                continue
            found.append({"field": f"{where}.custom_fields.{key}", "message": "custom field does not exist"})
        return found

    def _job(self, job_id: str) -> Reply:
        with self._state:
            job = self.jobs.get(job_id)
            if job is None:
                return sendgrid_error(404, "job not found")
            job["polls"] += 1
            done = job["polls"] > self.pending_polls
        status = "completed" if done else "pending"
        body: dict[str, Any] = {"id": job_id, "status": status, "job_type": "upsert"}
        if done:
            body["results"] = job["results"]
        return Reply(200, body)

    def _search(self, request: RecordedRequest) -> Reply:
        body, error = parse_json_body(request)
        emails = body.get("emails") if isinstance(body, Mapping) and error is None else None
        if not isinstance(emails, list) or not emails:
            return sendgrid_error(400, "emails is required", "emails")
        if len(emails) > MAX_SEARCH:
            return sendgrid_error(400, f"at most {MAX_SEARCH} emails", "emails")
        result: dict[str, Any] = {}
        with self._state:
            for email in emails:
                stored = self.contacts.get(str(email).lower())
                result[email] = {"contact": dict(stored)} if stored else {"error": "contact not found"}
        if not any("contact" in r for r in result.values()):
            return sendgrid_error(404, "No contacts found")
        return Reply(200, {"result": result})

    def _remove(self, request: RecordedRequest, list_id: str) -> Reply:
        ids = [i for v in request.query.get("contact_ids", []) for i in v.split(",") if i]
        if not ids:
            return sendgrid_error(400, "contact_ids is required", "contact_ids")
        with self._state:
            members = self.lists.get(list_id)
            if members is None:
                return sendgrid_error(404, f"list {list_id} not found")
            members.difference_update(ids)
        return Reply(202, {"job_id": str(uuid.uuid4())})
