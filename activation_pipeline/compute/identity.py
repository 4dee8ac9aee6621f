"""Identity resolution: merge identifiers seen together into profiles, honouring limits and blocked values.

Messages are reduced to their distinct identifier sets, which are processed in order of first appearance
(time, then the set's text). A set whose identifiers belong to several profiles merges them into the oldest
one, unless a per-identifier limit would be exceeded; then the set's least trusted identifier is dropped and
the set is tried again. Blocked values never match or merge. Profiles only grow, so a set seen again later
would resolve the same way: an incremental run only resolves sets that are new since the last run, which
gives the same graph as a full rebuild as long as events arrive in time order.

A full rebuild first groups the sets into connected components (`identity_components`): a component that
breaks no limit and holds no ambiguous alias ends as one profile, written at once (numpy on DuckDB, SQL
elsewhere); only the others go through `Resolver`.

Profile ids are 63-bit hashes of the identifier that created the profile: stable from run to run, and a
merge keeps the older profile's id. `profile_aliases` maps every merged-away id to its surviving id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from activation_pipeline.compute import state
from activation_pipeline.compute.engine import ComputeEngine, load_arrow
from activation_pipeline.compute.identity_components import rebuild_duckdb, rebuild_simple
from activation_pipeline.compute.ingest import PREVIOUS_ID
from activation_pipeline.compute.schema import Tables
from activation_pipeline.compute.scratch import scratch_table
from activation_pipeline.compute.sqlutil import (
    create_table_as,
    drop_table,
)
from activation_pipeline.config import Workspace
from activation_pipeline.identifiers import canonical_identifier

Key = tuple[str, str]
_MASK = (1 << 63) - 1


def profile_id_for(key: Key) -> int:
    """The id of a profile created by identifier `key`: the first 63 bits of md5 (same as `ProfileIdHash`)."""
    digest = hashlib.md5(f"{key[0]}\x1f{key[1]}".encode(), usedforsecurity=False).hexdigest()
    return int(digest[:16], 16) & _MASK


@dataclass(frozen=True)
class IdentitySummary:
    """Counts from one identity run (no identifier values)."""

    mode: str
    sets_processed: int
    new_sets: int
    profiles_created: int
    merges: int
    limited: int
    blocked: int
    profiles: int
    identifiers: int
    affected: int


@dataclass
class _Known:
    owner: int | None
    first: datetime
    last: datetime


@dataclass
class Resolver:
    """The in-memory part of the identity graph a run touches, and the algorithm that grows it."""

    limits: dict[str, int | None]
    blocked: dict[str, frozenset[str]]
    ids: dict[Key, _Known] = field(default_factory=dict)
    members: dict[int, list[Key]] = field(default_factory=dict)
    created: dict[int, datetime] = field(default_factory=dict)
    merges: list[tuple[int, int, datetime]] = field(default_factory=list)
    touched: set[int] = field(default_factory=set)
    dirty: set[Key] = field(default_factory=set)
    new_profiles: int = 0
    limited: int = 0
    blocked_count: int = 0

    @classmethod
    def for_workspace(cls, workspace: Workspace) -> Resolver:
        """A resolver with the workspace's limits and blocked values (normalised like identifiers)."""
        identity = workspace.identity
        region = workspace.normalisation.default_region

        def norm(kind: str, value: str) -> str:
            return canonical_identifier(kind, value, region) or value

        kinds = [*identity.identifiers, PREVIOUS_ID]
        blocked: dict[str, frozenset[str]] = {}
        for kind in kinds:
            own = identity.identifiers[kind].blocked_values if kind in identity.identifiers else []
            values = [*identity.blocked_values, *own]
            if kind == PREVIOUS_ID:
                for base in ("user_id", "anonymous_id"):
                    if base in identity.identifiers:
                        values += identity.identifiers[base].blocked_values
            blocked[kind] = frozenset(norm(kind, v) for v in values) | frozenset(values)
        limits = {name: s.limit for name, s in identity.identifiers.items()}
        return cls(limits=limits, blocked=blocked)

    def load(self, rows: Iterable[Any], created: Iterable[Any]) -> None:
        """Seed the graph with stored identities and profile creation times."""
        for r in rows:
            key = (r.identifier_type, r.value)
            self.ids[key] = _Known(r.profile_id, r.first_seen, r.last_seen)
            if r.profile_id is not None:
                self.members.setdefault(r.profile_id, []).append(key)
        for r in created:
            self.created[r.profile_id] = r.created_at

    def _see(self, key: Key, first: datetime, last: datetime) -> None:
        known = self.ids.get(key)
        if known is None:
            self.ids[key] = _Known(None, first, last)
        else:
            known.first = min(known.first, first)
            known.last = max(known.last, last)
        self.dirty.add(key)

    def _usable(self, pairs: list[list[str]]) -> list[Key]:
        keys: list[Key] = []
        for kind, value in pairs:
            if value in self.blocked.get(kind, frozenset()):
                self.blocked_count += 1
                continue
            if kind == PREVIOUS_ID:
                kind = next(
                    (
                        k
                        for k in ("user_id", "anonymous_id")
                        if (self.ids.get((k, value)) or _NONE).owner is not None
                    ),
                    "anonymous_id",
                )
            key = (kind, value)
            if key not in keys:
                keys.append(key)
        return keys

    def _over_limit(self, profiles: list[int], new: list[Key]) -> bool:
        counts: dict[str, int] = {}
        for p in profiles:
            for kind, _ in self.members[p]:
                counts[kind] = counts.get(kind, 0) + 1
        for kind, _ in new:
            counts[kind] = counts.get(kind, 0) + 1
        return any((limit := self.limits.get(kind)) is not None and n > limit for kind, n in counts.items())

    def seen_again(self, pairs: list[list[str]], first: datetime, last: datetime) -> None:
        """A set resolved in an earlier run: only its identifiers' first/last seen times move."""
        for key in self._usable(pairs):
            self._see(key, first, last)

    def resolve(self, pairs: list[list[str]], first: datetime, last: datetime) -> int | None:
        """Resolve a new identifier set; return the profile its messages belong to (None: no usable id)."""
        keys = self._usable(pairs)
        for key in keys:
            self._see(key, first, last)
        while keys:
            profiles: list[int] = []
            new: list[Key] = []
            for key in keys:
                owner = self.ids[key].owner
                if owner is None:
                    new.append(key)
                elif owner not in profiles:
                    profiles.append(owner)
            if len(profiles) + len(new) > 1 and self._over_limit(profiles, new):
                keys.pop()
                self.limited += 1
                continue
            break
        if not keys:
            return None
        if not profiles:
            survivor = profile_id_for(keys[0])
            self.created[survivor] = first
            self.members[survivor] = []
            self.new_profiles += 1
        else:
            survivor = min(profiles, key=lambda p: (self.created[p], p))
        for other in profiles:
            if other != survivor:
                self._merge(other, survivor, first)
        for key in new:
            self.ids[key].owner = survivor
            self.members[survivor].append(key)
        self.touched.add(survivor)
        return survivor

    def _merge(self, old: int, survivor: int, at: datetime) -> None:
        for key in self.members.pop(old):
            self.ids[key].owner = survivor
            self.members[survivor].append(key)
            self.dirty.add(key)
        del self.created[old]
        self.merges.append((old, survivor, at))
        self.touched.add(old)


