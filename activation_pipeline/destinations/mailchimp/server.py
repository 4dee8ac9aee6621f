"""A fake Mailchimp Marketing API: list members by subscriber hash, member tags, and batch operations.

Serves `PUT /3.0/lists/{list_id}/members/{hash}` (HTTP Basic with the API key as password; the hash must be
the MD5 of the lower-cased `email_address`; a new member needs `status_if_new` or `status`; a fake-looking
address is a 400 `Invalid Resource`; merge fields the audience does not define are ignored, as Mailchimp
does), `POST /3.0/lists/{list_id}/members/{hash}/tags` (204; 404 for someone who is not a member),
`POST /3.0/batches` and `GET /3.0/batches/{id}` (`pending` for `pending_polls` polls, then `finished` with a
`response_body_url`), and that URL: a tar.gz of `[{status_code, operation_id, response}]` which, like the
pre-signed S3 URL it stands for, refuses a request that also carries an `Authorization` header. More than
`max_connections` calls in flight answer 429 (Mailchimp allows 10 simultaneous connections).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tarfile
import threading
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from activation_pipeline.sandbox.base import RecordedRequest, Reply, SandboxServer, parse_json_body

ERRORS_DOC = "https://mailchimp.com/developer/marketing/docs/errors/"
MEMBER = re.compile(r"^/3\.0/lists/([A-Za-z0-9]+)/members/([0-9a-f]{32})(/tags)?$")
BATCH = re.compile(r"^/3\.0/batches/([A-Za-z0-9-]+)$")
RESULTS = re.compile(r"^/batch-results/([A-Za-z0-9-]+)\.tar\.gz$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
STATUSES = frozenset({"subscribed", "unsubscribed", "cleaned", "pending", "transactional"})
DEFAULT_MERGE_FIELDS = frozenset({"FNAME", "LNAME", "ADDRESS", "PHONE", "BIRTHDAY"})


def problem(status: int, title: str, detail: str) -> Reply:
    """Mailchimp's error document (application/problem+json)."""
    body = {
        "type": ERRORS_DOC,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": str(uuid.uuid4()),
    }
    return Reply(status, body, {"Content-Type": "application/problem+json"})


