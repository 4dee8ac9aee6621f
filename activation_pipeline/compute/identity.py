"""Identity resolution: merge identifiers seen together into profiles, honouring limits and blocked values.

Messages are reduced to their distinct identifier sets, which are processed in order of first appearance
(time, then the set's text). A set whose identifiers belong to several profiles merges them into the oldest
one, unless a per-identifier limit would be exceeded; then the set's least trusted identifier is dropped and
the set is tried again. Blocked values never match or merge. Profiles only grow, so a set seen again later
would resolve the same way: an incremental run only resolves sets that are new since the last run, which
gives the same graph as a full rebuild as long as events arrive in time order. In that run the sets seen
before (most of them) only move first/last seen times, in SQL; `Resolver` gets the new sets (and known
ones holding an alias) and loads only the profiles their identifiers reach, so its work follows the
size of the change, not of the graph.

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
from activation_pipeline.compute.identity_components import (
    any_row_order,
    blocked_pairs_table,
    count_rows,
    numpy_budget,
    rebuild_duckdb,
    rebuild_simple,
    work_table,
)
from activation_pipeline.compute.ingest import PREVIOUS_ID
from activation_pipeline.compute.schema import Tables
from activation_pipeline.compute.scratch import scratch_table
from activation_pipeline.compute.sqlutil import create_table_as, drop_table, table_columns
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
    stored_owners: set[int] = field(default_factory=set)
    stored_unowned: set[Key] = field(default_factory=set)
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
                self.stored_owners.add(r.profile_id)
            else:
                self.stored_unowned.add(key)
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


def _incremental(
    conn: sa.Connection, engine: ComputeEngine, resolver: Resolver, condition: Any
) -> tuple[int, int, int]:
    """Bring the graph up to date with the sets of `condition`; return (sets, new sets, blocked values).

    A set resolved in an earlier run (known) only moves its identifiers' and its own first/last seen
    times: that is done in SQL, whatever the number of such sets. Only new sets, and known sets holding an
    alias (its previous id becomes a user or an anonymous id according to the graph at that point), go
    through `Resolver`, which loads the part of the graph their identifiers reach.
    """
    tables, schema = engine.tables, engine.schema
    e, s, k, i = tables.events.c, tables.identity_sets, tables.set_keys, tables.identities
    times = (
        sa.select(
            e.set_hash,
            sa.func.min(e.timestamp).label("first_seen"),
            sa.func.max(e.timestamp).label("last_seen"),
        )
        .where(condition)
        .group_by(e.set_hash)
        .subquery("t")
    )
    texts = tables.identifier_sets
    window = sa.select(times.c.set_hash, texts.c.ids, times.c.first_seen, times.c.last_seen).select_from(
        times.outerjoin(texts, texts.c.set_hash == times.c.set_hash)
    )
    # The window's sets, the stored rows of those already known (a semi-join whose lookup side is the
    # window, not every set), then the two together.
    create_table_as(conn, schema, "_inc_window", window)
    win = work_table(schema, "_inc_window", "set_hash", "ids", "first_seen", "last_seen")
    create_table_as(
        conn,
        schema,
        "_inc_known",
        sa.select(s.c.set_hash, s.c.profile_id).where(s.c.set_hash.in_(sa.select(win.c.set_hash))),
    )
    known = work_table(schema, "_inc_known", "set_hash", "profile_id")
    create_table_as(
        conn,
        schema,
        "_inc_sets",
        sa.select(
            win, known.c.profile_id.label("known_profile"), known.c.set_hash.label("known")
        ).select_from(win.outerjoin(known, known.c.set_hash == win.c.set_hash)),
    )
    w = work_table(
        schema, "_inc_sets", "set_hash", "ids", "first_seen", "last_seen", "known_profile", "known"
    )
    # The identifiers of the known sets: on DuckDB read from the sets' own `ids` (what `set_keys` holds,
    # parsed from the few window rows instead of scanning every set's keys); elsewhere `set_keys`, by index.
    if engine.is_duckdb:
        pairs = (
            sa.select(
                w.c.set_hash,
                w.c.first_seen,
                w.c.last_seen,
                sa.func.unnest(sa.func.json_transform(w.c.ids, sa.literal_column("'[[\"VARCHAR\"]]'"))).label(
                    "pair"
                ),
            )
            .where(w.c.known.isnot(None))
            .subquery("u")
        )
        known_keys = sa.select(
            pairs.c.set_hash,
            sa.func.list_extract(pairs.c.pair, 1).label("identifier_type"),
            sa.func.list_extract(pairs.c.pair, 2).label("value"),
            pairs.c.first_seen,
            pairs.c.last_seen,
        ).subquery("kk")
    else:
        known_keys = (
            sa.select(k.c.set_hash, k.c.identifier_type, k.c.value, w.c.first_seen, w.c.last_seen)
            .select_from(k.join(w, w.c.set_hash == k.c.set_hash))
            .where(w.c.known.isnot(None))
            .subquery("kk")
        )
    blocked = blocked_pairs_table(conn, schema, resolver.blocked)
    create_table_as(
        conn,
        schema,
        "_inc_keys",
        sa.select(
            known_keys.c.set_hash,
            known_keys.c.identifier_type,
            known_keys.c.value,
            blocked.c.value.isnot(None).label("blocked"),
            known_keys.c.first_seen,
            known_keys.c.last_seen,
        ).select_from(
            known_keys.outerjoin(
                blocked,
                sa.and_(
                    blocked.c.identifier_type == known_keys.c.identifier_type,
                    blocked.c.value == known_keys.c.value,
                ),
            )
        ),
    )
    keys = work_table(
        schema, "_inc_keys", "set_hash", "identifier_type", "value", "blocked", "first_seen", "last_seen"
    )
    aliased = sa.select(keys.c.set_hash).where(keys.c.identifier_type == PREVIOUS_ID)
    plain = keys.c.set_hash.not_in(aliased)

    # Known sets without an alias: times only, in SQL.
    sql_blocked = int(
        conn.execute(sa.select(sa.func.count()).select_from(keys).where(keys.c.blocked, plain)).scalar() or 0
    )
    create_table_as(
        conn,
        schema,
        "_inc_seen",
        sa.select(
            keys.c.identifier_type,
            keys.c.value,
            sa.func.min(keys.c.first_seen).label("first_seen"),
            sa.func.max(keys.c.last_seen).label("last_seen"),
        )
        .where(sa.not_(keys.c.blocked), plain)
        .group_by(keys.c.identifier_type, keys.c.value),
    )
    seen = work_table(schema, "_inc_seen", "identifier_type", "value", "first_seen", "last_seen")
    same_key = sa.and_(i.c.identifier_type == seen.c.identifier_type, i.c.value == seen.c.value)
    matched = conn.execute(
        sa.update(i)
        .where(same_key)
        .values(
            first_seen=sa.func.least(i.c.first_seen, seen.c.first_seen),
            last_seen=sa.func.greatest(i.c.last_seen, seen.c.last_seen),
        )
    ).rowcount
    if matched != count_rows(conn, seen):
        # Not expected (a known set's identifiers were stored when it was resolved), but a full run
        # would hold them: add the missing ones without a profile, as `Resolver.seen_again` would.
        conn.execute(
            sa.insert(i).from_select(
                ["identifier_type", "value", "profile_id", "first_seen", "last_seen"],
                sa.select(
                    seen.c.identifier_type,
                    seen.c.value,
                    sa.cast(sa.null(), sa.BigInteger),
                    seen.c.first_seen,
                    seen.c.last_seen,
                ).where(~sa.exists().where(same_key)),
            )
        )
    conn.execute(
        sa.update(s)
        .where(
            s.c.set_hash == w.c.set_hash,
            w.c.known.isnot(None),
            sa.or_(w.c.first_seen < s.c.first_seen, w.c.last_seen > s.c.last_seen),
        )
        .values(
            first_seen=sa.func.least(s.c.first_seen, w.c.first_seen),
            last_seen=sa.func.greatest(s.c.last_seen, w.c.last_seen),
        )
    )
    total = int(conn.execute(sa.select(sa.func.count()).select_from(w)).scalar() or 0)

    # New sets and known sets with an alias: the sequential resolver, in order of first appearance.
    sets = conn.execute(
        sa.select(w)
        .where(sa.or_(w.c.known.is_(None), w.c.set_hash.in_(aliased)))
        .order_by(w.c.first_seen, w.c.ids)
    ).all()
    for name in ("_inc_seen", "_inc_keys", "_inc_sets", "_inc_known", "_inc_window", "_id_blocked"):
        drop_table(conn, schema, name)
    parsed = [json.loads(r.ids) for r in sets]
    if sets:
        _load_touched_graph(conn, engine, resolver, {(t, v) for pairs in parsed for t, v in pairs})
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
    if sets:
        _write(conn, engine, resolver, sets, set_profiles, False)
    return total, new_sets, sql_blocked + resolver.blocked_count


def _load_touched_graph(
    conn: sa.Connection, engine: ComputeEngine, resolver: Resolver, keys: set[Key]
) -> None:
    """Load the identifiers `keys` (a previous id as both kinds) and every identifier of their profiles."""
    tables, schema = engine.tables, engine.schema
    lookup: set[Key] = set()
    for kind, value in keys:
        if kind == PREVIOUS_ID:
            lookup.update({("user_id", value), ("anonymous_id", value)})
        else:
            lookup.add((kind, value))
    scratch = scratch_table(
        conn,
        schema,
        "_scratch_keys",
        pa.table(
            {"identifier_type": [k for k, _ in lookup], "value": [v for _, v in lookup]},
            schema=pa.schema([("identifier_type", pa.string()), ("value", pa.string())]),
        ),
    )
    i, p = tables.identities, tables.profiles
    # The identifiers found, then their owners' identifiers: two joins, not one OR (which scans per row).
    create_table_as(
        conn,
        schema,
        "_scratch_found",
        sa.select(i).join(
            scratch, sa.and_(scratch.c.identifier_type == i.c.identifier_type, scratch.c.value == i.c.value)
        ),
    )
    found = work_table(schema, "_scratch_found", *i.c.keys())
    owners = sa.select(found.c.profile_id).where(found.c.profile_id.isnot(None)).distinct()
    rows = conn.execute(
        sa.union_all(
            sa.select(i).where(i.c.profile_id.in_(owners)),
            sa.select(found).where(found.c.profile_id.is_(None)),
        )
    ).all()
    created = conn.execute(sa.select(p).where(p.c.profile_id.in_(owners))).all()
    resolver.load(rows, created)
    drop_table(conn, schema, "_scratch_found")
    drop_table(conn, schema, "_scratch_keys")


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
                _empty(conn, table)
            rebuilt = _rebuild(conn, engine, resolver, _window(tables, as_of, None, 0))
            _account_users(conn, engine, as_of)
            counts = (rebuilt.sets, rebuilt.sets, rebuilt.created, rebuilt.merges, rebuilt.blocked)
        else:
            window = _window(tables, as_of, last_as_of, last_batch)
            sets, new_sets, blocked = _incremental(conn, engine, resolver, window)
            _account_users(conn, engine, as_of, window, resolver.merges)
            counts = (sets, new_sets, resolver.new_profiles, len(resolver.merges), blocked)
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


def _empty(conn: sa.Connection, table: sa.Table) -> None:
    """Remove every row of a graph table before a rebuild.

    DuckDB keeps a deleted row's version in memory until the transaction ends (some 600 MB for a 10M-profile
    graph, which then ran out of 1.2GB): there the table is dropped and created again instead.
    """
    if conn.dialect.name == "duckdb":
        table.drop(conn)
        table.create(conn)
    else:
        conn.execute(sa.delete(table))


def _account_users(
    conn: sa.Connection,
    engine: ComputeEngine,
    as_of: datetime,
    window: Any = None,
    merges: Sequence[tuple[int, int, datetime]] = (),
) -> None:
    """`account_users(group_id, profile_id)`: users belong to the accounts of their group calls.

    Rebuilt from every group call up to `as_of` without a `window`; with one, the group calls of the
    window are added and the rows of profiles merged in this run follow them to their survivors.
    """
    tables, schema = engine.tables, engine.schema
    e, s = tables.events.c, tables.identity_sets

    def group_calls(condition: Any) -> sa.Select[Any]:
        return (
            sa.select(e.group_id, s.c.profile_id)
            .select_from(tables.events.join(s, s.c.set_hash == e.set_hash))
            .where(e.type == "group", e.group_id.isnot(None), condition, s.c.profile_id.isnot(None))
        )

    if window is None or not table_columns(conn, schema, "account_users"):
        full = group_calls(_window(tables, as_of, None, 0)).distinct()
        create_table_as(conn, schema, "account_users", full)
        return
    fresh = group_calls(window)
    au = work_table(schema, "account_users", "group_id", "profile_id")
    parts: list[Any] = [fresh]
    if merges:
        aliases = {old: new for old, new, _ in merges}
        mapping = scratch_table(
            conn,
            schema,
            "_scratch_account_merged",
            pa.table(
                {"old_profile_id": list(aliases), "profile_id": [_final(aliases, old) for old in aliases]},
                schema=pa.schema([("old_profile_id", pa.int64()), ("profile_id", pa.int64())]),
            ),
        )
        parts.append(
            sa.select(au.c.group_id, mapping.c.profile_id).select_from(
                au.join(mapping, au.c.profile_id == mapping.c.old_profile_id)
            )
        )
    create_table_as(conn, schema, "_inc_account_users", sa.union(*parts))
    if merges:
        conn.execute(sa.delete(au).where(au.c.profile_id.in_(sa.select(mapping.c.old_profile_id))))
        drop_table(conn, schema, "_scratch_account_merged")
    new = work_table(schema, "_inc_account_users", "group_id", "profile_id")
    conn.execute(
        sa.insert(au).from_select(
            ["group_id", "profile_id"],
            sa.select(new.c.group_id, new.c.profile_id).where(
                ~sa.exists().where(au.c.group_id == new.c.group_id, au.c.profile_id == new.c.profile_id)
            ),
        )
    )
    drop_table(conn, schema, "_inc_account_users")


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
        # Every identifier the resolver holds is stored again: it holds whole profiles (every identifier
        # of each profile it loaded) and the unowned identifiers it loaded, so these are deleted by
        # profile id (an integer join) and by key among the unowned rows only, never by key over all rows.
        i = tables.identities
        if resolver.stored_owners:
            owners = scratch_table(
                conn,
                engine.schema,
                "_scratch_owners",
                pa.table(
                    {"profile_id": sorted(resolver.stored_owners)},
                    schema=pa.schema([("profile_id", pa.int64())]),
                ),
            )
            conn.execute(sa.delete(i).where(i.c.profile_id.in_(sa.select(owners.c.profile_id))))
            drop_table(conn, engine.schema, "_scratch_owners")
        if resolver.stored_unowned:
            unowned = scratch_table(
                conn,
                engine.schema,
                "_scratch_unowned",
                _identity_rows(resolver, resolver.stored_unowned).select(["identifier_type", "value"]),
            )
            conn.execute(
                sa.delete(i).where(
                    i.c.profile_id.is_(None),
                    sa.exists().where(
                        unowned.c.identifier_type == i.c.identifier_type, unowned.c.value == i.c.value
                    ),
                )
            )
            drop_table(conn, engine.schema, "_scratch_unowned")
        load_arrow(conn, i, _identity_rows(resolver, resolver.ids))
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
    arrays = numpy_budget(conn, engine) if engine.is_duckdb else None
    in_numpy = arrays is not None
    rebuilt = rebuild_duckdb(*args, arrays=arrays) if arrays is not None else None
    if rebuilt is None:
        with any_row_order(conn):
            rebuilt = rebuild_simple(*args, in_numpy=in_numpy)
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
