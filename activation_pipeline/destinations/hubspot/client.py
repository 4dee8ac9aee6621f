"""HubSpot: contacts upserted by email, audiences kept as memberships of a MANUAL list.

`POST /crm/v3/objects/contacts/batch/upsert` with at most 100 inputs `{idProperty: "email", id, properties}`
(one per email: HubSpot refuses duplicate ids in one batch), then, for an audience,
`PUT /crm/v3/lists/{listId}/memberships/add-and-remove` with the contacts' record ids (`recordIdsToAdd` for
`true`, `recordIdsToRemove` for `false`). Auth: `Authorization: Bearer <private app token>`.

The seed's limit is "5 objects per second, 2 calls each": the destination's rate counts contacts (5 a second
by default, `rate_limit` to change it), so the client takes one token of the engine's limiter per contact it
upserts (the request's own token is the first) and one per membership call; at most two calls per contact. A 207 answer names
the inputs that failed (`errors[].context.ids`): those records fail, the rest go on. A 429 without
`Retry-After` waits `X-HubSpot-RateLimit-Interval-Milliseconds` (the rolling window).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import requests

from activation_pipeline.destinations.base import (
    BatchContext,
    BatchResult,
    OutboundRecord,
    Outcome,
    RecordResult,
)
from activation_pipeline.destinations.contacts import ContactMessage, read_contact
from activation_pipeline.destinations.http import ClientOptions, HttpResult, Verdict, default_classify
from activation_pipeline.destinations.hubspot.settings import HubSpotConnection, HubSpotDestination
from activation_pipeline.destinations.outcomes import answer, http_metrics

MAX_INPUTS = 100
UPSERT = "/crm/v3/objects/contacts/batch/upsert"


def hubspot_classify(response: requests.Response) -> Verdict:
    """Default classification; a 429 without Retry-After waits the rate-limit window HubSpot names."""
    verdict = default_classify(response)
    if verdict.kind is Outcome.RETRY and verdict.delay is None and response.status_code == 429:
        window = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds", "")
        if window.isdigit():
            return Verdict(Outcome.RETRY, int(window) / 1000, verdict.reason)
    return verdict


def property_value(value: Any) -> str:
    """A trait value as HubSpot stores properties: text (`;` between multiple checkbox values)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ";".join(property_value(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _failed_ids(body: Any) -> dict[str, str]:
    """Inputs a 207 answer says failed: id (email) -> message."""
    failed: dict[str, str] = {}
    errors = body.get("errors") if isinstance(body, Mapping) else None
    for error in errors or []:
        if not isinstance(error, Mapping):
            continue
        reason = f"{error.get('category', 'error')}: {error.get('message', '')}".strip()
        for value in (error.get("context") or {}).get("ids") or []:
            failed[str(value).lower()] = reason
    return failed


class HubSpotClient:
    """Upserts contacts (properties from traits) and keeps audience lists."""

    max_batch = MAX_INPUTS

    def __init__(self, destination: HubSpotDestination, options: ClientOptions | None = None) -> None:
        options = options or ClientOptions()
        settings = destination.settings
        token = settings.access_token.resolve(f"destinations.{destination.id}.settings.access_token")
        self.sender = options.sender(
            settings.base_url,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            classify=hubspot_classify,
        )
        self.limiter = options.rate_limiter

    def send(self, records: Sequence[OutboundRecord], context: BatchContext) -> BatchResult:
        """Upsert the batch's contacts, then change the audience list's membership."""
        list_id = HubSpotConnection.model_validate(dict(context.connection_settings)).list_id
        results: dict[str, RecordResult] = {}
        by_email: dict[str, list[ContactMessage]] = {}
        for record in records:
            contact = read_contact(record)
            if contact is None:
                why = f"HubSpot takes identify calls only, not {record.operation.value}"
                results[record.record_id] = RecordResult(record.record_id, Outcome.FAILED, why)
            elif contact.email is None:
                why = "no valid email to upsert the contact by"
                results[record.record_id] = RecordResult(record.record_id, Outcome.FAILED, why)
            elif contact.audience and list_id is None:
                why = "no list_id in the connection's settings to keep the audience in"
                results[record.record_id] = RecordResult(record.record_id, Outcome.FAILED, why)
            else:
                by_email.setdefault(contact.email, []).append(contact)
        answers: list[HttpResult] = []
        counts = {"contacts_upserted": 0.0, "contacts_refused": 0.0, "added": 0.0, "removed": 0.0}
        emails = list(by_email)
        for start in range(0, len(emails), MAX_INPUTS):
            chunk = emails[start : start + MAX_INPUTS]
            self._chunk(chunk, by_email, list_id, results, answers, counts)
        metrics = {**http_metrics(answers), **counts}
        return BatchResult([results[r.record_id] for r in records], metrics)

    def _chunk(
        self,
        emails: list[str],
        by_email: Mapping[str, list[ContactMessage]],
        list_id: str | None,
        results: dict[str, RecordResult],
        answers: list[HttpResult],
        counts: dict[str, float],
    ) -> None:
        inputs = []
        for email in emails:
            properties: dict[str, str] = {"email": email}  # so the answer's properties name the contact
            for contact in by_email[email]:  # later messages of the same person win
                properties.update({k: property_value(v) for k, v in contact.properties().items()})
            inputs.append({"idProperty": "email", "id": email, "properties": properties})
        sent = {email: item for email, item in zip(emails, inputs, strict=True)}
        if self.limiter is not None:
            for _ in range(len(inputs) - 1):  # the request takes the first contact's token itself
                self.limiter.acquire()
        upsert = self.sender.post_json(UPSERT, {"inputs": inputs})
        answers.append(upsert)

        def settle(email: str, outcome: Outcome, reason: str, result: HttpResult, extra: Any = None) -> None:
            """One outcome for every record of an email."""
            response = answer(result)
            for contact in by_email[email]:
                record_id = contact.record.record_id
                what = {"upsert": sent[email], **({"membership": extra} if extra else {})}
                results[record_id] = RecordResult(record_id, outcome, reason, what, response)

        if upsert.verdict is not Outcome.ACKNOWLEDGED:
            for email in emails:
                settle(email, upsert.verdict, upsert.reason, upsert)
            return
        body = upsert.json() or {}
        refused = _failed_ids(body)
        ids = {
            str((r.get("properties") or {}).get("email", "")).lower(): str(r.get("id"))
            for r in body.get("results") or []
            if isinstance(r, Mapping)
        }
        members: dict[str, bool] = {}
        for email in emails:
            if email in refused or email not in ids:
                counts["contacts_refused"] += 1
                settle(email, Outcome.FAILED, refused.get(email, "HubSpot returned no record for it"), upsert)
                continue
            counts["contacts_upserted"] += 1
            audience = [c for c in by_email[email] if c.audience]
            if not audience:
                settle(email, Outcome.ACKNOWLEDGED, "", upsert)
            else:
                members[email] = audience[-1].member
        if not members or list_id is None:
            return
        change = {
            "recordIdsToAdd": [ids[e] for e, inside in members.items() if inside],
            "recordIdsToRemove": [ids[e] for e, inside in members.items() if not inside],
        }
        membership = self.sender.request(
            "PUT", f"/crm/v3/lists/{list_id}/memberships/add-and-remove", json=change
        )
        answers.append(membership)
        if membership.verdict is not Outcome.ACKNOWLEDGED:
            for email in members:
                settle(email, membership.verdict, f"list membership: {membership.reason}", membership)
            return
        missing = {str(i) for i in (membership.json() or {}).get("recordIdsMissing") or []}
        for email, inside in members.items():
            what = {"list_id": list_id, "record_id": ids[email], "member": inside}
            if ids[email] in missing:
                settle(
                    email, Outcome.FAILED, "HubSpot did not find the contact for the list", membership, what
                )
            else:
                counts["added" if inside else "removed"] += 1
                settle(email, Outcome.ACKNOWLEDGED, "", membership, what)

    def close(self) -> None:
        """Close the HTTP session."""
        self.sender.close()
