"""The one sync path: delta -> profiles -> addressable -> records, per connection, in bounded chunks.

A dry run (`plan_connection`) and a real sync (`runner.sync_destination_of_workspace`) both walk a
`ConnectionPlan`'s chunks; they differ only in what they do with the records (count them, or stage and send
them) and in whether profile merges are written to the snapshot or followed in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from activation_pipeline.activation.model import Change, ChangeKind, PlannedChange, ProfileView
from activation_pipeline.activation.payloads import plan_changes
from activation_pipeline.config.models import Connection
from activation_pipeline.config.workspace import Workspace
from activation_pipeline.destinations.base import Operation
from activation_pipeline.destinations.consent import Eligibility, eligibility_of
from activation_pipeline.destinations.registry import CATALOGUE, capabilities
from activation_pipeline.destinations.spec import CallCounts, Capabilities
from activation_pipeline.state.snapshots import (
    chunked,
    held_since,
    is_initialised,
    merge_moves,
    rekey_merged,
    snapshot_rows,
)
from activation_pipeline.state.store import StateStore
from activation_pipeline.sync.delta import SubjectChange, SyncMode, audience_delta, journey_delta, trait_delta

CHUNK = 10_000
"""Changes read, looked up and turned into records at a time: what bounds a sync's memory."""
REFRESH_SPREAD = 0.25
"""Members come due for a refresh between (1 - REFRESH_SPREAD) and 1 times `refresh_after`."""


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

    def journey_members(self, journey_key: str, step_key: str) -> Iterable[tuple[str, int]]:
        """(profile id as text, entry) of everyone who reached a journey's send step, in key order."""
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
    refreshed: int = 0
    """Held members sent again because their last acknowledged upload is older than `refresh_after`."""
    consent_left_out: int = 0
    """Audience members not sent (or removed) because their consent trait does not grant consent."""

    def figures(self) -> dict[str, int]:
        """The counts reported per connection (no personal data)."""
        if self.baselined:
            return {"baselined": self.baselined}
        found = {
            "entered": self.entered,
            "exited": self.exited,
            "updated": self.updated,
            "unaddressable": self.unaddressable,
        }
        if self.refreshed:
            found["refreshed"] = self.refreshed
        if self.consent_left_out:
            found["consent_left_out"] = self.consent_left_out
        return found


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
    eligibility: Eligibility | None = None
    """Who of the audience may be sent (consent per member, list destinations); None: everyone."""
    refresh_after: timedelta | None = None
    """Membership upkeep of list destinations: held members last acknowledged longer ago are sent again."""
    sync_id: str = ""

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
        eligibility, refresh_after = _list_upkeep(destination.type, connection)
        return cls(
            store,
            view,
            workspace,
            connection,
            as_of,
            mode,
            first,
            baseline_only,
            moves,
            generation,
            chunk,
            eligibility=eligibility,
            refresh_after=refresh_after,
            sync_id=sync_id,
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
        if self.connection.source_kind == "journey":
            journey_key, step_key = key.split(".", 1)
            reached: Callable[[], Iterable[tuple[str, int]]] = lambda: self.view.journey_members(  # noqa: E731
                journey_key, step_key
            )
            if self.eligibility is not None:
                everyone = reached
                reached = lambda: self._eligible_entries(everyone())  # noqa: E731
            return journey_delta(reached, snapshot, self.mode)
        if self.connection.source_kind == "audience":
            members: Callable[[], Iterable[str]] = lambda: self.view.members(key)  # noqa: E731
            if self.eligibility is not None:
                passes = iter((True,))
                members = lambda: self._eligible(self.view.members(key), next(passes, False))  # noqa: E731
            due = self._due if self.refresh_after is not None and not self.first_sync else None
            return audience_delta(members, snapshot, self.mode, due)
        level = _trait_level(self.workspace, key)
        return trait_delta(lambda: self.view.trait_values(key, level), snapshot, self.mode)

    def _eligible_entries(self, reached: Iterable[tuple[str, int]]) -> Iterator[tuple[str, int]]:
        """The people who reached a journey's send step (with their entry) whose consent trait grants consent;
        those left out are counted (the journey delta reads them once)."""
        assert self.eligibility is not None
        for part in chunked(reached, self.chunk):
            profiles = self.view.profiles([subject for subject, _ in part])
            for subject, entry in part:
                if self.eligibility.eligible(profiles.get(subject) or ProfileView(subject)):
                    yield subject, entry
                else:
                    self.counts.consent_left_out += 1

    def _eligible(self, members: Iterable[str], count: bool) -> Iterator[str]:
        """The members whose consent trait grants consent (profiles looked up a chunk at a time); `count`:
        count those left out (the delta reads the members twice)."""
        assert self.eligibility is not None
        for part in chunked(members, self.chunk):
            profiles = self.view.profiles(part)
            for subject in part:
                if self.eligibility.eligible(profiles.get(subject) or ProfileView(subject)):
                    yield subject
                elif count:
                    self.counts.consent_left_out += 1

    def _due(self) -> Iterator[str]:
        assert self.refresh_after is not None
        return due_for_refresh(self.store, self.connection.connection_id, self.refresh_after)

    def baseline_values(self) -> Iterator[tuple[str, Any]]:
        """What a silent first sync records as held: (subject, membership or value)."""
        for change in self.changes():
            self.counts.baselined += 1
            entered = change.kind is ChangeKind.ENTERED and change.new_value is None
            yield change.subject_key, True if entered else change.new_value

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
            refresh = f"refresh:{self.sync_id}"
            planned = plan_changes(
                [_change(c, profiles, self.as_of, refresh if c.refresh else self.generation) for c in kept],
                self.connection,
                kind=kind,
                space=space,
                separate_by=self.capabilities.separate_records_by,
            )
            if self.eligibility is not None and self.eligibility.forwarded:
                planned = [_with_consent(p, self.eligibility, profiles) for p in planned]
            refreshed = {c.subject_key for c in kept if c.refresh}
            if refreshed:
                planned = [replace(p, resend=True) if p.subject_key in refreshed else p for p in planned]
            self.counts.records += sum(len(p.records) for p in planned)
            yield planned

    def _count(self, part: Sequence[SubjectChange]) -> None:
        for change in part:
            if change.refresh:
                self.counts.refreshed += 1
            elif change.kind is ChangeKind.ENTERED:
                self.counts.entered += 1
            elif change.kind is ChangeKind.EXITED:
                self.counts.exited += 1
            else:
                self.counts.updated += 1


def due_for_refresh(
    store: StateStore, connection_id: str, refresh_after: timedelta, now: datetime | None = None
) -> Iterator[str]:
    """Held members due for a refresh, in key order.

    Each comes due at a point between 75% and 100% of `refresh_after` after its last acknowledged upload (a
    hash of its key picks the point), so members added together are sent again over a quarter of the
    period rather than all in one run, and none later than `refresh_after`."""
    now = now or datetime.now(UTC)
    earliest = now - refresh_after * (1 - REFRESH_SPREAD)
    for subject, acknowledged in held_since(store, connection_id, earliest):
        point = int.from_bytes(hashlib.sha256(subject.encode()).digest()[:4], "big") / 2**32
        if acknowledged < now - refresh_after * (1 - REFRESH_SPREAD * point):
            yield subject


def _list_upkeep(type_name: str, connection: Connection) -> tuple[Eligibility | None, timedelta | None]:
    """A list connection's consent rule and `refresh_after` (from its validated settings)."""
    entry = CATALOGUE[type_name]
    if entry.kind != "list":
        return None, None
    settings = entry.connection_settings.model_validate(dict(connection.settings))
    return eligibility_of(settings), getattr(settings, "refresh_after", None)


def _with_consent(
    planned: PlannedChange, eligibility: Eligibility, profiles: Mapping[str, ProfileView]
) -> PlannedChange:
    """Add the member's consent (purpose -> granted/denied) to the payload of an add record."""
    profile = profiles.get(planned.subject_key) or ProfileView(planned.subject_key)
    consent = eligibility.member_consent(profile)
    records = tuple(
        replace(r, payload={**r.payload, "consent": consent}) if r.operation is Operation.ADD else r
        for r in planned.records
    )
    return replace(planned, records=records)


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
    refreshes: int = 0
    """Held members sent again for membership upkeep (`refresh_after`), besides the adds."""
    consent_left_out: int = 0
    """Audience members left out (or removed) because their consent trait does not grant consent."""


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
    destination = workspace.destination(connection.destination)
    calls = CATALOGUE[destination.type].calls_for(
        destination,
        connection,
        CallCounts(records, limits.batches_for(records), counts.entered, counts.exited, counts.updated),
    )
    return PlanSummary(
        connection_id=connection.connection_id,
        destination_id=connection.destination,
        mode=mode,
        adds=counts.entered,
        removes=counts.exited,
        updates=counts.updated,
        records=records,
        batches=limits.batches_for(records),
        api_calls=calls,
        seconds=limits.seconds_for(records, calls),
        first_sync=plan.first_sync,
        baseline_only=plan.baseline_only,
        unaddressable=counts.unaddressable,
        refreshes=counts.refreshed,
        consent_left_out=counts.consent_left_out,
    )
