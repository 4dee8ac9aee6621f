"""One call per destination: build the client with the destination's shared rate limiter, deliver, close."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from activation_pipeline.activation.model import PlannedChange
from activation_pipeline.config.models import Connection, DestinationBase
from activation_pipeline.delivery.engine import AfterBatch, DeliveryReport, OnStaged, deliver
from activation_pipeline.delivery.rate_limit import SharedRateLimiter
from activation_pipeline.destinations.http import ClientOptions, RetryPolicy
from activation_pipeline.destinations.registry import build_client, capabilities
from activation_pipeline.state.destination_memory import DestinationMemory
from activation_pipeline.state.store import StateStore


def rate_limit_for(destination: DestinationBase) -> float | None:
    """Requests per second for a destination: its own `rate_limit`, else its type's default."""
    return capabilities(destination).rate_limit


LimiterFactory = Callable[[StateStore, DestinationBase], SharedRateLimiter | None]
"""Builds a destination's rate limiter (None: unlimited); the Dagster delivery resource passes its own."""


DEFAULT_SENDERS = 8
"""Requests in flight at once to a destination with one request per record (no `rate_limit.max_concurrent`)."""


def senders_for(destination: DestinationBase) -> int:
    """How many requests go out at once: several for one-request-per-record APIs (one sender cannot reach
    hundreds of requests per second), one for batch APIs, whose batches go in order (upload sessions)."""
    found = capabilities(destination)
    if found.records_per_request != 1:
        return 1
    return found.max_concurrent or DEFAULT_SENDERS


def limiter_for(store: StateStore, destination: DestinationBase) -> SharedRateLimiter | None:
    """The destination's limiter, shared through the state store with every run writing to it."""
    rate = rate_limit_for(destination)
    return SharedRateLimiter(store, f"destination:{destination.id}", rate) if rate else None


def sync_destination(
    store: StateStore,
    destination: DestinationBase,
    planned: Iterable[PlannedChange],
    connections: Sequence[Connection],
    *,
    sync_id: str | None = None,
    base_dir: Path | None = None,
    concurrency: int | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    after_batch: AfterBatch | None = None,
    resend: bool = False,
    default_region: str = "US",
    limiter_factory: LimiterFactory = limiter_for,
    on_staged: OnStaged | None = None,
) -> DeliveryReport:
    """Deliver the planned records of `connections` of one destination (plus anything left from earlier
    runs); `planned` may be a stream, staged as it comes.

    `resend` sends changes the snapshot already holds too (a resync). `concurrency` defaults to
    `senders_for(destination)`."""
    limiter = limiter_factory(store, destination)
    options = ClientOptions(
        rate_limiter=limiter,
        retry=retry or RetryPolicy(),
        sleep=sleep,
        base_dir=base_dir,
        default_region=default_region,
        memory=DestinationMemory(store, destination.id),
    )
    client = build_client(destination, options)
    try:
        return deliver(
            store,
            client,
            destination_id=destination.id,
            planned=planned,
            sync_id=sync_id,
            concurrency=concurrency or senders_for(destination),
            records_per_request=capabilities(destination).records_per_request,
            connection_settings={c.connection_id: dict(c.settings) for c in connections},
            after_batch=after_batch,
            resend=resend,
            on_staged=on_staged,
        )
    finally:
        client.close()
        if limiter is not None:
            limiter.close()
