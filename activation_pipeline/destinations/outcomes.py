"""Turning an `HttpResult` into per-record results, the same way for every client."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from activation_pipeline.destinations.base import OutboundRecord, Outcome, RecordResult
from activation_pipeline.destinations.http import HttpResult, short_body


def answer(result: HttpResult) -> dict[str, Any]:
    """What the destination answered, for the ledger: status and body (JSON, or the start of the text)."""
    if result.response is None:
        return {"status": None, "error": result.reason}
    body = result.json()
    return {"status": result.status, "body": body if body is not None else short_body(result.response)}


def same_for_all(
    records: Sequence[OutboundRecord],
    result: HttpResult,
    sent: Mapping[str, Any] | None = None,
) -> list[RecordResult]:
    """Every record of one request shares its outcome; `sent` maps record ids to what went on the wire."""
    outcome = result.verdict
    response = answer(result)
    return [
        RecordResult(
            r.record_id,
            outcome,
            "" if outcome is Outcome.ACKNOWLEDGED else result.reason,
            sent.get(r.record_id) if sent is not None else None,
            response,
        )
        for r in records
    ]


def http_metrics(results: Sequence[HttpResult]) -> dict[str, float]:
    """Requests and retries spent on a batch."""
    return {
        "http_requests": float(sum(r.attempts for r in results)),
        "http_retries": float(sum(r.retries for r in results)),
    }
