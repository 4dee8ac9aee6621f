"""Zendesk: users created or updated (by external id, else email) with the required `name`; audiences as
a tag or a checkbox user field.

`POST /api/v2/users/create_or_update_many` with at most 100 users `{name, email, external_id, phone?,
user_fields}` answers with a queued `job_status`; the client polls `GET /api/v2/job_statuses/{id}` until it
is `completed` (or `failed`/`killed`) and reads its `results` (in request order, with `index`): `Created` /
`Updated` with the user `id`, or `Failed` with `error` and `details` (that record fails). A user's `name` is
the trait mapped as `name`, else the `name_fallback`: the email (or the user id when there is no email), or
the user id (or the email). With `audience_as: tag`,
`PUT` (entered) or `DELETE` (exited) `/api/v2/users/{id}/tags` with `{tags: [tag]}`; with `user_field`, the
field is set `true`/`false` in the same upsert. Auth: HTTP Basic `{email}/token:{api_token}`. A 429 carries
`Retry-After` (seconds).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from activation_pipeline.destinations.base import (
    BatchContext,
    BatchResult,
    OutboundRecord,
    Outcome,
    RecordResult,
)
from activation_pipeline.destinations.contacts import ContactMessage, read_contact
from activation_pipeline.destinations.http import ClientOptions, HttpResult
from activation_pipeline.destinations.outcomes import answer, http_metrics
from activation_pipeline.destinations.zendesk.settings import ZendeskConnection, ZendeskDestination

MAX_USERS = 100
TOP_LEVEL = frozenset({"phone", "details", "notes", "time_zone", "locale", "alias", "signature"})
"""User attributes Zendesk has at the top; any other mapped name is a user field key."""


@dataclass
class _User:
    contact: ContactMessage
    body: dict[str, Any]
    outcome: Outcome | None = None
    reason: str = ""
    user_id: int | None = None
    responses: list[Any] = field(default_factory=list)


class ZendeskClient:
    """Creates or updates users in bulk, then keeps audience tags."""

    max_batch = MAX_USERS

    def __init__(self, destination: ZendeskDestination, options: ClientOptions | None = None) -> None:
        options = options or ClientOptions()
        settings = destination.settings
        token = settings.api_token.resolve(f"destinations.{destination.id}.settings.api_token")
        basic = base64.b64encode(f"{settings.email}/token:{token}".encode()).decode()
        self.sender = options.sender(
            settings.base_url, headers={"Authorization": f"Basic {basic}", "Content-Type": "application/json"}
        )
        self.name_fallback = settings.name_fallback
        self.job_wait = settings.job_wait_seconds
        self.sleep = options.sleep

    def name_of(self, contact: ContactMessage) -> str | None:
        """The user's name: the mapped `name` trait, else the configured fallback."""
        mapped = contact.traits.get("name")
        if isinstance(mapped, str) and mapped.strip():
            return mapped.strip()
        if self.name_fallback == "email":
            return contact.email or contact.user_id
        if self.name_fallback == "user_id":
            return contact.user_id or contact.email
        return None

    def to_user(self, contact: ContactMessage, connection: ZendeskConnection) -> dict[str, Any]:
        """The users[] object of one contact."""
        user: dict[str, Any] = {"name": self.name_of(contact)}
        if contact.email:
            user["email"] = contact.email
        if contact.user_id:
            user["external_id"] = contact.user_id
        fields: dict[str, Any] = {}
        for key, value in contact.properties(exclude=("name", "user_id", "userId")).items():
            (user if key in TOP_LEVEL else fields)[key] = value
        if contact.audience and connection.audience_as == "user_field":
            fields[connection.user_field or contact.computation_key] = contact.member
        elif not contact.audience and connection.user_field:
            fields[connection.user_field] = fields.pop(contact.computation_key, None)
        if fields:
            user["user_fields"] = fields
        return user

    def send(self, records: Sequence[OutboundRecord], context: BatchContext) -> BatchResult:
        """Upsert the batch's users, wait for the job, then add or remove audience tags."""
        connection = ZendeskConnection.model_validate(dict(context.connection_settings))
        results: dict[str, RecordResult] = {}
        users: list[_User] = []
        for record in records:
            contact = read_contact(record)
            if contact is None:
                why = f"Zendesk takes identify calls only, not {record.operation.value}"
                results[record.record_id] = RecordResult(record.record_id, Outcome.FAILED, why)
            elif contact.email is None and contact.user_id is None:
                why = "no email or user id to find the Zendesk user by"
                results[record.record_id] = RecordResult(record.record_id, Outcome.FAILED, why)
            elif self.name_of(contact) is None:
                why = "Zendesk requires a name: map a trait as 'name' or set name_fallback"
                results[record.record_id] = RecordResult(record.record_id, Outcome.FAILED, why)
            else:
                users.append(_User(contact, self.to_user(contact, connection)))
        answers: list[HttpResult] = []
        counts = {"created": 0.0, "updated": 0.0, "refused": 0.0, "tagged": 0.0, "untagged": 0.0}
        if users:
            self._upsert(users, answers, counts)
        if connection.audience_as == "tag":
            for user in users:
                if user.outcome is None and user.contact.audience:
                    self._tag(user, connection.tag or user.contact.computation_key, answers, counts)
        for user in users:
            record_id = user.contact.record.record_id
            outcome = user.outcome or Outcome.ACKNOWLEDGED
            sent = {"user": user.body, **({"user_id": user.user_id} if user.user_id else {})}
            response = {"answers": user.responses}
            results[record_id] = RecordResult(record_id, outcome, user.reason, sent, response)
        return BatchResult([results[r.record_id] for r in records], {**http_metrics(answers), **counts})

    def _upsert(self, users: list[_User], answers: list[HttpResult], counts: dict[str, float]) -> None:
        created = self.sender.post_json(
            "/api/v2/users/create_or_update_many", {"users": [u.body for u in users]}
        )
        answers.append(created)
        if created.verdict is not Outcome.ACKNOWLEDGED:
            for user in users:
                user.outcome, user.reason = created.verdict, created.reason
                user.responses.append(answer(created))
            return
        job = (created.json() or {}).get("job_status") or {}
        finished = self._wait(str(job.get("id")), answers)
        if finished is None or finished.get("status") != "completed":
            state = "did not finish" if finished is None else str(finished.get("status"))
            for user in users:
                user.outcome, user.reason = Outcome.RETRY, f"user job {job.get('id')} {state}"
            return
        for position, entry in enumerate(finished.get("results") or []):
            if not isinstance(entry, Mapping):
                continue
            index = int(entry.get("index", position))
            if not 0 <= index < len(users):
                continue
            user = users[index]
            user.responses.append(dict(entry))
            if entry.get("status") in ("Created", "Updated") and entry.get("id") is not None:
                user.user_id = int(entry["id"])
                counts["created" if entry["status"] == "Created" else "updated"] += 1
            else:
                counts["refused"] += 1
                user.outcome = Outcome.FAILED
                user.reason = f"{entry.get('error', 'Failed')}: {entry.get('details', '')}".strip(": ")
        for user in users:
            if user.outcome is None and user.user_id is None:
                user.outcome, user.reason = Outcome.RETRY, "the user job returned no result for it"

    def _wait(self, job_id: str, answers: list[HttpResult]) -> Mapping[str, Any] | None:
        waited, pause = 0.0, 1.0
        while True:
            status = self.sender.request("GET", f"/api/v2/job_statuses/{job_id}")
            answers.append(status)
            body = (
                ((status.json() or {}).get("job_status") or {})
                if status.verdict is Outcome.ACKNOWLEDGED
                else {}
            )
            if body.get("status") in ("completed", "failed", "killed"):
                return body
            if waited + pause > self.job_wait:
                return None
            self.sleep(pause)
            waited += pause
            pause = min(pause * 2, 10.0)

    def _tag(self, user: _User, tag: str, answers: list[HttpResult], counts: dict[str, float]) -> None:
        method = "PUT" if user.contact.member else "DELETE"
        result = self.sender.request(method, f"/api/v2/users/{user.user_id}/tags", json={"tags": [tag]})
        answers.append(result)
        user.responses.append(answer(result))
        user.body = {**user.body, "tags_" + ("added" if user.contact.member else "removed"): [tag]}
        if result.verdict is Outcome.ACKNOWLEDGED:
            counts["tagged" if user.contact.member else "untagged"] += 1
        else:
            user.outcome, user.reason = result.verdict, f"tags: {result.reason}"

    def close(self) -> None:
        """Close the HTTP session."""
        self.sender.close()
