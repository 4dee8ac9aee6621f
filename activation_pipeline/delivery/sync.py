"""One call per destination for the orchestration layer: plan each connection's changes, build the client
with the destination's shared rate limiter, deliver, close."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from activation_pipeline.activation.model import Change, PlannedChange
from activation_pipeline.activation.payloads import plan_changes
from activation_pipeline.config.catalogue import CATALOGUE
from activation_pipeline.config.models import Connection, DestinationBase
from activation_pipeline.delivery.engine import AfterBatch, DeliveryReport, deliver
from activation_pipeline.delivery.rate_limit import SharedRateLimiter
from activation_pipeline.destinations.http import ClientOptions, RetryPolicy
from activation_pipeline.destinations.registry import build_client
from activation_pipeline.state.store import StateStore


def rate_limit_for(destination: DestinationBase) -> float | None:
    """Requests per second for a destination: its own `rate_limit`, else the catalogue's default."""
    if destination.rate_limit is not None:
        return destination.rate_limit.requests_per_second
    spec = CATALOGUE.get(str(getattr(destination, "type", "")))
    return spec.default_rate_limit if spec is not None else None


LimiterFactory = Callable[[StateStore, DestinationBase], SharedRateLimiter | None]
"""Builds a destination's rate limiter (None: unlimited); the Dagster delivery resource passes its own."""


def limiter_for(store: StateStore, destination: DestinationBase) -> SharedRateLimiter | None:
    """The destination's limiter, shared through the state store with every run writing to it."""
    rate = rate_limit_for(destination)
    return SharedRateLimiter(store, f"destination:{destination.id}", rate) if rate else None


def plan_for_destination(
    destination: DestinationBase,
    changes: Sequence[tuple[Connection, Sequence[Change]]],
    *,
    space: str,
) -> list[PlannedChange]:
    """Plan every connection's changes the way the destination's kind (event or list) needs."""
    spec = CATALOGUE[str(getattr(destination, "type", ""))]
    planned: list[PlannedChange] = []
    for connection, connection_changes in changes:
        planned += plan_changes(connection_changes, connection, kind=spec.kind, space=space)
    return planned


def sync_destination(
    store: StateStore,
    destination: DestinationBase,
    changes: Sequence[tuple[Connection, Sequence[Change]]],
    *,
    space: str,
    sync_id: str | None = None,
    base_dir: Path | None = None,
    concurrency: int = 1,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    after_batch: AfterBatch | None = None,
    resend: bool = False,
    default_region: str = "US",
    planned: Sequence[PlannedChange] | None = None,
    limiter_factory: LimiterFactory = limiter_for,
) -> DeliveryReport:
    """Deliver the changes of every connection of one destination (plus anything left from earlier runs).

    `resend` sends changes the snapshot already holds too (a resync)."""
    if planned is None:
        planned = plan_for_destination(destination, changes, space=space)
    limiter = limiter_factory(store, destination)
    options = ClientOptions(
        rate_limiter=limiter,
        retry=retry or RetryPolicy(),
        sleep=sleep,
        base_dir=base_dir,
        default_region=default_region,
    )
    client = build_client(destination, options)
    try:
        return deliver(
            store,
            client,
            destination_id=destination.id,
            planned=planned,
            sync_id=sync_id,
            concurrency=concurrency,
            connection_settings={c.connection_id: dict(c.settings) for c, _ in changes},
            after_batch=after_batch,
            resend=resend,
        )
    finally:
        client.close()
        if limiter is not None:
            limiter.close()
