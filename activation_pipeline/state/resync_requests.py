"""Resync requests: recorded from the UI or the CLI, launched oldest first, one per workspace at a time."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from activation_pipeline.state.schema import resync_requests
from activation_pipeline.state.store import StateStore


class RequestStatus(StrEnum):
    """Where a resync request is in its life."""

    PENDING = "pending"
    LAUNCHED = "launched"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


@dataclass(frozen=True)
class ResyncRequest:
    """One request to send a connection's whole audience again with today's settings."""

    request_id: str
    seq: int
    workspace: str
    connection_id: str
    reason: str
    requested_by: str
    requested_at: datetime
    status: RequestStatus
    run_id: str | None
    detail: str | None


def _from_mapping(row: Mapping[str, Any]) -> ResyncRequest:
    requested_at = row["requested_at"]
    return ResyncRequest(
        request_id=row["request_id"],
        seq=row["seq"],
        workspace=row["workspace"],
        connection_id=row["connection_id"],
        reason=row["reason"],
        requested_by=row["requested_by"],
        requested_at=requested_at if requested_at.tzinfo else requested_at.replace(tzinfo=UTC),
        status=RequestStatus(row["status"]),
        run_id=row["run_id"],
        detail=row["detail"],
    )


def enqueue(
    store: StateStore, workspace: str, connection_ids: list[str], reason: str, requested_by: str = "ui"
) -> list[ResyncRequest]:
    """Record one pending request per connection, in order; they are launched oldest first."""
    now = datetime.now(UTC)
    created = []
    with store.write() as connection:
        if store.dialect == "postgresql":  # serialise sequence numbers across concurrent requesters
            connection.execute(sa.text("LOCK TABLE resync_requests IN EXCLUSIVE MODE"))
        top = connection.execute(
            sa.select(sa.func.coalesce(sa.func.max(resync_requests.c.seq), 0))
        ).scalar_one()
        for offset, connection_id in enumerate(connection_ids, start=1):
            values = {
                "request_id": uuid.uuid4().hex,
                "seq": int(top) + offset,
                "workspace": workspace,
                "connection_id": connection_id,
                "reason": reason,
                "requested_by": requested_by,
                "requested_at": now,
                "status": RequestStatus.PENDING.value,
                "run_id": None,
                "updated_at": now,
                "detail": None,
            }
            connection.execute(sa.insert(resync_requests).values(**values))
            created.append(_from_mapping(values))
    return created


def requests(store: StateStore, statuses: frozenset[RequestStatus] | None = None) -> list[ResyncRequest]:
    """Requests (optionally only those in `statuses`), oldest first."""
    query = sa.select(resync_requests).order_by(resync_requests.c.seq)
    if statuses is not None:
        query = query.where(resync_requests.c.status.in_([s.value for s in statuses]))
    with store.read() as connection:
        return [_from_mapping(dict(row._mapping)) for row in connection.execute(query)]


def mark(
    store: StateStore, request_id: str, status: RequestStatus, run_id: str | None = None, detail: str = ""
) -> None:
    """Move a request to a new status (and remember its run)."""
    values: dict[str, Any] = {
        "status": status.value,
        "updated_at": datetime.now(UTC),
        "detail": detail or None,
    }
    if run_id is not None:
        values["run_id"] = run_id
    with store.write() as connection:
        connection.execute(
            sa.update(resync_requests).where(resync_requests.c.request_id == request_id).values(**values)
        )
