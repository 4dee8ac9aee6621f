"""Sync one destination of a workspace: walk each connection's plan, staging its records, then deliver them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from activation_pipeline.activation.model import PlannedChange
from activation_pipeline.config.workspace import Workspace
from activation_pipeline.delivery.engine import AfterBatch, DeliveryReport
from activation_pipeline.delivery.sync import LimiterFactory, limiter_for, sync_destination
from activation_pipeline.destinations.base import BatchResult
from activation_pipeline.destinations.http import RetryPolicy
from activation_pipeline.state.snapshots import baseline, mark_initialised
from activation_pipeline.state.store import StateStore
from activation_pipeline.sync.delta import SyncMode
from activation_pipeline.sync.plan import ComputeView, ConnectionPlan, PlanSummary, plan_connection

__all__ = ["DestinationSync", "PlanSummary", "Progress", "plan_connection", "sync_destination_of_workspace"]


@dataclass
class Progress:
    """How far a sync is: batches done of the total planned, and the estimated time left."""

    total_batches: int
    records: int
    done_batches: int = 0
    done_records: int = 0
    started: float = field(default_factory=time.monotonic)

    def batch_done(self, records: int) -> None:
        """Count one more batch as finished."""
        self.done_batches += 1
        self.done_records += records

    @property
    def seconds_left(self) -> float | None:
        """Estimated seconds to finish, from the pace so far (None before the first batch)."""
        if not self.done_records:
            return None
        elapsed = time.monotonic() - self.started
        return max(0.0, elapsed / self.done_records * (self.records - self.done_records))

    def describe(self) -> str:
        """`batches 3/10 (1,500/5,000 records), about 12 s left`."""
        left = "" if self.seconds_left is None else f", about {self.seconds_left:.0f} s left"
        return (
            f"batches {self.done_batches}/{max(self.total_batches, self.done_batches)} "
            f"({self.done_records:,}/{self.records:,} records){left}"
        )


@dataclass
class DestinationSync:
    """What a destination's sync did."""

    destination_id: str
    mode: SyncMode
    report: DeliveryReport | None
    connections: dict[str, dict[str, int]] = field(default_factory=dict)
    progress: Progress | None = None

    def metadata(self) -> dict[str, float | int | str]:
        """Numeric figures for Dagster (counts only, no personal data)."""
        figures: dict[str, float | int | str] = dict(self.report.metadata()) if self.report else {}
        figures["connections"] = len(self.connections)
        if self.progress is not None:
            figures["batches_planned"] = self.progress.total_batches
            figures["records_planned"] = self.progress.records
        for name in (
            "entered",
            "exited",
            "updated",
            "baselined",
            "unaddressable",
            "refreshed",
            "consent_left_out",
        ):
            figures[name] = sum(c.get(name, 0) for c in self.connections.values())
        return figures


def sync_destination_of_workspace(
    store: StateStore,
    view: ComputeView,
    workspace: Workspace,
    destination_id: str,
    as_of: datetime,
    *,
    mode: SyncMode = SyncMode.INCREMENTAL,
    connection_ids: Sequence[str] | None = None,
    sync_id: str | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] | None = None,
    after_batch: AfterBatch | None = None,
    progress: Callable[[Progress], None] | None = None,
    limiter_factory: LimiterFactory | None = None,
) -> DestinationSync:
    """Send each (chosen) connection of one destination what its plan holds, and deliver anything left over.

    Records are staged chunk by chunk as the plans are walked; `progress` is told the total once staging is
    done, then after every batch how many batches are done and the time left."""
    sync_id = sync_id or f"{mode.value}_{as_of:%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:8]}"
    chosen = [
        c
        for c in workspace.delivery_connections()
        if c.destination == destination_id and (connection_ids is None or c.connection_id in connection_ids)
    ]
    plans = [
        ConnectionPlan.open(store, view, workspace, c, as_of, mode, dry_run=False, sync_id=sync_id)
        for c in chosen
    ]
    result = DestinationSync(destination_id, mode, None)
    for plan in plans:
        if plan.baseline_only:
            baseline(store, plan.connection.connection_id, destination_id, plan.baseline_values(), sync_id)
            mark_initialised(store, plan.connection.connection_id, destination_id, "baseline")
    sending = [plan for plan in plans if not plan.baseline_only]

    def planned() -> Iterator[PlannedChange]:
        for plan in sending:
            for chunk in plan.planned():
                yield from chunk

    tracker = Progress(total_batches=0, records=0)

    def on_staged(records: int, batches: int) -> None:
        tracker.records, tracker.total_batches = records, batches
        tracker.started = time.monotonic()
        if progress is not None:
            progress(tracker)

    def on_batch(seq: int, batch: BatchResult) -> None:
        tracker.batch_done(len(batch.results))
        if progress is not None:
            progress(tracker)
        if after_batch is not None:
            after_batch(seq, batch)

    result.report = sync_destination(
        store,
        workspace.destination(destination_id),
        planned(),
        [plan.connection for plan in sending],
        sync_id=sync_id,
        base_dir=workspace.base_dir,
        retry=retry,
        after_batch=on_batch,
        resend=mode is SyncMode.RESYNC,
        default_region=workspace.normalisation.default_region,
        on_staged=on_staged,
        sleep=sleep or time.sleep,
        limiter_factory=limiter_factory or limiter_for,
    )
    result.progress = tracker
    result.connections = {plan.connection.connection_id: plan.counts.figures() for plan in plans}
    for plan in sending:
        mark_initialised(store, plan.connection.connection_id, destination_id, "backfill")
    return result
