"""Intercom REST API (version 2.x, `Authorization: Bearer`, `Intercom-Version` header).

identify -> `POST /contacts` (`role: user`, `external_id` = the userId, `email`); when Intercom answers 409
`conflict` ("A contact matching those details already exists with id=...": same external id, else same email) the
named contact is updated with `PUT /contacts/{id}`. An exit in tag mode finds the contact with `POST
/contacts/search` (external id, else email) instead, so nobody is created only to be untagged. Email, phone and name
are contact fields; every other trait is a custom attribute, which Intercom accepts only once it exists as a
data attribute: missing ones are created first (`POST /data_attributes`, typed from the value).
Audiences (connection setting `audience_as`): `tag` -> the audience's tag (`POST /tags`, made once) is
attached (`POST /contacts/{id}/tags`) on entry and detached (`DELETE /contacts/{id}/tags/{tag_id}`) on exit,
and the boolean is not written as an attribute; `attribute` -> the boolean custom attribute.
track -> `POST /events` (`event_name`, `created_at`, `user_id` or `email`, at most 10 `metadata` keys); Intercom
records events only for existing contacts (404 otherwise), so a batch's identifies go before its events, and an
event answered 404 (its identify went with another sender, or the connection sends no identify) creates the
contact and is sent again.
A 429 carries `X-RateLimit-Reset` (epoch seconds), used as the wait when there is no `Retry-After`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from activation_pipeline.destinations.base import (
    BatchContext,
    BatchResult,
    Operation,
    OutboundRecord,
    Outcome,
    RecordResult,
)
from activation_pipeline.destinations.contacts import email_of
from activation_pipeline.destinations.http import (
    ClientOptions,
    HttpResult,
    classify_with_reset,
)
from activation_pipeline.destinations.intercom.settings import IntercomConnection, IntercomDestination
from activation_pipeline.destinations.outcomes import answer

MAX_BATCH = 50
MAX_METADATA_KEYS = 10
CONTACT_FIELDS = ("email", "phone", "name")
CONFLICT_ID = re.compile(r"already exists with id=([0-9a-zA-Z]+)")


def data_type(value: Any) -> str:
    """Intercom's data type for a custom attribute holding `value`; numbers are `float`, which also takes whole
    numbers (an `integer` attribute made from a first value of 3 would refuse a later 2.5)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "float"
    return "string"


def attribute_value(value: Any) -> Any:
    """A value Intercom stores in a custom attribute (lists and objects as text)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def unix_seconds(timestamp: str) -> int:
    """An ISO-8601 timestamp as Unix seconds (Intercom's created_at)."""
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp())


def conflicting_id(result: HttpResult) -> str | None:
    """The id of the existing contact a 409 `conflict` answer names, else None."""
    if result.status != 409:
        return None
    for error in (result.json() or {}).get("errors") or []:
        found = CONFLICT_ID.search(str(error.get("message", ""))) if isinstance(error, Mapping) else None
        if found:
            return found.group(1)
    return None


@dataclass(frozen=True)
class _Membership:
    """The audience change an identify carries in tag mode: the tag and whether the member is in."""

    tag: str
    member: bool