_NONE = _Known(None, datetime.min, datetime.min)


# ------------------------------------------------------------------------------------------ run


def _window(tables: Tables, as_of: datetime, since: datetime | None, since_batch: int) -> Any:
    e = tables.events.c
    condition = sa.and_(e.timestamp <= as_of, e.set_hash.isnot(None))
    if since is not None:
        condition = sa.and_(condition, sa.or_(e.timestamp > since, e.batch > since_batch))
    return condition


def _set_query(tables: Tables, condition: Any) -> sa.Select[Any]:
    e = tables.events.c
    window = (
        sa.select(
            e.set_hash,
            sa.func.min(e.ids).label("ids"),
            sa.func.min(e.timestamp).label("first_seen"),
            sa.func.max(e.timestamp).label("last_seen"),
        )
        .where(condition)
        .group_by(e.set_hash)
        .subquery("w")
    )
    s = tables.identity_sets
    return (
        sa.select(window, s.c.profile_id.label("known_profile"), s.c.set_hash.label("known"))
        .select_from(window.outerjoin(s, s.c.set_hash == window.c.set_hash))
        .order_by(window.c.first_seen, window.c.ids)
    )


def _load_touched_graph(
    conn: sa.Connection, engine: ComputeEngine, resolver: Resolver, keys: set[Key]
) -> None:
    tables = engine.tables
    lookup: set[Key] = set()
    for kind, value in keys:
        if kind == PREVIOUS_ID:
            lookup.update({("user_id", value), ("anonymous_id", value)})
        else:
            lookup.add((kind, value))
    scratch = scratch_table(
        conn,
        engine.schema,
        "_scratch_keys",
        pa.table(
            {"identifier_type": [k for k, _ in lookup], "value": [v for _, v in lookup]},
            schema=pa.schema([("identifier_type", pa.string()), ("value", pa.string())]),
        ),
    )
    i = tables.identities
    matched = sa.select(i.c.profile_id).join(
        scratch, sa.and_(scratch.c.identifier_type == i.c.identifier_type, scratch.c.value == i.c.value)
    )
    owners = matched.where(i.c.profile_id.isnot(None)).distinct().subquery()
    rows = conn.execute(
        sa.select(i).where(
            sa.or_(
                i.c.profile_id.in_(sa.select(owners.c.profile_id)),
                sa.exists().where(
                    scratch.c.identifier_type == i.c.identifier_type, scratch.c.value == i.c.value
                ),
            )
        )
    ).all()
    p = tables.profiles
    created = conn.execute(sa.select(p).where(p.c.profile_id.in_(sa.select(owners.c.profile_id)))).all()
    resolver.load(rows, created)
    conn.execute(sa.text(f"DROP TABLE {engine.name(conn, '_scratch_keys')}"))


