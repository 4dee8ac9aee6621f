"""Mailchimp: audience members upserted by the MD5 of the lower-cased email, audiences kept as tags.

Per member: `PUT /3.0/lists/{list_id}/members/{md5(lower(email))}` with `{email_address, status_if_new,
merge_fields}` (an upsert that never changes an existing member's subscription status), then
`POST /3.0/lists/{list_id}/members/{hash}/tags` with `{tags: [{name, status: active|inactive}]}` for an
audience (a leaver only gets the `inactive` tag; a 404 there means not a member: nothing to remove).

Batched where Mailchimp offers it: with `batch_operations` (the default) a batch's operations go in one
`POST /3.0/batches`; the client polls `GET /3.0/batches/{id}` until `finished`, then reads the results archive
(`response_body_url`, a tar.gz of `[{status_code, operation_id, response}]`, fetched without credentials) and
judges every operation by its own status. (The synchronous `POST /3.0/lists/{id}` batch cannot add members
without overwriting existing members' status, nor deactivate a tag, so it is not used.) Auth: HTTP Basic with
any user name and the API key. Errors are problem documents `{type, title, status, detail}`; 429 means more
than 10 simultaneous connections.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
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
from activation_pipeline.destinations.http import ClientOptions, HttpResult, is_retryable_status
from activation_pipeline.destinations.mailchimp.settings import MailchimpConnection, MailchimpDestination
from activation_pipeline.destinations.outcomes import http_metrics

MAX_BATCH = 500
"""Records a batch holds (at most two operations each in one /batches call)."""


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: the MD5 hex digest of the lower-cased email."""
    return hashlib.md5(email.strip().lower().encode(), usedforsecurity=False).hexdigest()


def base_url_for(api_key: str) -> str:
    """The API root of a key's data centre (`...-us6` -> https://us6.api.mailchimp.com)."""
    _, _, centre = api_key.rpartition("-")
    if not centre.isalnum():
        raise ValueError("a Mailchimp API key ends with -<data centre>, e.g. -us6")
    return f"https://{centre}.api.mailchimp.com"


@dataclass
class _Operation:
    record_id: str
    method: str
    path: str
    body: dict[str, Any]
    benign_404: bool = False
    """A tag removal of someone who is not a member: nothing to remove."""
    status: int | None = None
    detail: str = ""


@dataclass
class _Plan:
    contact: ContactMessage
    operations: list[_Operation] = field(default_factory=list)


def _problem(body: Any) -> str:
    if isinstance(body, Mapping):
        return f"{body.get('title', '')}: {body.get('detail', '')}".strip(": ")
    return str(body)[:300]