class IntercomClient:
    """Creates or updates contacts, tags audience members and records events in Intercom."""

    max_batch = MAX_BATCH

    def __init__(self, destination: IntercomDestination, options: ClientOptions | None = None) -> None:
        options = options or ClientOptions()
        settings = destination.settings
        token = settings.access_token.resolve(f"destinations.{destination.id}.settings.access_token")
        self.sender = options.sender(
            settings.base_url,
            headers={
                "Authorization": f"Bearer {token}",
                "Intercom-Version": settings.api_version,
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
            classify=classify_with_reset,
        )
        self._attributes: set[str] | None = None
        self._tags: dict[str, str] = {}
        # The engine shares a batch among several senders: data attributes and tags are made once, under a lock.
        self._setup_lock = threading.Lock()

    # ------------------------------------------------------------------ sending
    def send(self, records: Sequence[OutboundRecord], context: BatchContext) -> BatchResult:
        """Identifies first (contacts, attributes, tags), then events; one result per record."""
        setting = IntercomConnection.model_validate(dict(context.connection_settings))
        counts: dict[str, float] = dict.fromkeys(
            ("http_requests", "http_retries", "contacts_created", "contacts_updated", "tags_added",
             "tags_removed", "events"),
            0.0,
        )  # fmt: skip
        results: list[RecordResult] = []
        ordered = [r for r in records if r.operation is not Operation.TRACK]
        ordered += [r for r in records if r.operation is Operation.TRACK]
        for record in ordered:
            if record.operation is Operation.TRACK:
                results.append(self._event(record, counts))
            elif record.operation is Operation.IDENTIFY:
                results.append(self._identify(record, setting, counts))
            else:
                results.append(
                    RecordResult(
                        record.record_id, Outcome.FAILED, f"Intercom takes no {record.operation} calls"
                    )
                )
        return BatchResult(results, counts)

    def _call(self, method: str, path: str, counts: dict[str, float], body: Any = None) -> HttpResult:
        result = self.sender.request(method, path, json=body)
        counts["http_requests"] += result.attempts
        counts["http_retries"] += result.retries
        return result

    @staticmethod
    def _failed(record: OutboundRecord, result: HttpResult, step: str, sent: Any) -> RecordResult:
        outcome = Outcome.FAILED if result.verdict is Outcome.FAILED else Outcome.RETRY
        return RecordResult(record.record_id, outcome, f"{step}: {result.reason}", sent, answer(result))

    # ------------------------------------------------------------------ contacts
    def _identify(
        self, record: OutboundRecord, setting: IntercomConnection, counts: dict[str, float]
    ) -> RecordResult:
        message = record.payload
        traits = dict(message.get("traits") or {})
        personas = (message.get("context") or {}).get("personas") or {}
        membership: _Membership | None = None
        key = personas.get("computation_key")
        if setting.audience_as == "tag" and personas.get("computation_class") == "audience" and key in traits:
            membership = _Membership(setting.tag_name or str(key), bool(traits.pop(key)))
        user_id = message.get("userId")
        email = email_of(message)
        if not user_id and not email:
            return RecordResult(record.record_id, Outcome.FAILED, "no userId or email to find the contact by")
        fields: dict[str, Any] = {k: traits.pop(k) for k in CONTACT_FIELDS if traits.get(k) is not None}
        if email:
            fields["email"] = email
        custom = {k: attribute_value(v) for k, v in traits.items() if k != "userId"}
        body: dict[str, Any] = {**fields, "custom_attributes": custom}
        if user_id:
            body["external_id"] = str(user_id)
        failed = self._ensure_attributes(custom, counts)
        if failed is not None:
            return self._failed(record, failed, "creating data attributes", body)
        if membership is not None and not membership.member:
            # An exit: only a contact Intercom already has loses the tag; nobody is created for it.
            found, failed = self._find(user_id, email, counts)
            if failed is not None:
                return self._failed(record, failed, "contact search", body)
            if found is None:
                return RecordResult(
                    record.record_id, Outcome.ACKNOWLEDGED, "no such contact: nothing to untag", body
                )
            result = self._call("PUT", f"/contacts/{found}", counts, body)
            counts["contacts_updated"] += result.verdict is Outcome.ACKNOWLEDGED
        else:
            # Create, and on 409 `conflict` update the contact Intercom names (the one with this external id,
            # else this email): one call for a new contact, two for a known one.
            result = self._call("POST", "/contacts", counts, {"role": "user", **body})
            counts["contacts_created"] += result.verdict is Outcome.ACKNOWLEDGED
            existing = conflicting_id(result)
            if existing is not None:
                result = self._call("PUT", f"/contacts/{existing}", counts, body)
                counts["contacts_updated"] += result.verdict is Outcome.ACKNOWLEDGED
        if result.verdict is not Outcome.ACKNOWLEDGED:
            return self._failed(record, result, "contact upsert", body)
        contact_id = str((result.json() or {}).get("id", ""))
        sent: dict[str, Any] = {"contact": body}
        if membership is not None:
            tagged = self._tag(contact_id, membership, counts)
            sent["tag"] = {"name": membership.tag, "attached": membership.member}
            if tagged is not None:
                return self._failed(record, tagged, "tagging", sent)
        return RecordResult(record.record_id, Outcome.ACKNOWLEDGED, "", sent, answer(result))

    def _find(
        self, user_id: Any, email: str | None, counts: dict[str, float]
    ) -> tuple[str | None, HttpResult | None]:
        """The id of the contact with this external id, else this email (None: none); or the failed search."""
        for field, value in (("external_id", user_id), ("email", email)):
            if not value:
                continue
            query = {"field": field, "operator": "=", "value": str(value)}
            found = self._call(
                "POST", "/contacts/search", counts, {"query": query, "pagination": {"per_page": 1}}
            )
            if found.verdict is not Outcome.ACKNOWLEDGED:
                return None, found
            data = (found.json() or {}).get("data") or []
            if data:
                return str(data[0]["id"]), None
        return None, None

    def _ensure_attributes(self, custom: Mapping[str, Any], counts: dict[str, float]) -> HttpResult | None:
        """Create the contact data attributes a body uses that Intercom does not know yet."""
        if not custom:
            return None
        with self._setup_lock:
            return self._ensure_attributes_locked(custom, counts)

    def _ensure_attributes_locked(
        self, custom: Mapping[str, Any], counts: dict[str, float]
    ) -> HttpResult | None:
        if self._attributes is None:
            listed = self._call("GET", "/data_attributes?model=contact", counts)
            if listed.verdict is not Outcome.ACKNOWLEDGED:
                return listed
            self._attributes = {
                str(a.get("name")) for a in (listed.json() or {}).get("data") or [] if isinstance(a, Mapping)
            }
        for name, value in custom.items():
            if name in self._attributes:
                continue
            kind = data_type(value if value is not None else "")
            made = self._call(
                "POST", "/data_attributes", counts, {"name": name, "model": "contact", "data_type": kind}
            )
            if made.verdict is not Outcome.ACKNOWLEDGED:
                return made
            self._attributes.add(name)
        return None

    def _tag(self, contact_id: str, membership: _Membership, counts: dict[str, float]) -> HttpResult | None:
        """Attach or detach the audience's tag; None when the contact is as asked."""
        with self._setup_lock:
            tag_id = self._tags.get(membership.tag)
            if tag_id is None:
                made = self._call("POST", "/tags", counts, {"name": membership.tag})
                if made.verdict is not Outcome.ACKNOWLEDGED:
                    return made
                tag_id = self._tags[membership.tag] = str((made.json() or {}).get("id"))
        if membership.member:
            result = self._call("POST", f"/contacts/{contact_id}/tags", counts, {"id": tag_id})
            counts["tags_added"] += result.verdict is Outcome.ACKNOWLEDGED
        else:
            result = self._call("DELETE", f"/contacts/{contact_id}/tags/{tag_id}", counts)
            if result.status == 404:
                return None  # the tag was not on the contact: the membership is as asked
            counts["tags_removed"] += result.verdict is Outcome.ACKNOWLEDGED
        return None if result.verdict is Outcome.ACKNOWLEDGED else result

    # ------------------------------------------------------------------ events
    def _event(self, record: OutboundRecord, counts: dict[str, float]) -> RecordResult:
        message = record.payload
        metadata = {k: attribute_value(v) for k, v in (message.get("properties") or {}).items()}
        body: dict[str, Any] = {
            "event_name": message["event"],
            "created_at": unix_seconds(message["timestamp"]),
        }
        if message.get("userId"):
            body["user_id"] = str(message["userId"])
        elif email_of(message):
            body["email"] = email_of(message)
        else:
            return RecordResult(record.record_id, Outcome.FAILED, "no userId or email for the event")
        if len(metadata) > MAX_METADATA_KEYS:
            reason = (
                f"{len(metadata)} event properties; Intercom takes at most {MAX_METADATA_KEYS} metadata keys"
            )
            return RecordResult(record.record_id, Outcome.FAILED, reason, body)
        if metadata:
            body["metadata"] = metadata
        result = self._call("POST", "/events", counts, body)
        if result.status == 404:
            # Intercom records events only for existing contacts: make the user (a 409 means another sender
            # just did), then send the event once more.
            person = {"role": "user", **({"external_id": body["user_id"]} if "user_id" in body else {})}
            if "email" in body or email_of(message):
                person["email"] = body.get("email") or email_of(message)
            made = self._call("POST", "/contacts", counts, person)
            if made.verdict is Outcome.ACKNOWLEDGED or made.status == 409:
                counts["contacts_created"] += made.verdict is Outcome.ACKNOWLEDGED
                result = self._call("POST", "/events", counts, body)
        if result.verdict is not Outcome.ACKNOWLEDGED:
            return self._failed(record, result, "event", body)
        counts["events"] += 1
        return RecordResult(record.record_id, Outcome.ACKNOWLEDGED, "", body, answer(result))

    def close(self) -> None:
        """Close the HTTP session."""
        self.sender.close()