def _identity_rows(resolver: Resolver, keys: Iterable[Key]) -> pa.Table:
    kinds, values, owners, firsts, lasts = [], [], [], [], []
    for key in keys:
        known = resolver.ids[key]
        kinds.append(key[0])
        values.append(key[1])
        owners.append(known.owner)
        firsts.append(known.first)
        lasts.append(known.last)
    return pa.table(
        {
            "identifier_type": kinds,
            "value": values,
            "profile_id": owners,
            "first_seen": firsts,
            "last_seen": lasts,
        },
        schema=pa.schema(
            [
                ("identifier_type", pa.string()),
                ("value", pa.string()),
                ("profile_id", pa.int64()),
                ("first_seen", pa.timestamp("us")),
                ("last_seen", pa.timestamp("us")),
            ]
        ),
    )


def _final(aliases: dict[int, int], pid: int) -> int:
    seen = 0
    while pid in aliases and seen < 10_000:
        pid = aliases[pid]
        seen += 1
    return pid


def resolve_identities(engine: ComputeEngine, workspace: Workspace, as_of: datetime) -> IdentitySummary:
    """Bring the identity graph up to `as_of` (naive UTC): incrementally when possible, else rebuilt."""
    tables = engine.tables
    with engine.begin() as conn:
        last_as_of = state.get_time(conn, tables, state.IDENTITY_AS_OF)
        last_batch = state.get_int(conn, tables, state.IDENTITY_BATCH)
        config = state.fingerprint(workspace.identity, workspace.normalisation)
        full = (
            last_as_of is None
            or as_of < last_as_of
            or state.flag(conn, tables, state.IDENTITY_NEEDS_FULL)
            or state.get(conn, tables, state.IDENTITY_CONFIG) != config
        )
        max_batch = conn.execute(sa.select(sa.func.max(tables.landings.c.batch))).scalar() or 0
        resolver = Resolver.for_workspace(workspace)
        if full:
            for table in (tables.identities, tables.identity_sets, tables.profiles, tables.profile_merges,
                          tables.profile_aliases, tables.pending_affected):  # fmt: skip
                conn.execute(sa.delete(table))
            rebuilt = _rebuild(conn, engine, resolver, _window(tables, as_of, None, 0))
            counts = (rebuilt.sets, rebuilt.sets, rebuilt.created, rebuilt.merges, rebuilt.blocked)
        else:
            sets = conn.execute(_set_query(tables, _window(tables, as_of, last_as_of, last_batch))).all()
            parsed = [json.loads(r.ids) for r in sets]
            _load_touched_graph(conn, engine, resolver, {(k, v) for pairs in parsed for k, v in pairs})
            set_profiles: list[int | None] = []
            new_sets = 0
            for row, pairs in zip(sets, parsed, strict=True):
                if row.known is not None:
                    resolver.seen_again(pairs, row.first_seen, row.last_seen)
                    set_profiles.append(row.known_profile)
                else:
                    new_sets += 1
                    set_profiles.append(resolver.resolve(pairs, row.first_seen, row.last_seen))
            aliases = {old: new for old, new, _ in resolver.merges}
            set_profiles = [None if p is None else _final(aliases, p) for p in set_profiles]
            _write(conn, engine, resolver, sets, set_profiles, False)
            counts = (
                len(sets),
                new_sets,
                resolver.new_profiles,
                len(resolver.merges),
                resolver.blocked_count,
            )
        _account_users(conn, engine, as_of)
        state.put_time(conn, tables, state.IDENTITY_AS_OF, as_of)
        state.put(conn, tables, state.IDENTITY_BATCH, str(max_batch))
        state.set_flag(conn, tables, state.IDENTITY_NEEDS_FULL, False)
        state.put(conn, tables, state.IDENTITY_CONFIG, config)
        if full:
            state.set_flag(conn, tables, state.EVALUATION_NEEDS_FULL, True)
        profiles = conn.execute(sa.select(sa.func.count()).select_from(tables.profiles)).scalar() or 0
        identifiers = (
            conn.execute(
                sa.select(sa.func.count())
                .select_from(tables.identities)
                .where(tables.identities.c.profile_id.isnot(None))
            ).scalar()
            or 0
        )
    return IdentitySummary(
        mode="full" if full else "incremental",
        sets_processed=counts[0],
        new_sets=counts[1],
        profiles_created=counts[2],
        merges=counts[3],
        limited=resolver.limited,
        blocked=counts[4],
        profiles=profiles,
        identifiers=identifiers,
        affected=profiles if full else len(resolver.touched),
    )


