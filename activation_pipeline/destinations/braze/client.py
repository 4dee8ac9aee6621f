"""Braze: `POST {rest_endpoint}/users/track` with attributes (identify, group) and events (track).

At most 75 objects a request (attributes + events combined); each object names its user by `external_id`
(the message's userId), else a `user_alias` (anonymousId), else `email`. Braze answers 201 with non-fatal
per-item `errors` (`input_array`, `index`): those records fail, the rest are acknowledged. A 429 carries
`X-RateLimit-Reset` (epoch seconds), used as the wait when there is no `Retry-After`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from activation_pipeline.destinations.base import (
    BatchContext,
    BatchResult,
    Operation,
    OutboundRecord,
    Outcome,
    RecordResult,
)
from activation_pipeline.destinations.braze.settings import BrazeDestination
from activation_pipeline.destinations.http import (
    ClientOptions,
    classify_with_reset,
)
from activation_pipeline.destinations.outcomes import answer, http_metrics, same_for_all

MAX_OBJECTS = 75
ALIAS_LABEL = "anonymous_id"


def user_reference(message: Mapping[str, Any]) -> dict[str, Any]:
    """How a Braze object names its user: external_id, else user_alias, else email."""
    if message.get("userId"):
        return {"external_id": message["userId"]}
    if message.get("anonymousId"):
        return {"user_alias": {"alias_name": message["anonymousId"], "alias_label": ALIAS_LABEL}}
    traits = message.get("traits") or message.get("context", {}).get("traits") or {}
    return {"email": traits["email"]} if traits.get("email") else {}


def to_braze(record: OutboundRecord, update_existing_only: bool) -> tuple[str, dict[str, Any]]:
    """The Braze array (`attributes` or `events`) and object for one message."""
    message = record.payload
    reference = user_reference(message)
    if record.operation is Operation.TRACK:
        event = {
            **reference,
            "name": message["event"],
            "time": message["timestamp"],
            "properties": dict(message.get("properties") or {}),
        }
        return "events", event
    traits = dict(message.get("traits") or {})
    if record.operation is Operation.GROUP:
        traits = {**(message.get("context", {}).get("traits") or {}), **traits}
    return "attributes", {**reference, **traits, "_update_existing_only": update_existing_only}


class BrazeClient:
    """Sends identify / group as attributes and track as events to Braze's /users/track."""

    max_batch = MAX_OBJECTS

    def __init__(self, destination: BrazeDestination, options: ClientOptions | None = None) -> None:
        options = options or ClientOptions()
        settings = destination.settings
        key = settings.api_key.resolve(f"destinations.{destination.id}.settings.api_key")
        self.update_existing_only = settings.update_existing_only
        self.sender = options.sender(
            settings.base_url,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            classify=classify_with_reset,
        )

    def send(self, records: Sequence[OutboundRecord], context: BatchContext) -> BatchResult:
        """One request per 75 objects; per-item errors fail their record only."""
        del context
        results: list[RecordResult] = []
        answers = []
        for start in range(0, len(records), MAX_OBJECTS):
            chunk = records[start : start + MAX_OBJECTS]
            body: dict[str, list[dict[str, Any]]] = {}
            placed: dict[tuple[str, int], OutboundRecord] = {}
            sent: dict[str, Any] = {}
            unaddressed: list[OutboundRecord] = []
            for record in chunk:
                array, item = to_braze(record, self.update_existing_only)
                if not user_reference(record.payload):
                    unaddressed.append(record)
                    continue
                placed[(array, len(body.setdefault(array, [])))] = record
                body[array].append(item)
                sent[record.record_id] = {array: item}
            results += [
                RecordResult(
                    r.record_id, Outcome.FAILED, "no external_id, user alias or email to address the user"
                )
                for r in unaddressed
            ]
            if not body:
                continue
            result = self.sender.post_json("/users/track", body)
            answers.append(result)
            if result.verdict is not Outcome.ACKNOWLEDGED:
                results += same_for_all(list(placed.values()), result, sent)
                continue
            errors = {
                (e.get("input_array"), e.get("index")): str(e.get("type", "error"))
                for e in (result.json() or {}).get("errors", [])
                if isinstance(e, Mapping)
            }
            response = answer(result)
            for position, record in placed.items():
                error = errors.get(position)
                outcome = Outcome.FAILED if error else Outcome.ACKNOWLEDGED
                results.append(
                    RecordResult(record.record_id, outcome, error or "", sent[record.record_id], response)
                )
        return BatchResult(results, http_metrics(answers))

    def close(self) -> None:
        """Close the HTTP session."""
        self.sender.close()
