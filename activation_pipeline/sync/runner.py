"""Sync one destination of a workspace: decide each connection's changes, then deliver them."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from activation_pipeline.activation.model import Change, ProfileView
from activation_pipeline.activation.payloads import plan_changes
from activation_pipeline.config.catalogue import CATALOGUE
from activation_pipeline.config.models import Connection
from activation_pipeline.config.workspace import Workspace
from activation_pipeline.delivery.engine import AfterBatch, DeliveryReport
from activation_pipeline.delivery.sync import (
    LimiterFactory,
    plan_for_destination,
    rate_limit_for,
    sync_destination,
)
from activation_pipeline.destinations.base import BatchResult
from activation_pipeline.destinations.http import RetryPolicy
from activation_pipeline.state.ledger import read_snapshot
from activation_pipeline.state.store import StateStore
from activation_pipeline.sync.delta import SubjectChange, SyncMode, audience_delta, follow_merges, trait_delta
from activation_pipeline.sync.snapshots import baseline, is_initialised, mark_initialised, rekey_merged


class ComputeView(Protocol):
    """What the sync layer reads of the compute layer's results."""

    def members(self, audience_key: str) -> Set[str]:
        """Profile ids (as text) in an audience now; for account-level audiences, the qualifying accounts' users."""
        ...

    def trait_values(self, trait_key: str, level: str) -> Mapping[str, Any]:
        """Subject -> current value of a computed or SQL trait (subjects: profile ids, or `account:<id>`)."""
        ...

    def aliases(self) -> Mapping[str, str]:
        """Merged-away profile id -> the profile id it lives on as."""
        ...

    def profiles(self, subject_keys: Sequence[str]) -> Mapping[str, ProfileView]:
        """Profile views (identifiers with first-seen times, traits, account) for subjects."""
        ...


@dataclass
class ConnectionDelta:
    """The changes one connection needs, and whether its first sync is a silent baseline."""

    connection: Connection
    changes: list[SubjectChange]
    first_sync: bool
    baseline_only: bool


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
        for name in ("entered", "exited", "updated", "baselined", "unaddressable"):
            figures[name] = sum(c.get(name, 0) for c in self.connections.values())
        return figures


def _source_values(
    view: ComputeView, workspace: Workspace, connection: Connection
) -> tuple[Set[str], Mapping[str, Any]]:
    if connection.source_kind == "audience":
        return view.members(connection.source_key), {}
    level = "user"
    for trait in workspace.traits.computed:
        if trait.key == connection.source_key:
            level = trait.level
    for sql in workspace.traits.sql:
        if connection.source_key in sql.trait_keys:
            level = sql.level
    return set(), view.trait_values(connection.source_key, level)


def connection_delta(
    store: StateStore,
    view: ComputeView,
    workspace: Workspace,
    connection: Connection,
    mode: SyncMode,
    *,
    dry_run: bool = False,
) -> ConnectionDelta:
    """What one connection must send now, against its acknowledged snapshot (merges followed first).

    A dry run follows merges in memory and writes nothing."""
    if dry_run:
        snapshot = follow_merges(read_snapshot(store, connection.connection_id), view.aliases())
    else:
        rekey_merged(store, connection.connection_id, view.aliases())
        snapshot = read_snapshot(store, connection.connection_id)
    members, values = _source_values(view, workspace, connection)
    first = not is_initialised(store, connection.connection_id)
    destination = workspace.destination(connection.destination)
    accepts_history = destination.accepts_historical is not False
    if connection.source_kind == "audience":
        changes = audience_delta(members, snapshot, mode)
    else:
        changes = trait_delta(values, snapshot, mode)
    return ConnectionDelta(
        connection,
        changes,
        first,
        baseline_only=first and not accepts_history and mode is SyncMode.INCREMENTAL,
    )


def _to_changes(delta: ConnectionDelta, profiles: Mapping[str, ProfileView], as_of: datetime) -> list[Change]:
    out = []
    for item in delta.changes:
        level: Literal["user", "account"] = "account" if item.subject_key.startswith("account:") else "user"
        profile = profiles.get(item.subject_key) or ProfileView(profile_id=item.subject_key)
        out.append(Change(item.kind, profile, as_of, item.old_value, item.new_value, level=level))
    return out


def addressable(
    workspace: Workspace, connection: Connection, profiles: Mapping[str, ProfileView], delta: ConnectionDelta
) -> int:
    """Drop changes of profiles the destination cannot address (e.g. Iterable without email or user id).

    They are not failures: nothing could be sent for them. Returns how many were dropped."""
    needed = CATALOGUE[workspace.destination(connection.destination).type].addressed_by
    if not needed:
        return 0
    kept = [
        c
        for c in delta.changes
        if c.subject_key.startswith("account:")
        or any(i.type in needed for i in profiles.get(c.subject_key, ProfileView(c.subject_key)).identifiers)
    ]
    dropped = len(delta.changes) - len(kept)
    delta.changes = kept
    return dropped


