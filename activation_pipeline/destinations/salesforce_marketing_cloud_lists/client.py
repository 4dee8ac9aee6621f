"""Salesforce Marketing Cloud Lists: an audience's membership kept in a data extension, one row per member
keyed by the subscriber key (the user id, else the email), with a boolean member column set on entry and
cleared on exit (the REST API upserts rows but has no row delete; sends filter on the column), the email
and the enrichment traits as columns. Auth and rows: `salesforce_marketing_cloud/api.py`.
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
from activation_pipeline.destinations.http import ClientOptions
from activation_pipeline.destinations.normalise import normalise_email
from activation_pipeline.destinations.salesforce_marketing_cloud.api import (
    MAX_ROWS,
    MarketingCloudApi,
    Row,
    cell,
)
from activation_pipeline.destinations.salesforce_marketing_cloud_lists.settings import (
    MarketingCloudListConnection,
    MarketingCloudListDestination,
)


def _last(identifiers: Mapping[str, Any], name: str) -> str | None:
    """The most recently added value of an identifier (values come oldest first)."""
    values = identifiers.get(name)
    if isinstance(values, (list, tuple)):
        values = [v for v in values if v not in (None, "")]
        return str(values[-1]) if values else None
    return str(values) if values not in (None, "") else None


class MarketingCloudListClient:
    """Upserts membership rows (member true on add, false on remove) into the connection's data extension."""

    max_batch = MAX_ROWS * 4

    def __init__(
        self, destination: MarketingCloudListDestination, options: ClientOptions | None = None
    ) -> None:
        options = options or ClientOptions()
        settings = destination.settings
        self.api = MarketingCloudApi(settings, f"destinations.{destination.id}.settings", options)
        self.settings = settings

    def _row(self, record: OutboundRecord) -> tuple[Row | None, str]:
        identifiers = record.payload.get("identifiers") or {}
        email = _last(identifiers, "email")
        email = normalise_email(email) if email else None
        key = _last(identifiers, "user_id") or email
        if key is None:
            return None, "no user_id or valid email for the subscriber key"
        values: dict[str, Any] = {k: cell(v) for k, v in (record.payload.get("traits") or {}).items()}
        values[self.settings.member_column] = record.operation is Operation.ADD
        if self.settings.email_column and email:
            values[self.settings.email_column] = email
        return {"keys": {self.settings.subscriber_key_column: key}, "values": values}, ""

    def send(self, records: Sequence[OutboundRecord], context: BatchContext) -> BatchResult:
        """Membership rows of adds and removes, 50 a call; refused rows fail their record only."""
        target = MarketingCloudListConnection.model_validate(
            dict(context.connection_settings)
        ).data_extension_key
        counts: dict[str, float] = {"http_requests": 0.0, "http_retries": 0.0, "token_refreshes": 0.0}
        results: list[RecordResult] = []
        items: list[tuple[OutboundRecord, Row]] = []
        for record in records:
            if record.operation not in (Operation.ADD, Operation.REMOVE):
                results.append(
                    RecordResult(record.record_id, Outcome.FAILED, f"unsupported {record.operation}")
                )
                continue
            row, reason = self._row(record)
            if row is None:
                results.append(RecordResult(record.record_id, Outcome.FAILED, reason))
            else:
                items.append((record, row))
        counts["members_added"] = float(sum(r.operation is Operation.ADD for r, _ in items))
        counts["members_removed"] = float(sum(r.operation is Operation.REMOVE for r, _ in items))
        outcomes = self.api.upsert(target, [row for _, row in items], counts)
        for (record, row), (outcome, reason, response) in zip(items, outcomes, strict=True):
            sent = {"data_extension": target, "operation": record.operation.value, "keys": row["keys"]}
            results.append(RecordResult(record.record_id, outcome, reason, sent, response))
        return BatchResult(results, counts)

    def close(self) -> None:
        """Close the HTTP sessions."""
        self.api.close()
