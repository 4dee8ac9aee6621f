"""Salesforce Marketing Cloud (events): identify -> the contact's row in the contact data extension
(primary key: the subscriber key, i.e. the userId, else the email; every trait a column); track -> a row in
the event data extension (primary key `EventId` = the messageId, so a resend overwrites rather than doubles;
`SubscriberKey`, `EventName`, `EventTime` and the properties as columns). See `api.py` for auth and rows.
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
from activation_pipeline.destinations.contacts import email_of
from activation_pipeline.destinations.http import ClientOptions
from activation_pipeline.destinations.salesforce_marketing_cloud.api import (
    MAX_ROWS,
    MarketingCloudApi,
    Row,
    cell,
)
from activation_pipeline.destinations.salesforce_marketing_cloud.settings import MarketingCloudDestination

MAX_BATCH = MAX_ROWS * 2
"""Identifies and tracks of one batch go to two data extensions: up to 50 rows a call to each."""


def subscriber_key(message: Mapping[str, Any]) -> str | None:
    """The subscriber key of a message's person: the userId, else the email."""
    if message.get("userId"):
        return str(message["userId"])
    return email_of(message)


class MarketingCloudClient:
    """Upserts contact rows (identify) and event rows (track) into data extensions."""

    max_batch = MAX_BATCH

    def __init__(self, destination: MarketingCloudDestination, options: ClientOptions | None = None) -> None:
        options = options or ClientOptions()
        settings = destination.settings
        self.api = MarketingCloudApi(settings, f"destinations.{destination.id}.settings", options)
        self.contact_key = settings.contact_data_extension_key
        self.event_key = settings.event_data_extension_key
        self.subscriber_column = settings.subscriber_key_column

    def _row(self, record: OutboundRecord, key: str) -> Row:
        message = record.payload
        if record.operation is Operation.TRACK:
            values = {k: cell(v) for k, v in (message.get("properties") or {}).items()}
            values.update(
                {
                    self.subscriber_column: key,
                    "EventName": message["event"],
                    "EventTime": message["timestamp"],
                }
            )
            return {"keys": {"EventId": message["messageId"]}, "values": values}
        values = {k: cell(v) for k, v in (message.get("traits") or {}).items()}
        return {"keys": {self.subscriber_column: key}, "values": values}

    def send(self, records: Sequence[OutboundRecord], context: BatchContext) -> BatchResult:
        """Contact rows, then event rows; rows Marketing Cloud refuses fail their record only."""
        del context
        counts: dict[str, float] = {"http_requests": 0.0, "http_retries": 0.0, "token_refreshes": 0.0}
        results: list[RecordResult] = []
        groups: dict[str, list[tuple[OutboundRecord, Row]]] = {}
        for record in records:
            target = self.event_key if record.operation is Operation.TRACK else self.contact_key
            key = subscriber_key(record.payload)
            if record.operation is Operation.GROUP:
                reason = "Marketing Cloud data extensions take identify and track calls, not group"
            elif target is None:
                reason = f"no data extension is configured for {record.operation} calls"
            elif key is None:
                reason = "no userId or email for the subscriber key"
            else:
                groups.setdefault(target, []).append((record, self._row(record, key)))
                continue
            results.append(RecordResult(record.record_id, Outcome.FAILED, reason))
        for target, items in groups.items():
            outcomes = self.api.upsert(target, [row for _, row in items], counts)
            for (record, row), (outcome, reason, response) in zip(items, outcomes, strict=True):
                sent = {"data_extension": target, **row}
                results.append(RecordResult(record.record_id, outcome, reason, sent, response))
        return BatchResult(results, counts)

    def close(self) -> None:
        """Close the HTTP sessions."""
        self.api.close()
