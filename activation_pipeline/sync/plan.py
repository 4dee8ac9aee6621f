"""The one sync path: delta -> profiles -> addressable -> records, per connection, in bounded chunks.

A dry run (`plan_connection`) and a real sync (`runner.sync_destination_of_workspace`) both walk a
`ConnectionPlan`'s chunks; they differ only in what they do with the records (count them, or stage and send
them) and in whether profile merges are written to the snapshot or followed in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from activation_pipeline.activation.model import Change, ChangeKind, PlannedChange, ProfileView
from activation_pipeline.activation.payloads import plan_changes
from activation_pipeline.config.models import Connection
from activation_pipeline.config.workspace import Workspace
from activation_pipeline.destinations.registry import CATALOGUE, capabilities
from activation_pipeline.destinations.spec import Capabilities
from activation_pipeline.state.snapshots import (
    chunked,
    is_initialised,
    merge_moves,
    rekey_merged,
    snapshot_rows,
)
from activation_pipeline.state.store import StateStore
from activation_pipeline.sync.delta import SubjectChange, SyncMode, audience_delta, trait_delta

CHUNK = 10_000
"""Changes read, looked up and turned into records at a time: what bounds a sync's memory."""


class ComputeView(Protocol):
    """What the sync layer reads of the compute layer's results, as sorted streams and per-chunk lookups."""

    def members(self, audience_key: str) -> Iterable[str]:
        """Profile ids (as text) in an audience now, in key order; for account-level audiences, the
        qualifying accounts' users."""
        ...

    def trait_values(self, trait_key: str, level: str) -> Iterable[tuple[str, Any]]:
        """(subject, current value) of a computed or SQL trait in key order (subjects: profile ids, or
        `account:<id>`)."""
        ...

    def aliases(self) -> Mapping[str, str]:
        """Merged-away profile id -> the profile id it lives on as."""
        ...

    def profiles(self, subject_keys: Sequence[str]) -> Mapping[str, ProfileView]:
        """Profile views (identifiers with first-seen times, traits, account) for subjects."""
        ...


@dataclass
class ConnectionCounts:
    """What one connection's plan holds so far (complete once its chunks have all been read)."""

    entered: int = 0
    exited: int = 0
    updated: int = 0
    baselined: int = 0
    unaddressable: int = 0
    records: int = 0

    def figures(self) -> dict[str, int]:
        """The counts reported per connection (no personal data)."""
        if self.baselined:
            return {"baselined": self.baselined}
        return {
            "entered": self.entered,
            "exited": self.exited,
            "updated": self.updated,
            "unaddressable": self.unaddressable,
        }


@dataclass
class ConnectionPlan:
    """One connection's sync: its delta against the snapshot, turned into records chunk by chunk."""

    store: StateStore
    view: ComputeView
    workspace: Workspace
    connection: Connection
    as_of: datetime
    mode: SyncMode
    first_sync: bool
    baseline_only: bool
    moves: Mapping[str, str | None]
    """Merges followed in memory (a dry run); empty when they were written to the snapshot."""
    generation: str = ""
    """A resync's id, so that its messages are new ones (see `Change.generation`)."""
    chunk: int = CHUNK
    counts: ConnectionCounts = field(default_factory=ConnectionCounts)

    @classmethod
    def open(
        cls,
        store: StateStore,
        view: ComputeView,
        workspace: Workspace,
        connection: Connection,
        as_of: datetime,
        mode: SyncMode,
        *,
        dry_run: bool,
        sync_id: str = "dry-run",
        chunk: int = CHUNK,
    ) -> ConnectionPlan:
        """Follow profile merges (written, or in memory for a dry run) and note whether this is a first sync."""
        if dry_run:
            moves = merge_moves(store, connection.connection_id, view.aliases())
        else:
            rekey_merged(store, connection.connection_id, view.aliases())
            moves = {}
        first = not is_initialised(store, connection.connection_id)
        destination = workspace.destination(connection.destination)
        baseline_only = first and destination.accepts_historical is False and mode is SyncMode.INCREMENTAL
        generation = sync_id if mode is SyncMode.RESYNC else ""
        return cls(
            store, view, workspace, connection, as_of, mode, first, baseline_only, moves, generation, chunk
        )

    @property
    def capabilities(self) -> Capabilities:
        """The destination's capabilities (batch size, records per request, rate)."""
        return capabilities(self.workspace.destination(self.connection.destination))

    def changes(self) -> Iterator[SubjectChange]:
        """The delta: who entered and exited, or whose trait value changed, in key order."""
        connection_id = self.connection.connection_id

        def snapshot() -> Iterator[tuple[str, Any]]:
            return snapshot_rows(self.store, connection_id, self.moves)

        key = self.connection.source_key
        if self.connection.source_kind == "audience":
            return audience_delta(lambda: self.view.members(key), snapshot, self.mode)
        level = _trait_level(self.workspace, key)
        return trait_delta(lambda: self.view.trait_values(key, level), snapshot, self.mode)

    def baseline_values(self) -> Iterator[tuple[str, Any]]:
        """What a silent first sync records as held: (subject, membership or value)."""
        for change in self.changes():
            self.counts.baselined += 1
            yield change.subject_key, True if change.kind is ChangeKind.ENTERED else change.new_value

    def planned(self) -> Iterator[list[PlannedChange]]:
        """The records to send, one chunk of changes at a time (profiles looked up per chunk)."""
        kind = CATALOGUE[self.workspace.destination(self.connection.destination).type].kind
        needed = self.capabilities.addressed_by
        space = self.workspace.personas_space_id
        for part in chunked(self.changes(), self.chunk):
            profiles = self.view.profiles([c.subject_key for c in part])
            kept = [c for c in part if _addressable(c, profiles, needed)]
            self.counts.unaddressable += len(part) - len(kept)
            self._count(kept)
            planned = plan_changes(
                [_change(c, profiles, self.as_of, self.generation) for c in kept],
                self.connection,
                kind=kind,
                space=space,
                separate_by=self.capabilities.separate_records_by,
            )
            self.counts.records += sum(len(p.records) for p in planned)
            yield planned

    def _count(self, part: Sequence[SubjectChange]) -> None:
        for change in part:
            if change.kind is ChangeKind.ENTERED:
                self.counts.entered += 1
            elif change.kind is ChangeKind.EXITED:
                self.counts.exited += 1
            else:
                self.counts.updated += 1