def _counts(delta: ConnectionDelta) -> dict[str, int]:
    kinds = [c.kind.value for c in delta.changes]
    if delta.baseline_only:
        return {"baselined": len(kinds)}
    return {
        "entered": kinds.count("entered"),
        "exited": kinds.count("exited"),
        "updated": kinds.count("trait_changed"),
    }


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
    """Send each (chosen) connection of one destination what it needs, and deliver anything left over.

    `progress` is told after every batch how many batches of the total are done and the time left."""
    sync_id = sync_id or f"{mode.value}_{as_of:%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:8]}"
    connections = [
        c
        for c in workspace.connections
        if c.destination == destination_id and (connection_ids is None or c.connection_id in connection_ids)
    ]
    result = DestinationSync(destination_id, mode, None)
    to_send: list[tuple[Connection, list[Change]]] = []
    for connection in connections:
        delta = connection_delta(store, view, workspace, connection, mode)
        result.connections[connection.connection_id] = _counts(delta)
        if delta.baseline_only:
            baseline(
                store,
                connection.connection_id,
                destination_id,
                {c.subject_key: (True if c.kind.value == "entered" else c.new_value) for c in delta.changes},
                sync_id,
            )
            mark_initialised(store, connection.connection_id, destination_id, "baseline")
            continue
        profiles = view.profiles([c.subject_key for c in delta.changes])
        unaddressable = addressable(workspace, connection, profiles, delta)
        result.connections[connection.connection_id] = {**_counts(delta), "unaddressable": unaddressable}
        to_send.append((connection, _to_changes(delta, profiles, as_of)))
    extra: dict[str, Any] = {}
    if sleep is not None:
        extra["sleep"] = sleep
    if limiter_factory is not None:
        extra["limiter_factory"] = limiter_factory
    destination = workspace.destination(destination_id)
    planned = plan_for_destination(destination, to_send, space=workspace.personas_space_id)
    records = sum(len(p.records) for p in planned)
    batch_size = CATALOGUE[destination.type].max_batch
    tracker = Progress(total_batches=math.ceil(records / batch_size) if records else 0, records=records)
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
        to_send,
        space=workspace.personas_space_id,
        sync_id=sync_id,
        base_dir=workspace.base_dir,
        retry=retry,
        after_batch=on_batch,
        resend=mode is SyncMode.RESYNC,
        default_region=workspace.normalisation.default_region,
        planned=planned,
        **extra,
    )
    result.progress = tracker
    for connection, _ in to_send:
        mark_initialised(store, connection.connection_id, destination_id, "backfill")
    return result


# ------------------------------------------------------------------------------------------- dry run


@dataclass(frozen=True)
class ConnectionPlan:
    """What a sync of one connection would send, without sending anything."""

    connection_id: str
    destination_id: str
    mode: SyncMode
    adds: int
    removes: int
    updates: int
    records: int
    api_calls: int
    seconds: float | None
    """How long the destination's rate limit makes it take; None when the platform sets no fixed rate."""
    first_sync: bool
    baseline_only: bool
    unaddressable: int = 0
    """Profiles left out because the destination cannot address them (no identifier it takes)."""


def _requests_for(workspace: Workspace, destination_id: str, records: int) -> int:
    destination = workspace.destination(destination_id)
    spec = CATALOGUE[destination.type]
    per_request = spec.max_batch
    if destination.type == "webhook":
        per_request = destination.settings.batch_size if destination.settings.batch else 1
    if destination.type == "function":
        per_request = 1
    return math.ceil(records / per_request) if records else 0


def plan_connection(
    store: StateStore,
    view: ComputeView,
    workspace: Workspace,
    connection: Connection,
    as_of: datetime,
    mode: SyncMode,
) -> ConnectionPlan:
    """Count the adds, removes, updates, records and API calls a sync would make, and how long it would take."""
    delta = connection_delta(store, view, workspace, connection, mode, dry_run=True)
    records = unaddressable = 0
    if not delta.baseline_only and delta.changes:
        profiles = view.profiles([c.subject_key for c in delta.changes])
        unaddressable = addressable(workspace, connection, profiles, delta)
    counts = _counts(delta)
    if not delta.baseline_only and delta.changes:
        kind = CATALOGUE[workspace.destination(connection.destination).type].kind
        planned = plan_changes(
            _to_changes(delta, profiles, as_of), connection, kind=kind, space=workspace.personas_space_id
        )
        records = sum(len(p.records) for p in planned)
    calls = _requests_for(workspace, connection.destination, records)
    rate = rate_limit_for(workspace.destination(connection.destination))
    return ConnectionPlan(
        connection_id=connection.connection_id,
        destination_id=connection.destination,
        mode=mode,
        adds=counts.get("entered", 0),
        removes=counts.get("exited", 0),
        updates=counts.get("updated", 0),
        records=records,
        api_calls=calls,
        seconds=(calls / rate) if rate else None,
        first_sync=delta.first_sync,
        baseline_only=delta.baseline_only,
        unaddressable=unaddressable,
    )
