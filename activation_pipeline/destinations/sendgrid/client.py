"""SendGrid Marketing Contacts: an audience is a list; members are upserted into it, leavers removed.

Entered (`true`): `PUT /v3/marketing/contacts` with `list_ids: [list]` and at most 30,000 contacts (or 6 MB)
a request, each `{email, <reserved fields>, custom_fields: {<field id>: value}}`; SendGrid answers 202 with a
`job_id` (the upsert is asynchronous) and, with `confirm_jobs`, the client polls
`GET /v3/marketing/contacts/imports/{job_id}` until the job is `completed` (or `failed`/`errored`).
A 400 names the refused contacts (`errors[].field` = `contacts[i]...`): those records fail and the rest are
sent again. Exited (`false`): contact ids from `POST /v3/marketing/contacts/search/emails` (at most 100
emails; 404 when none is found), then `DELETE /v3/marketing/lists/{id}/contacts?contact_ids=...` (202 with a
`job_id`). Auth: `Authorization: Bearer <API key>`. A 429 without Retry-After waits until
`X-RateLimit-Reset` (epoch seconds).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from activation_pipeline.destinations.base import (
    BatchContext,
    BatchResult,
    OutboundRecord,
    Outcome,
    RecordResult,
)
from activation_pipeline.destinations.contacts import ContactMessage, read_contact
from activation_pipeline.destinations.http import (
    ClientOptions,
    HttpResult,
    classify_with_reset,
)
from activation_pipeline.destinations.outcomes import answer, http_metrics
from activation_pipeline.destinations.sendgrid.settings import SendGridConnection, SendGridDestination

MAX_BATCH = 1000
"""Contacts a batch holds (SendGrid takes up to 30,000 or 6 MB a request; smaller keeps answers prompt)."""
MAX_SEARCH = 100
RESERVED_FIELDS = frozenset(
    {
        "first_name", "last_name", "alternate_emails", "address_line_1", "address_line_2", "city",
        "state_province_region", "postal_code", "country", "phone_number", "whatsapp", "line", "facebook",
        "unique_name",
    }
)  # fmt: skip
CUSTOM_FIELD_ID = re.compile(r"^[a-z][0-9]+_[TDN]$")
CONTACT_FIELD = re.compile(r"^contacts\[(\d+)\]")


def to_contact(contact: ContactMessage) -> dict[str, Any]:
    """The contact object: email, reserved fields at the top, custom field ids under `custom_fields`."""
    body: dict[str, Any] = {"email": contact.email}
    custom: dict[str, Any] = {}
    for name, value in contact.properties().items():
        if name in RESERVED_FIELDS:
            body[name] = value
        elif CUSTOM_FIELD_ID.match(name):
            custom[name] = value
    if custom:
        body["custom_fields"] = custom
    return body


def _refused(body: Any) -> dict[int, str]:
    """Contacts a 400 names: index -> message."""
    found: dict[int, str] = {}
    errors = body.get("errors") if isinstance(body, Mapping) else None
    for error in errors or []:
        match = CONTACT_FIELD.match(str(error.get("field") or "")) if isinstance(error, Mapping) else None
        if match:
            found[int(match.group(1))] = str(error.get("message", "refused"))
    return found


class SendGridClient:
    """Upserts entering contacts into the audience's list and removes leaving ones from it."""

    max_batch = MAX_BATCH

    def __init__(self, destination: SendGridDestination, options: ClientOptions | None = None) -> None:
        options = options or ClientOptions()
        settings = destination.settings
        key = settings.api_key.resolve(f"destinations.{destination.id}.settings.api_key")
        self.sender = options.sender(
            settings.base_url,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            classify=classify_with_reset,
        )
        self.sleep = options.sleep
        self.confirm_jobs = settings.confirm_jobs
        self.job_wait = settings.job_wait_seconds

    def send(self, records: Sequence[OutboundRecord], context: BatchContext) -> BatchResult:
        """Upsert the entered into the list, remove the exited; one result per record."""
        list_id = SendGridConnection.model_validate(dict(context.connection_settings)).list_id
        results: dict[str, RecordResult] = {}
        latest: dict[str, ContactMessage] = {}
        for record in records:
            contact = read_contact(record)
            if contact is None:
                why = f"SendGrid takes identify calls only, not {record.operation.value}"
                results[record.record_id] = RecordResult(record.record_id, Outcome.FAILED, why)
            elif contact.email is None:
                why = "no valid email to upsert the contact by"
                results[record.record_id] = RecordResult(record.record_id, Outcome.FAILED, why)
            elif not contact.audience:
                why = "SendGrid lists hold audiences; a computed trait has no list to go to"
                results[record.record_id] = RecordResult(record.record_id, Outcome.FAILED, why)
            else:
                earlier = latest.get(contact.email)
                if earlier is not None:  # the same person twice: the later message says where they are
                    results[earlier.record.record_id] = RecordResult(
                        earlier.record.record_id, Outcome.ACKNOWLEDGED, "superseded in the same batch"
                    )
                latest[contact.email] = contact
        answers: list[HttpResult] = []
        counts: dict[str, float] = {"jobs": 0.0, "job_errored": 0.0, "not_in_sendgrid": 0.0}
        entering = [c for c in latest.values() if c.member]
        leaving = [c for c in latest.values() if not c.member]
        if entering:
            self._upsert(list_id, entering, results, answers, counts)
        for start in range(0, len(leaving), MAX_SEARCH):
            self._remove(list_id, leaving[start : start + MAX_SEARCH], results, answers, counts)
        return BatchResult([results[r.record_id] for r in records], {**http_metrics(answers), **counts})

    def _upsert(
        self,
        list_id: str,
        contacts: list[ContactMessage],
        results: dict[str, RecordResult],
        answers: list[HttpResult],
        counts: dict[str, float],
    ) -> None:
        pending = list(contacts)
        for attempt in range(
            3
        ):  # a 400 naming some contacts: fail those, send the rest again (twice at most)
            bodies = [to_contact(c) for c in pending]
            result = self.sender.request(
                "PUT", "/v3/marketing/contacts", json={"list_ids": [list_id], "contacts": bodies}
            )
            answers.append(result)
            refused = _refused(result.json()) if result.status == 400 else {}
            refused = {i: why for i, why in refused.items() if i < len(pending)}
            if refused and len(refused) < len(pending) and attempt < 2:
                for index, why in refused.items():
                    record_id = pending[index].record.record_id
                    results[record_id] = RecordResult(
                        record_id,
                        Outcome.FAILED,
                        f"refused by SendGrid: {why}",
                        bodies[index],
                        answer(result),
                    )
                pending = [c for i, c in enumerate(pending) if i not in refused]
                continue
            outcome, reason = result.verdict, result.reason
            response = answer(result)
            if outcome is Outcome.ACKNOWLEDGED and self.confirm_jobs:
                counts["jobs"] += 1
                outcome, reason, response = self._confirm(
                    str((result.json() or {}).get("job_id")), answers, counts
                )
            for contact, body in zip(pending, bodies, strict=True):
                record_id = contact.record.record_id
                sent = {"list_ids": [list_id], "contact": body}
                results[record_id] = RecordResult(record_id, outcome, reason, sent, response)
            return

    def _confirm(
        self, job_id: str, answers: list[HttpResult], counts: dict[str, float]
    ) -> tuple[Outcome, str, dict[str, Any]]:
        """Poll the upsert job until it ends (or the wait budget is spent: left for the next run)."""
        waited, pause = 0.0, 1.0
        while True:
            status = self.sender.request("GET", f"/v3/marketing/contacts/imports/{job_id}")
            answers.append(status)
            if status.verdict is not Outcome.ACKNOWLEDGED:
                return status.verdict, f"upsert job {job_id}: {status.reason}", answer(status)
            body = status.json() or {}
            state = str(body.get("status", ""))
            if state == "completed":
                counts["job_errored"] += float((body.get("results") or {}).get("errored_count") or 0)
                return Outcome.ACKNOWLEDGED, "", answer(status)
            if state in ("failed", "errored"):
                return Outcome.RETRY, f"upsert job {job_id} {state}", answer(status)
            if waited + pause > self.job_wait:
                return Outcome.RETRY, f"upsert job {job_id} still {state} after {waited:g} s", answer(status)
            self.sleep(pause)
            waited += pause
            pause = min(pause * 2, 10.0)

    def _remove(
        self,
        list_id: str,
        contacts: list[ContactMessage],
        results: dict[str, RecordResult],
        answers: list[HttpResult],
        counts: dict[str, float],
    ) -> None:
        emails = [str(c.email) for c in contacts]
        search = self.sender.post_json("/v3/marketing/contacts/search/emails", {"emails": emails})
        answers.append(search)
        found: dict[str, str] = {}
        if search.verdict is Outcome.ACKNOWLEDGED:
            for email, entry in ((search.json() or {}).get("result") or {}).items():
                contact = entry.get("contact") if isinstance(entry, Mapping) else None
                if isinstance(contact, Mapping) and contact.get("id"):
                    found[str(email).lower()] = str(contact["id"])
        elif search.status != 404:  # 404: none of them is a contact, so none is in the list
            for contact in contacts:
                record_id = contact.record.record_id
                results[record_id] = RecordResult(
                    record_id, search.verdict, f"contact search: {search.reason}", None, answer(search)
                )
            return
        for contact in contacts:
            if str(contact.email) not in found:
                counts["not_in_sendgrid"] += 1
                record_id = contact.record.record_id
                why = "no such contact in SendGrid: nothing to remove"
                results[record_id] = RecordResult(record_id, Outcome.ACKNOWLEDGED, why, None, answer(search))
        ids = [found[str(c.email)] for c in contacts if str(c.email) in found]
        if not ids:
            return
        removal = self.sender.request(
            "DELETE", f"/v3/marketing/lists/{list_id}/contacts", params={"contact_ids": ",".join(ids)}
        )
        answers.append(removal)
        for contact in contacts:
            if str(contact.email) in found:
                record_id = contact.record.record_id
                sent = {"list_id": list_id, "contact_id": found[str(contact.email)]}
                reason = "" if removal.verdict is Outcome.ACKNOWLEDGED else f"list removal: {removal.reason}"
                results[record_id] = RecordResult(record_id, removal.verdict, reason, sent, answer(removal))

    def close(self) -> None:
        """Close the HTTP session."""
        self.sender.close()
