"""Iterable: identify / group -> `/api/users/update` (bulk: `/api/users/bulkUpdate`), track ->
`/api/events/track` (bulk: `/api/events/trackBulk`), header `Api-Key`.

Users are named by `userId` (the message's) and/or `email` (from traits / context.traits); `preferUserId`
lets a userId-only user be created. Bulk answers list `invalidEmails` / `invalidUserIds` (and
`failedUpdates.*`): those records fail, the rest are acknowledged.
"""

from __future__ import annotations

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
from activation_pipeline.destinations.http import ClientOptions, HttpResult
from activation_pipeline.destinations.iterable.settings import IterableDestination
from activation_pipeline.destinations.outcomes import answer, http_metrics, same_for_all

BULK_LIMIT = 1000
SINGLE_BATCH = 100
"""Records a batch holds when each goes in its own request (bulk: false)."""
IDENTITY_FIELDS = ("email", "userId")


def _identity(message: Mapping[str, Any], traits: Mapping[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    email = traits.get("email") or (message.get("context", {}).get("traits") or {}).get("email")
    if email:
        found["email"] = email
    if message.get("userId"):
        found["userId"] = message["userId"]
    return found


def to_user(message: Mapping[str, Any]) -> dict[str, Any]:
    """The users/update body of an identify or group message."""
    traits = dict(message.get("traits") or {})
    data = {k: v for k, v in traits.items() if k not in IDENTITY_FIELDS}
    if message.get("type") == "group":
        data["groupId"] = message.get("groupId")
    return {
        **_identity(message, traits),
        "dataFields": data,
        "preferUserId": True,
        "mergeNestedObjects": True,
    }


def unix_seconds(timestamp: str) -> int:
    """An ISO-8601 timestamp as Unix seconds (Iterable's createdAt)."""
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp())


def to_event(message: Mapping[str, Any]) -> dict[str, Any]:
    """The events/track body of a track message (the messageId becomes the event `id`, for dedup)."""
    return {
        **_identity(message, {}),
        "eventName": message["event"],
        "id": message["messageId"],
        "createdAt": unix_seconds(message["timestamp"]),
        "dataFields": dict(message.get("properties") or {}),
    }


def _rejected(body: Any) -> tuple[set[str], set[str]]:
    """Emails and userIds a bulk answer says failed."""
    emails: set[str] = set()
    user_ids: set[str] = set()
    if not isinstance(body, Mapping):
        return emails, user_ids
    sources: list[Mapping[str, Any]] = [body]
    if isinstance(body.get("failedUpdates"), Mapping):
        sources.append(body["failedUpdates"])
    for source in sources:
        for key, values in source.items():
            if not isinstance(values, list):
                continue
            if key.endswith("Emails"):
                emails.update(str(v) for v in values)
            elif key.endswith("UserIds"):
                user_ids.update(str(v) for v in values)
    return emails, user_ids


class IterableClient:
    """Sends identify / group as user updates and track as events, one by one or in bulk."""

    def __init__(self, destination: IterableDestination, options: ClientOptions | None = None) -> None:
        options = options or ClientOptions()
        settings = destination.settings
        key = settings.api_key.resolve(f"destinations.{destination.id}.settings.api_key")
        self.bulk = settings.bulk
        self.max_batch = BULK_LIMIT if self.bulk else SINGLE_BATCH
        self.sender = options.sender(settings.base_url, headers={"Api-Key": key})

    def send(self, records: Sequence[OutboundRecord], context: BatchContext) -> BatchResult:
        """Deliver users and events; records that name no user fail without a request."""
        del context
        results: list[RecordResult] = []
        answers: list[HttpResult] = []
        users: list[tuple[OutboundRecord, dict[str, Any]]] = []
        events: list[tuple[OutboundRecord, dict[str, Any]]] = []
        for record in records:
            item = (
                to_event(record.payload) if record.operation is Operation.TRACK else to_user(record.payload)
            )
            if not any(k in item for k in IDENTITY_FIELDS):
                results.append(RecordResult(record.record_id, Outcome.FAILED, "no email or userId"))
            else:
                (events if record.operation is Operation.TRACK else users).append((record, item))
        if self.bulk:
            for path, array, items in (
                ("/api/users/bulkUpdate", "users", users),
                ("/api/events/trackBulk", "events", events),
            ):
                for start in range(0, len(items), BULK_LIMIT):
                    chunk = items[start : start + BULK_LIMIT]
                    result = self.sender.post_json(path, {array: [item for _, item in chunk]})
                    answers.append(result)
                    results += self._bulk_results(chunk, result)
        else:
            for path, items in (("/api/users/update", users), ("/api/events/track", events)):
                for record, item in items:
                    result = self.sender.post_json(path, item)
                    answers.append(result)
                    results += same_for_all([record], result, {record.record_id: item})
        return BatchResult(results, http_metrics(answers))

    def _bulk_results(
        self, chunk: list[tuple[OutboundRecord, dict[str, Any]]], result: HttpResult
    ) -> list[RecordResult]:
        sent = {record.record_id: item for record, item in chunk}
        if result.verdict is not Outcome.ACKNOWLEDGED:
            return same_for_all([r for r, _ in chunk], result, sent)
        bad_emails, bad_user_ids = _rejected(result.json())
        response = answer(result)
        out = []
        for record, item in chunk:
            reasons = []
            if item.get("email") in bad_emails:
                reasons.append("email rejected by Iterable")
            if item.get("userId") in bad_user_ids:
                reasons.append("userId rejected by Iterable")
            outcome = Outcome.FAILED if reasons else Outcome.ACKNOWLEDGED
            out.append(RecordResult(record.record_id, outcome, "; ".join(reasons), item, response))
        return out

    def close(self) -> None:
        """Close the HTTP session."""
        self.sender.close()
