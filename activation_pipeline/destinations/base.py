"""The contract between the delivery engine and every destination client."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class Operation(StrEnum):
    """What a record asks the destination to do."""

    IDENTIFY = "identify"
    TRACK = "track"
    GROUP = "group"
    ADD = "add"
    REMOVE = "remove"


@dataclass(frozen=True)
class OutboundRecord:
    """One thing to deliver.

    For event destinations `payload` is the Segment-spec message (its `messageId` equals `record_id`).
    For list destinations `payload` is `{"identifiers": {type: [raw values]}, "traits": {destination key: value}}`
    with values as they are on the profile; the client normalises and hashes them the platform's way.
    """

    record_id: str
    profile_id: str
    operation: Operation
    payload: Mapping[str, Any]


class Outcome(StrEnum):
    """How a record ended after the client's own retries."""

    ACKNOWLEDGED = "acknowledged"
    FAILED = "failed"
    """Permanent: the destination refused it (recorded with the reason, not sent again by itself)."""
    RETRY = "retry"
    """Transient and retries exhausted: it goes again in the next run."""


@dataclass(frozen=True)
class RecordResult:
    """The outcome of one record, with what was actually sent and what the destination answered."""

    record_id: str
    outcome: Outcome
    reason: str = ""
    sent: Mapping[str, Any] | None = None
    response: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class BatchContext:
    """Where a batch goes and where it sits in its sync (list platforms' upload sessions need this)."""

    connection_id: str
    sync_id: str
    batch_seq: int = 1
    batch_count: int = 1
    estimated_total: int | None = None
    connection_settings: Mapping[str, Any] = field(default_factory=dict)
    operation_totals: Mapping[str, int] = field(default_factory=dict)
    """Records of each operation (`add`, `remove`, ...) pending for the connection when its batches were
    counted: list platforms' per-operation upload sessions (Meta) end and are sized with these."""


@dataclass(frozen=True)
class BatchResult:
    """Per-record results plus numeric figures of the batch (e.g. num_received, invalid_email)."""

    results: Sequence[RecordResult]
    metrics: Mapping[str, float] = field(default_factory=dict)


class ConnectionMemory(Protocol):
    """Platform ids a client keeps per connection between runs (the state store's `DestinationMemory`)."""

    def get(self, connection_id: str, key: str) -> str | None:
        """The remembered value, or None."""
        ...

    def put(self, connection_id: str, key: str, value: str) -> None:
        """Remember a value."""
        ...

    def forget(self, connection_id: str, key: str) -> None:
        """Drop a remembered value."""
        ...


class DestinationClient(Protocol):
    """A client for one configured destination."""

    max_batch: int

    def send(self, records: Sequence[OutboundRecord], context: BatchContext) -> BatchResult:
        """Deliver up to `max_batch` records; return one result per record, in any order."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
