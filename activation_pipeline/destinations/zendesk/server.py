"""A fake Zendesk Support API: bulk create-or-update of users as queued jobs, job statuses, user tags.

Serves `POST /api/v2/users/create_or_update_many` (HTTP Basic `{email}/token:{api_token}`; 1 to 100 users;
answers a `job_status` that is `queued` for `queued_polls` polls of `GET /api/v2/job_statuses/{id}`, then
`completed` with one result per user in request order: `Created`/`Updated` with the `id`, or `Failed` with
`error` and `details` for a new user without a `name`, a malformed email, or neither email nor external id),
and `PUT`/`DELETE /api/v2/users/{id}/tags` (`{tags: [...]}`; 404 for an unknown user). Users match on
`external_id`, else `email`. User field keys the account does not define are ignored, as Zendesk does.
Past `calls_per_minute` calls in a rolling minute it answers 429 with `Retry-After`.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from activation_pipeline.sandbox.base import RecordedRequest, Reply, SandboxServer, parse_json_body

MAX_USERS = 100
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
JOB = re.compile(r"^/api/v2/job_statuses/([0-9a-f]+)(\.json)?$")
TAGS = re.compile(r"^/api/v2/users/([0-9]+)/tags(\.json)?$")
UPSERT = re.compile(r"^/api/v2/users/create_or_update_many(\.json)?$")
TOP_LEVEL = ("phone", "details", "notes", "time_zone", "locale", "alias", "signature")


class ZendeskSandbox(SandboxServer):
    """Fake <subdomain>.zendesk.com; `users` (by id) hold what it accepted."""

    name = "zendesk"

    def __init__(
        self,
        *,
        email: str = "agent@acme.example",
        api_token: str = "zendesk-sandbox-token",  # noqa: S107 - a fake server's test secret
        calls_per_minute: int = 700,
        queued_polls: int = 0,
        create_missing: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """`create_missing` (for demos): user field keys are defined on first use."""
        super().__init__(host, port)
        self.credentials = f"{email}/token:{api_token}"
        self.calls_per_minute = calls_per_minute
        self.queued_polls = queued_polls
        self.create_missing = create_missing
        self.user_fields: set[str] = set()
        self.users: dict[int, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self._next_id = 360000
        self._calls: deque[float] = deque()
        self._state = threading.Lock()

    def define_user_field(self, *keys: str) -> None:
        """Create user fields (Admin Center > People > User fields)."""
        with self._state:
            self.user_fields.update(keys)

    def user(self, email: str) -> dict[str, Any] | None:
        """A user by email."""
        with self._state:
            found = next((u for u in self.users.values() if u.get("email") == email.lower()), None)
            return (
                {**found, "tags": list(found["tags"]), "user_fields": dict(found["user_fields"])}
                if found
                else None
            )

    def tagged(self, tag: str) -> set[str]:
        """Emails of the users carrying a tag."""
        with self._state:
            return {str(u.get("email")) for u in self.users.values() if tag in u["tags"]}

    def handle(self, request: RecordedRequest) -> Reply:
        """Authenticate, count against the minute, and serve one call."""
        header = request.header("authorization") or ""
        try:
            given = (
                base64.b64decode(header[6:]).decode(errors="replace") if header.startswith("Basic ") else ""
            )
        except ValueError:
            given = ""
        if given != self.credentials:
            return Reply(401, {"error": "Couldn't authenticate you"})
        with self._state:
            now = time.monotonic()
            while self._calls and self._calls[0] <= now - 60:
                self._calls.popleft()
            if len(self._calls) >= self.calls_per_minute:
                wait = int(self._calls[0] + 60 - now) + 1
                return Reply(429, "Rate limit exceeded", {"Retry-After": str(wait)})
            self._calls.append(now)
        if UPSERT.match(request.path) and request.method == "POST":
            return self._upsert(request)
        if (job := JOB.match(request.path)) and request.method == "GET":
            return self._job(job.group(1))
        if (tags := TAGS.match(request.path)) and request.method in ("PUT", "DELETE"):
            return self._tags(request, int(tags.group(1)))
        return Reply(404, {"error": "InvalidEndpoint", "description": "Not found"})

    def _upsert(self, request: RecordedRequest) -> Reply:
        body, error = parse_json_body(request)
        users = body.get("users") if isinstance(body, Mapping) and error is None else None
        if not isinstance(users, list) or not users:
            return Reply(400, {"error": "InvalidValue", "description": "users must be a non-empty array"})
        if len(users) > MAX_USERS:
            return Reply(
                400, {"error": "TooManyValues", "description": f"Too many users: at most {MAX_USERS}"}
            )
        results = [self._one(index, user) for index, user in enumerate(users)]
        job_id = f"{len(self.jobs) + 1:032x}"
        with self._state:
            self.jobs[job_id] = {"results": results, "polls": 0, "total": len(users)}
        return Reply(200, {"job_status": self._job_body(job_id, "queued")})

    def _one(self, index: int, user: Any) -> dict[str, Any]:
        if not isinstance(user, Mapping):
            return {"index": index, "status": "Failed", "error": "InvalidValue", "details": "not an object"}
        email = str(user.get("email") or "").lower()
        external_id = str(user.get("external_id") or "")
        if email and not EMAIL.match(email):
            return {"index": index, "status": "Failed", "error": "UserUpdateError",
                    "details": f"Email: {email} is not properly formatted"}  # fmt: skip
        scripted = self.item_error(user)
        if scripted:
            return {"index": index, "status": "Failed", "error": "UserUpdateError", "details": scripted}
        if not email and not external_id:
            return {"index": index, "status": "Failed", "error": "UserUpdateError",
                    "details": "an email or external_id is required"}  # fmt: skip
        with self._state:
            found = next(
                (u for u in self.users.values() if external_id and u.get("external_id") == external_id), None
            )
            if found is None and email:
                found = next((u for u in self.users.values() if u.get("email") == email), None)
            status = "Updated"
            if found is None:
                if not str(user.get("name") or "").strip():
                    return {
                        "index": index,
                        "status": "Failed",
                        "error": "UserCreateError",
                        "details": "Name: is too short",
                    }
                self._next_id += 1
                found = self.users[self._next_id] = {"id": self._next_id, "tags": [], "user_fields": {}}
                status = "Created"
            for key in ("name", "email", "external_id", *TOP_LEVEL):
                if user.get(key) not in (None, ""):
                    found[key] = str(user[key]).lower() if key == "email" else user[key]
            fields = dict(user.get("user_fields") or {})
            if self.create_missing:
                self.user_fields.update(fields)
            found["user_fields"].update({k: v for k, v in fields.items() if k in self.user_fields})
            return {"index": index, "id": found["id"], "status": status, "email": found.get("email")}

    def _job_body(self, job_id: str, status: str) -> dict[str, Any]:
        job = self.jobs[job_id]
        body: dict[str, Any] = {
            "id": job_id, "status": status, "total": job["total"], "url": f"{self.url}/api/v2/job_statuses/{job_id}.json",
            "progress": job["total"] if status == "completed" else 0, "job_type": "Bulk Create or Update Users",
        }  # fmt: skip
        if status == "completed":
            body["results"] = job["results"]
        return body

    def _job(self, job_id: str) -> Reply:
        with self._state:
            job = self.jobs.get(job_id)
            if job is None:
                return Reply(404, {"error": "RecordNotFound", "description": "Not found"})
            job["polls"] += 1
            status = "completed" if job["polls"] > self.queued_polls else "working"
            return Reply(200, {"job_status": self._job_body(job_id, status)})

    def _tags(self, request: RecordedRequest, user_id: int) -> Reply:
        body, error = parse_json_body(request)
        tags = body.get("tags") if isinstance(body, Mapping) and error is None else None
        if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
            return Reply(400, {"error": "InvalidValue", "description": "tags must be a list of strings"})
        with self._state:
            user = self.users.get(user_id)
            if user is None:
                return Reply(404, {"error": "RecordNotFound", "description": "Not found"})
            for tag in tags:
                if request.method == "PUT" and tag.lower() not in user["tags"]:
                    user["tags"].append(tag.lower())
                elif request.method == "DELETE" and tag.lower() in user["tags"]:
                    user["tags"].remove(tag.lower())
            return Reply(200, {"tags": list(user["tags"])})