def _account_users(conn: sa.Connection, engine: ComputeEngine, as_of: datetime) -> None:
    """`account_users(group_id, profile_id)`: users belong to the accounts of their group calls."""
    tables = engine.tables
    e, s = tables.events.c, tables.identity_sets
    query = (
        sa.select(e.group_id, s.c.profile_id)
        .select_from(tables.events.join(s, s.c.set_hash == e.set_hash))
        .where(e.type == "group", e.timestamp <= as_of, s.c.profile_id.isnot(None))
        .distinct()
    )
    create_table_as(conn, engine.schema, "account_users", query)


def _write(
    conn: sa.Connection,
    engine: ComputeEngine,
    resolver: Resolver,
    sets: Sequence[Any],
    set_profiles: list[int | None],
    full: bool,
) -> None:
    tables = engine.tables
    merged_away = {old for old, _, _ in resolver.merges}
    if full:
        load_arrow(conn, tables.identities, _identity_rows(resolver, resolver.ids))
    else:
        dirty = set(resolver.dirty)
        for pid in resolver.touched:
            dirty.update(resolver.members.get(pid, []))
        rows = _identity_rows(resolver, dirty)
        scratch = scratch_table(
            conn, engine.schema, "_scratch_dirty", rows.select(["identifier_type", "value"])
        )
        i = tables.identities
        conn.execute(
            sa.delete(i).where(
                sa.exists().where(
                    scratch.c.identifier_type == i.c.identifier_type, scratch.c.value == i.c.value
                )
            )
        )
        conn.execute(sa.text(f"DROP TABLE {engine.name(conn, '_scratch_dirty')}"))
        load_arrow(conn, i, rows)
    s = tables.identity_sets
    set_rows = pa.table(
        {
            "set_hash": [r.set_hash for r in sets],
            "profile_id": set_profiles,
            "first_seen": [r.first_seen for r in sets],
            "last_seen": [r.last_seen for r in sets],
        },
        schema=pa.schema(
            [
                ("set_hash", pa.int64()),
                ("profile_id", pa.int64()),
                ("first_seen", pa.timestamp("us")),
                ("last_seen", pa.timestamp("us")),
            ]
        ),
    )
    if not full and any(r.known is not None for r in sets):
        scratch = scratch_table(
            conn,
            engine.schema,
            "_scratch_sets",
            set_rows.filter(pa.array([r.known is not None for r in sets])),
        )
        conn.execute(
            sa.update(s)
            .where(s.c.set_hash == scratch.c.set_hash)
            .values(
                first_seen=sa.func.least(s.c.first_seen, scratch.c.first_seen),
                last_seen=sa.func.greatest(s.c.last_seen, scratch.c.last_seen),
            )
        )
        conn.execute(sa.text(f"DROP TABLE {engine.name(conn, '_scratch_sets')}"))
    load_arrow(conn, s, set_rows.filter(pa.array([r.known is None for r in sets], type=pa.bool_())))
    if resolver.merges:
        merge_rows = pa.table(
            {
                "merged_profile_id": [m[0] for m in resolver.merges],
                "into_profile_id": [m[1] for m in resolver.merges],
                "merged_at": [m[2] for m in resolver.merges],
            },
            schema=pa.schema(
                [
                    ("merged_profile_id", pa.int64()),
                    ("into_profile_id", pa.int64()),
                    ("merged_at", pa.timestamp("us")),
                ]
            ),
        )
        load_arrow(conn, tables.profile_merges, merge_rows)
        aliases = {old: new for old, new, _ in resolver.merges}
        finals = {old: _final(aliases, old) for old in aliases}
        a = tables.profile_aliases
        finals_table = pa.table(
            {"old_profile_id": list(finals), "profile_id": list(finals.values())},
            schema=pa.schema([("old_profile_id", pa.int64()), ("profile_id", pa.int64())]),
        )
        if not full:
            # Sets and earlier aliases that pointed at a profile merged now follow it to its survivor.
            mapping = scratch_table(conn, engine.schema, "_scratch_merged", finals_table)
            conn.execute(
                sa.update(s)
                .where(s.c.profile_id == mapping.c.old_profile_id)
                .values(profile_id=mapping.c.profile_id)
            )
            conn.execute(
                sa.update(a)
                .where(a.c.profile_id == mapping.c.old_profile_id)
                .values(profile_id=mapping.c.profile_id)
            )
            conn.execute(sa.text(f"DROP TABLE {engine.name(conn, '_scratch_merged')}"))
        load_arrow(conn, a, finals_table)
    p = tables.profiles
    if not full:
        gone = merged_away | {pid for pid in resolver.touched if pid in resolver.created}
        if gone:
            # A work table, not an IN list: an incremental run may touch 100k+ profiles.
            doomed = scratch_table(
                conn,
                engine.schema,
                "_scratch_profiles",
                pa.table({"profile_id": sorted(gone)}, schema=pa.schema([("profile_id", pa.int64())])),
            )
            conn.execute(sa.delete(p).where(p.c.profile_id.in_(sa.select(doomed.c.profile_id))))
            drop_table(conn, engine.schema, "_scratch_profiles")
        live = [pid for pid in resolver.touched if pid in resolver.created]
    else:
        live = list(resolver.created)
    load_arrow(
        conn,
        p,
        pa.table(
            {"profile_id": live, "created_at": [resolver.created[pid] for pid in live]},
            schema=pa.schema([("profile_id", pa.int64()), ("created_at", pa.timestamp("us"))]),
        ),
    )
    if not full and resolver.touched:
        load_arrow(
            conn,
            tables.pending_affected,
            pa.table(
                {"profile_id": sorted(resolver.touched)}, schema=pa.schema([("profile_id", pa.int64())])
            ),
        )


# ------------------------------------------------------------------------------------------ full rebuild


@dataclass(frozen=True)
class _RebuildStats:
    sets: int
    created: int
    merges: int
    blocked: int
    complex_sets: int
    rounds: int


def _rebuild(conn: sa.Connection, engine: ComputeEngine, resolver: Resolver, condition: Any) -> _RebuildStats:
    """Rebuild the graph: simple components at once (see `identity_components`), the others sequentially."""
    args = (conn, engine, resolver.limits, resolver.blocked, condition, PREVIOUS_ID)
    rebuilt = rebuild_duckdb(*args) if engine.is_duckdb else None
    if rebuilt is None:
        rebuilt = rebuild_simple(*args)
    hard = rebuilt.hard
    profiles = [resolver.resolve(r.pairs, r.first_seen, r.last_seen) for r in hard]
    aliases = {old: new for old, new, _ in resolver.merges}
    _write(conn, engine, resolver, hard, [None if p is None else _final(aliases, p) for p in profiles], True)
    return _RebuildStats(
        rebuilt.sets,
        rebuilt.created + resolver.new_profiles,
        rebuilt.merges + len(resolver.merges),
        rebuilt.blocked,
        len(hard),
        rebuilt.rounds,
    )