def _trait_level(workspace: Workspace, key: str) -> str:
    level = "user"
    for trait in workspace.traits.computed:
        if trait.key == key:
            level = trait.level
    for sql in workspace.traits.sql:
        if key in sql.trait_keys:
            level = sql.level
    return level


def _addressable(change: SubjectChange, profiles: Mapping[str, ProfileView], needed: Sequence[str]) -> bool:
    """Whether the destination can be sent this subject (accounts and destinations taking any id: always)."""
    if not needed or change.subject_key.startswith("account:"):
        return True
    profile = profiles.get(change.subject_key, ProfileView(change.subject_key))
    return any(i.type in needed for i in profile.identifiers)


def _change(
    item: SubjectChange, profiles: Mapping[str, ProfileView], as_of: datetime, generation: str
) -> Change:
    level: Literal["user", "account"] = "account" if item.subject_key.startswith("account:") else "user"
    profile = profiles.get(item.subject_key) or ProfileView(profile_id=item.subject_key)
    return Change(
        item.kind, profile, as_of, item.old_value, item.new_value, level=level, generation=generation
    )


@dataclass(frozen=True)
class PlanSummary:
    """What a sync of one connection would send, without sending anything."""

    connection_id: str
    destination_id: str
    mode: SyncMode
    adds: int
    removes: int
    updates: int
    records: int
    batches: int
    api_calls: int
    seconds: float | None
    """How long the destination's rate limit makes it take; None when the platform sets no fixed rate."""
    first_sync: bool
    baseline_only: bool
    unaddressable: int = 0
    """Profiles left out because the destination cannot address them (no identifier it takes)."""


def plan_connection(
    store: StateStore,
    view: ComputeView,
    workspace: Workspace,
    connection: Connection,
    as_of: datetime,
    mode: SyncMode,
    *,
    chunk: int = CHUNK,
) -> PlanSummary:
    """Dry run: walk the same plan a sync walks, counting adds, removes, updates, records, batches and calls."""
    plan = ConnectionPlan.open(store, view, workspace, connection, as_of, mode, dry_run=True, chunk=chunk)
    if plan.baseline_only:
        for _ in plan.baseline_values():
            pass
    else:
        for _ in plan.planned():
            pass
    counts, limits = plan.counts, plan.capabilities
    records = 0 if plan.baseline_only else counts.records
    return PlanSummary(
        connection_id=connection.connection_id,
        destination_id=connection.destination,
        mode=mode,
        adds=counts.entered,
        removes=counts.exited,
        updates=counts.updated,
        records=records,
        batches=limits.batches_for(records),
        api_calls=limits.requests_for(records),
        seconds=limits.seconds_for(records),
        first_sync=plan.first_sync,
        baseline_only=plan.baseline_only,
        unaddressable=counts.unaddressable,
    )