class MailchimpSandbox(SandboxServer):
    """Fake <dc>.api.mailchimp.com; `members[list_id][hash]` holds what it accepted."""

    name = "mailchimp"

    def __init__(
        self,
        *,
        api_key: str = "sandbox-key-us6",
        max_connections: int = 10,
        pending_polls: int = 0,
        create_missing: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """`create_missing` (for demos): unknown audiences are created on first use."""
        super().__init__(host, port)
        self.api_key = api_key
        self.max_connections = max_connections
        self.pending_polls = pending_polls
        self.create_missing = create_missing
        self.merge_fields: dict[str, set[str]] = {}
        self.members: dict[str, dict[str, dict[str, Any]]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self._in_flight = 0
        self._state = threading.Lock()

    def create_list(self, list_id: str, *merge_fields: str) -> None:
        """Make an audience with the default merge fields and `merge_fields`."""
        with self._state:
            self.members.setdefault(list_id, {})
            self.merge_fields[list_id] = set(DEFAULT_MERGE_FIELDS) | set(merge_fields)

    def member(self, list_id: str, email: str) -> dict[str, Any] | None:
        """A member by email."""
        with self._state:
            found = self.members.get(list_id, {}).get(hashlib.md5(email.lower().encode()).hexdigest())  # noqa: S324
            return json.loads(json.dumps(found)) if found else None

    def tagged(self, list_id: str, tag: str) -> set[str]:
        """Emails of the members carrying an active tag."""
        with self._state:
            return {m["email_address"] for m in self.members.get(list_id, {}).values() if tag in m["tags"]}

    def handle(self, request: RecordedRequest) -> Reply:
        """Serve one call within the connection limit."""
        found = RESULTS.match(request.path)
        if found and request.method == "GET":
            return self._results(request, found.group(1))
        header = request.header("authorization") or ""
        try:
            password = base64.b64decode(header[6:]).decode(errors="replace").partition(":")[2]
        except ValueError:
            password = ""
        if not header.startswith("Basic ") or password != self.api_key:
            return problem(
                401,
                "API Key Invalid",
                "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
            )
        with self._state:
            if self._in_flight >= self.max_connections:
                return problem(
                    429, "Too Many Requests",
                    f"You have exceeded the limit of {self.max_connections} simultaneous connections.",
                )  # fmt: skip
            self._in_flight += 1
        try:
            return self._route(request)
        finally:
            with self._state:
                self._in_flight -= 1

    def _route(self, request: RecordedRequest) -> Reply:
        path, method = request.path, request.method
        if path == "/3.0/batches" and method == "POST":
            return self._create_batch(request)
        if (batch := BATCH.match(path)) and method == "GET":
            return self._batch_status(batch.group(1))
        member = MEMBER.match(path)
        if member and member.group(3) and method == "POST":
            return self._tags(request, member.group(1), member.group(2))
        if member and not member.group(3) and method == "PUT":
            return self._upsert(request, member.group(1), member.group(2))
        return problem(404, "Resource Not Found", "The requested resource could not be found.")

    def _audience(self, list_id: str) -> dict[str, dict[str, Any]] | None:
        if list_id not in self.members and self.create_missing:
            self.members[list_id] = {}
            self.merge_fields[list_id] = set(DEFAULT_MERGE_FIELDS)
        return self.members.get(list_id)

    def _upsert(self, request: RecordedRequest, list_id: str, hashed: str) -> Reply:
        body, error = parse_json_body(request)
        if error is not None or not isinstance(body, Mapping):
            return problem(400, "JSON Schema Error", "The request body is not valid JSON.")
        email = str(body.get("email_address", ""))
        if hashlib.md5(email.lower().encode()).hexdigest() != hashed:  # noqa: S324 - Mailchimp's member id
            return problem(400, "Invalid Resource", "The subscriber hash does not match the email address.")
        if not EMAIL.match(email.lower()) or self.item_error(body):
            detail = (
                self.item_error(body) or f"{email} looks fake or invalid, please enter a real email address."
            )
            return problem(400, "Invalid Resource", detail)
        with self._state:
            audience = self._audience(list_id)
            if audience is None:
                return problem(404, "Resource Not Found", "The requested resource could not be found.")
            stored = audience.get(hashed)
            if stored is None:
                status = body.get("status") or body.get("status_if_new")
                if status not in STATUSES:
                    return problem(
                        400,
                        "Invalid Resource",
                        "The resource submitted could not be validated: status_if_new is required.",
                    )
                stored = audience[hashed] = {
                    "id": hashed, "email_address": email.lower(), "status": status, "merge_fields": {}, "tags": [],
                }  # fmt: skip
            elif body.get("status") in STATUSES:
                stored["status"] = body["status"]
            defined = self.merge_fields.get(list_id, set())
            stored["merge_fields"].update(
                {k: v for k, v in (body.get("merge_fields") or {}).items() if k in defined}
            )
            return Reply(200, json.loads(json.dumps(stored)))

    def _tags(self, request: RecordedRequest, list_id: str, hashed: str) -> Reply:
        body, error = parse_json_body(request)
        tags = body.get("tags") if isinstance(body, Mapping) and error is None else None
        if not isinstance(tags, list) or not all(
            isinstance(t, Mapping) and t.get("name") and t.get("status") in ("active", "inactive")
            for t in tags
        ):
            return problem(400, "Invalid Resource", "tags must be [{name, status: active|inactive}]")
        with self._state:
            stored = (self._audience(list_id) or {}).get(hashed)
            if stored is None:
                return problem(404, "Resource Not Found", "The requested resource could not be found.")
            for tag in tags:
                if tag["status"] == "active" and tag["name"] not in stored["tags"]:
                    stored["tags"].append(tag["name"])
                elif tag["status"] == "inactive" and tag["name"] in stored["tags"]:
                    stored["tags"].remove(tag["name"])
        return Reply(204)

    def _create_batch(self, request: RecordedRequest) -> Reply:
        body, error = parse_json_body(request)
        operations = body.get("operations") if isinstance(body, Mapping) and error is None else None
        if not isinstance(operations, list) or not operations:
            return problem(400, "Invalid Resource", "operations must be a non-empty array")
        results: list[dict[str, Any]] = []
        for op in operations:
            if not isinstance(op, Mapping) or op.get("method") not in (
                "GET",
                "POST",
                "PUT",
                "PATCH",
                "DELETE",
            ):
                return problem(400, "Invalid Resource", "each operation needs a method and a path")
            inner = replace(
                request,
                method=op["method"],
                path="/3.0/" + str(op.get("path", "")).lstrip("/"),
                body=str(op.get("body") or "").encode(),
                headers={**request.headers, "content-type": "application/json"},
            )
            reply = self._route(inner)
            response = json.dumps(reply.body) if reply.body is not None else ""
            results.append(
                {"status_code": reply.status, "operation_id": op.get("operation_id"), "response": response}
            )
        batch_id = uuid.uuid4().hex[:10]
        errored = sum(1 for r in results if r["status_code"] >= 400)
        with self._state:
            self.batches[batch_id] = {"results": results, "polls": 0, "errored": errored}
        return Reply(200, self._batch_body(batch_id, "pending"))

    def _batch_body(self, batch_id: str, status: str) -> dict[str, Any]:
        batch = self.batches[batch_id]
        total = len(batch["results"])
        body = {
            "id": batch_id, "status": status, "total_operations": total,
            "finished_operations": total if status == "finished" else 0,
            "errored_operations": batch["errored"] if status == "finished" else 0,
            "response_body_url": f"{self.url}/batch-results/{batch_id}.tar.gz" if status == "finished" else "",
        }  # fmt: skip
        return body

    def _batch_status(self, batch_id: str) -> Reply:
        with self._state:
            batch = self.batches.get(batch_id)
            if batch is None:
                return problem(404, "Resource Not Found", "The requested resource could not be found.")
            batch["polls"] += 1
            status = "finished" if batch["polls"] > self.pending_polls else "started"
            return Reply(200, self._batch_body(batch_id, status))

    def _results(self, request: RecordedRequest, batch_id: str) -> Reply:
        if request.header("authorization"):
            return Reply(
                400,
                "<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>",
            )
        with self._state:
            batch = self.batches.get(batch_id)
        if batch is None:
            return Reply(404, "<Error><Code>NoSuchKey</Code></Error>")
        data = json.dumps(batch["results"]).encode()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            info = tarfile.TarInfo(f"{batch_id}/{batch_id}.json")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        return Reply(200, buffer.getvalue(), {"Content-Type": "application/x-gzip"})
