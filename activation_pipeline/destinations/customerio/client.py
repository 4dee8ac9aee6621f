"""Customer.io Track API v2: identify (attributes) and events through `POST /api/v2/batch`, Basic auth
(site id : Track API key).

Each message becomes one batch action: identify -> `{"type": "person", "action": "identify", "identifiers":
{"id"|"email": ...}, "attributes": {...}}`; track -> `{"type": "person", "action": "event", "name", "id",
"timestamp", "attributes"}` (the event `id` is a ULID derived from the messageId, so a resend deduplicates);
group (account traits) -> `{"type": "object", "action": "identify", "identifiers": {"object_type_id",
"object_id"}, "attributes", "cio_relationships"}`. A request carries at most 500 KB and an action at most
32 KB: larger actions fail without a request. An HTTP 207 lists refused actions by `batch_index`; those
records fail, the rest are acknowledged.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
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
from activation_pipeline.destinations.customerio.settings import CustomerioDestination
from activation_pipeline.destinations.http import ClientOptions, HttpResult
from activation_pipeline.destinations.outcomes import answer, http_metrics, same_for_all

MAX_REQUEST_BYTES = 500 * 1024
MAX_ACTION_BYTES = 32 * 1024
MAX_BATCH = 100
"""Records handed to the client at once; they go in as few 500 KB requests as fit (one, for the usual size)."""
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ENVELOPE = len(b'{"batch":[]}')


def unix_seconds(timestamp: str) -> int:
    """An ISO-8601 timestamp as Unix seconds."""
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp())


def event_ulid(message_id: str, timestamp: str) -> str:
    """A ULID for an event: the time in milliseconds and 80 bits of the messageId's SHA-256 (deterministic)."""
    millis = int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)
    entropy = int.from_bytes(hashlib.sha256(message_id.encode()).digest()[:10], "big")
    value = (millis << 80) | entropy
    return "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def person(message: Mapping[str, Any]) -> dict[str, str] | None:
    """Customer.io identifiers (exactly one): the userId as `id`, else `email`; None when neither."""
    if message.get("userId"):
        return {"id": str(message["userId"])}
    email = email_of(message)
    return {"email": email} if email else None


def to_action(record: OutboundRecord, object_type_id: str) -> dict[str, Any] | None:
    """The batch action of one message, or None when it names nobody Customer.io can key."""
    message = record.payload
    who = person(message)
    if record.operation is Operation.GROUP:
        action: dict[str, Any] = {
            "type": "object",
            "action": "identify",
            "identifiers": {"object_type_id": object_type_id, "object_id": str(message["groupId"])},
            "attributes": dict(message.get("traits") or {}),
        }
        if who is not None:
            action["cio_relationships"] = [{"identifiers": who}]
        return action
    if who is None:
        return None
    if record.operation is Operation.TRACK:
        return {
            "type": "person",
            "action": "event",
            "identifiers": who,
            "name": message["event"],
            "id": event_ulid(message["messageId"], message["timestamp"]),
            "timestamp": unix_seconds(message["timestamp"]),
            "attributes": dict(message.get("properties") or {}),
        }
    attributes = dict(message.get("traits") or {})
    if "id" in who:
        attributes.pop("id", None)  # the identifier, not an attribute
    return {"type": "person", "action": "identify", "identifiers": who, "attributes": attributes}


def size_of(value: Any) -> int:
    """Bytes of a value as compact JSON (what goes on the wire)."""
    return len(json.dumps(value, separators=(",", ":")).encode())


def _refused(body: Any) -> dict[int, str]:
    """Refused actions of a 207 answer by batch index, with the reason."""
    found: dict[int, str] = {}
    for error in (body or {}).get("errors") or [] if isinstance(body, Mapping) else []:
        if isinstance(error, Mapping) and isinstance(error.get("batch_index"), int):
            parts = [str(error.get(k)) for k in ("reason", "field", "message") if error.get(k)]
            found[error["batch_index"]] = ": ".join(parts) or "refused"
    return found


class CustomerioClient:
    """Sends identify, track and group messages as Track API v2 batch actions."""

    max_batch = MAX_BATCH

    def __init__(self, destination: CustomerioDestination, options: ClientOptions | None = None) -> None:
        options = options or ClientOptions()
        settings = destination.settings
        key = settings.api_key.resolve(f"destinations.{destination.id}.settings.api_key")
        basic = base64.b64encode(f"{settings.site_id}:{key}".encode()).decode()
        self.object_type_id = settings.object_type_id
        self.sender = options.sender(
            settings.base_url,
            headers={"Authorization": f"Basic {basic}", "Content-Type": "application/json"},
        )

    def send(self, records: Sequence[OutboundRecord], context: BatchContext) -> BatchResult:
        """Cut the records into requests of at most 500 KB; refused actions fail their record only."""
        del context
        results: list[RecordResult] = []
        answers: list[HttpResult] = []
        chunk: list[tuple[OutboundRecord, dict[str, Any]]] = []
        size = ENVELOPE
        for record in records:
            action = to_action(record, self.object_type_id)
            if action is None:
                results.append(RecordResult(record.record_id, Outcome.FAILED, "no userId or email"))
                continue
            action_size = size_of(action)
            if action_size > MAX_ACTION_BYTES:
                reason = f"action of {action_size} bytes is over Customer.io's 32 KB limit"
                results.append(RecordResult(record.record_id, Outcome.FAILED, reason, {"bytes": action_size}))
                continue
            if chunk and size + action_size + 1 > MAX_REQUEST_BYTES:
                results += self._post(chunk, answers)
                chunk, size = [], ENVELOPE
            chunk.append((record, action))
            size += action_size + (1 if len(chunk) > 1 else 0)
        if chunk:
            results += self._post(chunk, answers)
        return BatchResult(results, http_metrics(answers))

    def _post(
        self, chunk: list[tuple[OutboundRecord, dict[str, Any]]], answers: list[HttpResult]
    ) -> list[RecordResult]:
        result = self.sender.post_json("/api/v2/batch", {"batch": [action for _, action in chunk]})
        answers.append(result)
        sent = {record.record_id: action for record, action in chunk}
        if result.verdict is not Outcome.ACKNOWLEDGED:
            return same_for_all([r for r, _ in chunk], result, sent)
        refused = _refused(result.json()) if result.status == 207 else {}
        response = answer(result)
        return [
            RecordResult(
                record.record_id,
                Outcome.FAILED if index in refused else Outcome.ACKNOWLEDGED,
                refused.get(index, ""),
                action,
                response,
            )
            for index, (record, action) in enumerate(chunk)
        ]

    def close(self) -> None:
        """Close the HTTP session."""
        self.sender.close()