class MailchimpClient:
    """Upserts members and sets their audience tags, through /batches or call by call."""

    max_batch = MAX_BATCH

    def __init__(self, destination: MailchimpDestination, options: ClientOptions | None = None) -> None:
        options = options or ClientOptions()
        settings = destination.settings
        key = settings.api_key.resolve(f"destinations.{destination.id}.settings.api_key")
        self.list_id = settings.list_id
        self.status_if_new = settings.status_if_new
        self.batch_operations = settings.batch_operations
        self.batch_wait = settings.batch_wait_seconds
        self.sleep = options.sleep
        base = settings.base_url or base_url_for(key)
        basic = base64.b64encode(f"activation-pipeline:{key}".encode()).decode()
        self.sender = options.sender(
            base, headers={"Authorization": f"Basic {basic}", "Content-Type": "application/json"}
        )
        self.archives = options.sender(base)
        """Fetches result archives from their pre-signed URLs, which must not carry the API key."""

    def _plan(self, contact: ContactMessage, connection: MailchimpConnection) -> _Plan:
        member = f"/3.0/lists/{self.list_id}/members/{subscriber_hash(str(contact.email))}"
        plan = _Plan(contact)
        merge = {k: v for k, v in contact.properties().items() if v is not None}
        if not contact.audience and connection.merge_field:
            merge = {k: v for k, v in merge.items() if k != contact.computation_key}
            merge[connection.merge_field] = contact.traits.get(contact.computation_key)
        record_id = contact.record.record_id
        if not contact.audience or contact.member:
            body: dict[str, Any] = {"email_address": contact.email, "status_if_new": self.status_if_new}
            if merge:
                body["merge_fields"] = merge
            plan.operations.append(_Operation(record_id, "PUT", member, body))
        if contact.audience:
            tag = connection.tag or contact.computation_key
            status = "active" if contact.member else "inactive"
            body = {"tags": [{"name": tag, "status": status}]}
            plan.operations.append(_Operation(record_id, "POST", f"{member}/tags", body, not contact.member))
        return plan

    def send(self, records: Sequence[OutboundRecord], context: BatchContext) -> BatchResult:
        """Upsert members and set tags; each record's outcome is that of its own operations."""
        connection = MailchimpConnection.model_validate(dict(context.connection_settings))
        results: dict[str, RecordResult] = {}
        plans: list[_Plan] = []
        for record in records:
            contact = read_contact(record)
            if contact is None:
                why = f"Mailchimp takes identify calls only, not {record.operation.value}"
                results[record.record_id] = RecordResult(record.record_id, Outcome.FAILED, why)
            elif contact.email is None:
                why = "no valid email to find the member by"
                results[record.record_id] = RecordResult(record.record_id, Outcome.FAILED, why)
            else:
                plans.append(self._plan(contact, connection))
        answers: list[HttpResult] = []
        operations = [op for plan in plans for op in plan.operations]
        counts: dict[str, float] = {"operations": float(len(operations)), "operations_failed": 0.0}
        if operations:
            if self.batch_operations:
                self._batched(operations, answers)
            else:
                self._one_by_one(operations, answers)
        for plan in plans:
            record_id = plan.contact.record.record_id
            outcome, reasons = Outcome.ACKNOWLEDGED, []
            for op in plan.operations:
                ok = op.status is not None and (
                    200 <= op.status < 300 or (op.benign_404 and op.status == 404)
                )
                if ok:
                    continue
                counts["operations_failed"] += 1
                transient = op.status is None or is_retryable_status(op.status)
                if transient and outcome is not Outcome.FAILED:
                    outcome = Outcome.RETRY
                elif not transient:
                    outcome = Outcome.FAILED
                reasons.append(f"{op.method} {op.path.rsplit('/', 1)[-1]}: {op.status} {op.detail}".strip())
            sent = {
                "operations": [{"method": o.method, "path": o.path, "body": o.body} for o in plan.operations]
            }
            response = {"statuses": [o.status for o in plan.operations]}
            results[record_id] = RecordResult(record_id, outcome, "; ".join(reasons), sent, response)
        return BatchResult([results[r.record_id] for r in records], {**http_metrics(answers), **counts})

    def _one_by_one(self, operations: list[_Operation], answers: list[HttpResult]) -> None:
        done: set[str] = set()
        for op in operations:
            if op.record_id in done:
                op.detail = "not sent: the member upsert before it failed"
                continue
            result = self.sender.request(op.method, op.path, json=op.body)
            answers.append(result)
            op.status = result.status if result.response is not None else None
            if result.verdict is not Outcome.ACKNOWLEDGED:
                op.detail = _problem(result.json()) or result.reason
                if op.method == "PUT":
                    done.add(op.record_id)

    def _batched(self, operations: list[_Operation], answers: list[HttpResult]) -> None:
        wire = [
            {
                "method": op.method,
                "path": op.path.removeprefix("/3.0"),
                "operation_id": str(n),
                "body": json.dumps(op.body),
            }
            for n, op in enumerate(operations)
        ]
        created = self.sender.post_json("/3.0/batches", {"operations": wire})
        answers.append(created)
        if created.verdict is not Outcome.ACKNOWLEDGED:
            for op in operations:
                op.status = created.status if created.verdict is Outcome.FAILED else None
                op.detail = f"batch refused: {_problem(created.json()) or created.reason}"
            return
        batch_id = str((created.json() or {}).get("id"))
        finished = self._wait(batch_id, answers)
        if finished is None:
            for op in operations:
                op.detail = f"batch {batch_id} did not finish within {self.batch_wait:g} s"
            return
        archive = self.archives.request("GET", str(finished.get("response_body_url")))
        answers.append(archive)
        by_id: dict[str, Mapping[str, Any]] = {}
        if archive.verdict is Outcome.ACKNOWLEDGED and archive.response is not None:
            by_id = {str(r.get("operation_id")): r for r in _read_archive(archive.response.content)}
        for n, op in enumerate(operations):
            found = by_id.get(str(n))
            if found is None:
                op.detail = "no result for this operation in the batch archive"
                continue
            op.status = int(found.get("status_code", 0))
            if not 200 <= op.status < 300:
                try:
                    op.detail = _problem(json.loads(found.get("response") or "{}"))
                except ValueError:
                    op.detail = str(found.get("response"))[:300]

    def _wait(self, batch_id: str, answers: list[HttpResult]) -> Mapping[str, Any] | None:
        waited, pause = 0.0, 1.0
        while True:
            status = self.sender.request("GET", f"/3.0/batches/{batch_id}")
            answers.append(status)
            body = status.json() if status.verdict is Outcome.ACKNOWLEDGED else None
            if isinstance(body, Mapping) and body.get("status") == "finished":
                return body
            if waited + pause > self.batch_wait:
                return None
            self.sleep(pause)
            waited += pause
            pause = min(pause * 2, 15.0)

    def close(self) -> None:
        """Close the HTTP sessions."""
        self.sender.close()
        self.archives.close()


def _read_archive(content: bytes) -> list[Mapping[str, Any]]:
    """The operation results in a /batches response archive (tar.gz of JSON arrays)."""
    found: list[Mapping[str, Any]] = []
    with tarfile.open(fileobj=io.BytesIO(content), mode="r:gz") as archive:
        for member in archive.getmembers():
            if not member.isfile() or not member.name.endswith(".json"):
                continue
            handle = archive.extractfile(member)
            if handle is None:
                continue
            items = json.loads(handle.read())
            found += [i for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []
    return found
