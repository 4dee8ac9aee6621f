"""Connected components of the identity graph: identifier sets linked by the identifiers they share.

A component of that graph is a group of sets that may end in one profile. On DuckDB (`rebuild_duckdb`) one
GROUP BY over the events gives each set its times, one query over `set_keys` gives every (set, identifier)
link with identifiers numbered by hash (streamed into numpy), and the rest is numpy on integer arrays:
components by hook and jump (`label_links`, the same rounds as `label_sql` on int32 arrays), per-component
limits and aliases with bincount, survivors and merge times by sorting; the results are written from Arrow.
Elsewhere (`rebuild_simple`) it stays in SQL and the labelling is `label_sql`: each round every component root
hooks onto the smallest root it touches, chains of hooks are collapsed by pointer jumping (log of their length),
and the graph is contracted onto the new roots.
With nodes numbered in a pseudo-random order, the number of roots falls by a constant factor per round, so
rounds grow with log n, not with the diameter of a component.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from activation_pipeline.compute.engine import (
    arrow_view,
    duckdb_arrow,
    duckdb_memory,
    duckdb_memory_limit,
    duckdb_numpy,
    load_arrow,
)
from activation_pipeline.compute.scratch import scratch_table
from activation_pipeline.compute.sqlutil import (
    PickBy,
    ProfileIdHash,
    create_table_as,
    drop_table,
    rename_table,
)

_GRAPH = ("a", "b")


def blocked_pairs_table(conn: sa.Connection, schema: str, blocked: dict[str, frozenset[str]]) -> sa.Table:
    """A work table of the blocked (identifier type, value) pairs."""
    rows = [(kind, value) for kind, values in blocked.items() for value in sorted(values)]
    return scratch_table(
        conn,
        schema,
        "_id_blocked",
        pa.table(
            {"identifier_type": [t for t, _ in rows], "value": [v for _, v in rows]},
            schema=pa.schema([("identifier_type", pa.string()), ("value", pa.string())]),
        ),
    )


def work_table(schema: str | None, name: str, *columns: str) -> sa.TableClause:
    """A lightweight reference to a work table created with `create_table_as`."""
    return sa.table(name, *[sa.column(c) for c in columns], schema=schema)


def count_rows(conn: sa.Connection, table: Any) -> int:
    """The number of rows of a table or subquery."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() or 0)


@dataclass(frozen=True)
class Components:
    """Where the labels went: `table(node, label)` covers every node; `rounds` of SQL propagation (0: numpy)."""

    table: str
    rounds: int


def label_numpy(conn: sa.Connection, schema: str, graph: str, nodes: int, out: str) -> Components:
    """Label nodes 0..nodes-1 by component in numpy (`label_links`); `graph(a, b)` holds the undirected edges."""
    g = work_table(schema, graph, *_GRAPH)
    edges = duckdb_numpy(conn, sa.select(g.c.a, g.c.b), count_rows(conn, g))
    count = len(edges["a"])
    # Each edge is a key its two ends share.
    ends = np.concatenate([edges.pop("a"), edges.pop("b")])
    roots = label_links(ends, np.tile(np.arange(count, dtype=np.int32), 2), nodes, count)
    del ends
    scratch_table(
        conn,
        schema,
        out,
        pa.table(
            {"node": pa.array(np.arange(nodes, dtype=np.int64)), "label": pa.array(roots.astype(np.int64))}
        ),
    )
    return Components(out, 0)


def label_links(
    sets: np.ndarray[Any, Any], keys: np.ndarray[Any, Any], nsets: int, nkeys: int
) -> np.ndarray[Any, Any]:
    """The root of each set 0..nsets-1 (its component's smallest set); `sets[i]` holds key `keys[i]`.

    Hook and jump on int32 arrays: each round every root hooks onto the smallest root sharing a key with it
    (a smaller one, so no cycles), pointers jump to their roots, and a key whose sets all have one root drops
    out (roots only merge). A few bytes per link, where `scipy.sparse.csgraph` wants some 40 per edge (float64
    data and a transposed copy).
    """
    parent = np.arange(nsets, dtype=np.int32)
    smallest = np.empty(nkeys, dtype=np.int32)
    s, k = sets.astype(np.int32, copy=False), keys.astype(np.int32, copy=False)
    while len(s):
        roots = parent[s]
        smallest.fill(nsets)
        np.minimum.at(smallest, k, roots)
        target = smallest[k]
        moving = roots != target
        if not moving.any():
            break
        np.minimum.at(parent, roots[moving], target[moving])
        del roots, target
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
        live = np.zeros(nkeys, dtype=bool)
        live[k[moving]] = True
        keep = live[k]
        s, k = s[keep], k[keep]
        del moving, live, keep
    return parent


def label_sql(conn: sa.Connection, schema: str, graph: str, nodes_query: Any, out: str) -> Components:
    """Label nodes by component in SQL (any dialect); `graph(a, b)` holds undirected edges, `a != b`.

    `nodes_query` selects every node (one column). The label of a component is one of its nodes.
    """
    g = work_table(schema, "_cc_g", *_GRAPH)
    source = work_table(schema, graph, *_GRAPH)
    low, high = sa.func.least(source.c.a, source.c.b), sa.func.greatest(source.c.a, source.c.b)
    create_table_as(
        conn, schema, "_cc_g", sa.select(low.label("a"), high.label("b")).where(low != high).distinct()
    )
    parents = work_table(schema, "_cc_parent", "node", "p")
    create_table_as(
        conn,
        schema,
        "_cc_parent",
        sa.select(g.c.a.label("node"), g.c.a.label("p")).where(sa.false()),
    )
    rounds = 0
    while count_rows(conn, g):
        rounds += 1
        # Every root hooks onto the smallest root next to it that is smaller than itself (no cycles).
        create_table_as(
            conn,
            schema,
            "_cc_hook",
            sa.select(g.c.b.label("node"), sa.func.min(g.c.a).label("p")).group_by(g.c.b),
        )
        _jump(conn, schema, "_cc_hook")
        hook = work_table(schema, "_cc_hook", "node", "p")
        conn.execute(sa.insert(parents).from_select(["node", "p"], sa.select(hook.c.node, hook.c.p)))
        ha, hb = hook.alias("ha"), hook.alias("hb")
        na, nb = sa.func.coalesce(ha.c.p, g.c.a), sa.func.coalesce(hb.c.p, g.c.b)
        contracted = (
            sa.select(sa.func.least(na, nb).label("a"), sa.func.greatest(na, nb).label("b"))
            .select_from(g.outerjoin(ha, ha.c.node == g.c.a).outerjoin(hb, hb.c.node == g.c.b))
            .where(na != nb)
            .distinct()
        )
        create_table_as(conn, schema, "_cc_next", contracted)
        rename_table(conn, schema, "_cc_next", "_cc_g")
    _jump(conn, schema, "_cc_parent")
    nodes = nodes_query.subquery("nodes")
    node = next(iter(nodes.c))
    create_table_as(
        conn,
        schema,
        out,
        sa.select(node.label("node"), sa.func.coalesce(parents.c.p, node).label("label")).select_from(
            nodes.outerjoin(parents, parents.c.node == node)
        ),
    )
    for name in ("_cc_g", "_cc_hook", "_cc_parent"):
        drop_table(conn, schema, name)
    return Components(out, rounds)


def _jump(conn: sa.Connection, schema: str, name: str) -> None:
    """Pointer jumping on `name(node, p)` until every node points at a node that points nowhere."""
    t = work_table(schema, name, "node", "p")
    while True:
        up = t.alias("up")
        following = sa.select(t.c.node, sa.func.coalesce(up.c.p, t.c.p).label("p")).select_from(
            t.outerjoin(up, up.c.node == t.c.p)
        )
        moved = conn.execute(sa.select(sa.func.count()).select_from(t.join(up, up.c.node == t.c.p))).scalar()
        if not moved:
            return
        create_table_as(conn, schema, "_cc_jump", following)
        rename_table(conn, schema, "_cc_jump", name)


# ------------------------------------------------------------------------------------------ full rebuild


@dataclass(frozen=True)
class HardSet:
    """An identifier set left to the sequential resolver (its identifiers as landed, most trusted first)."""

    set_hash: int
    pairs: list[list[str]]
    first_seen: Any
    last_seen: Any
    known: None = None


@dataclass(frozen=True)
class Rebuilt:
    """What the SQL part of a rebuild did, and the sets left to the sequential resolver (in order)."""

    sets: int
    created: int
    merges: int
    blocked: int
    rounds: int
    hard: list[HardSet]


_WORK = ("_id_times", "_id_tie_ids", "_id_sets", "_id_blocked", "_id_keys", "_id_links", "_id_key_stats", "_id_graph", "_id_label",
         "_id_set_label", "_id_setinfo", "_id_limits", "_id_complex", "_id_creating", "_id_survivor",
         "_id_merged")  # fmt: skip


@contextmanager
def any_row_order(conn: sa.Connection) -> Iterator[None]:
    """On DuckDB, let statements write tables in any row order (`rebuild_simple`'s work tables need none, and
    keeping it holds rows in memory); the setting is restored after."""
    if conn.dialect.name != "duckdb":
        yield
        return
    conn.exec_driver_sql("SET preserve_insertion_order = false")
    try:
        yield
    finally:
        try:
            conn.exec_driver_sql("RESET preserve_insertion_order")
        except sa.exc.DBAPIError:  # a failed statement aborted the transaction: drop this connection
            conn.invalidate()


def rebuild_simple(
    conn: sa.Connection,
    engine: Any,
    limits: dict[str, int | None],
    blocked: dict[str, frozenset[str]],
    condition: Any,
    previous_id: str,
    in_numpy: bool | None = None,
) -> Rebuilt:
    """Write the profiles of every simple component; return the sets of the others, in resolution order.

    Sets are resolved in order of (first seen, identifier text). A component is simple when no identifier
    type in it has more values than its limit and no alias (previous id) is in it. It then ends as one
    profile, exactly as the sequential algorithm leaves it: its id is the smallest (creation time, id) among
    the profiles its creating sets (sets none of whose identifiers was in an earlier set) create, each of
    which is merged into it.
    """
    tables, schema = engine.tables, engine.schema
    numpy_path = engine.is_duckdb if in_numpy is None else in_numpy
    e = tables.events.c
    create_table_as(
        conn,
        schema,
        "_id_times",
        sa.select(
            e.set_hash,
            sa.func.min(e.timestamp).label("first_seen"),
            sa.func.max(e.timestamp).label("last_seen"),
        )
        .where(condition)
        .group_by(e.set_hash),
    )
    times = work_table(schema, "_id_times", "set_hash", "first_seen", "last_seen")
    # Sets first seen at the same moment are ordered by their identifier text: read it for those only.
    tied = sa.select(times.c.first_seen).group_by(times.c.first_seen).having(sa.func.count() > 1)
    texts = tables.identifier_sets
    create_table_as(
        conn,
        schema,
        "_id_tie_ids",
        sa.select(texts.c.set_hash, texts.c.ids).where(
            texts.c.set_hash.in_(sa.select(times.c.set_hash).where(times.c.first_seen.in_(tied)))
        ),
    )
    ties = work_table(schema, "_id_tie_ids", "set_hash", "ids")
    order = sa.func.row_number().over(order_by=[times.c.first_seen, ties.c.ids])
    create_table_as(
        conn,
        schema,
        "_id_sets",
        sa.select(times.c.set_hash, times.c.first_seen, times.c.last_seen, order.label("ord")).select_from(
            times.outerjoin(ties, ties.c.set_hash == times.c.set_hash)
        ),
    )
    sets = work_table(schema, "_id_sets", "set_hash", "first_seen", "last_seen", "ord")
    # numpy wants dense node numbers; SQL propagation wants them in no particular order (set hashes).
    node = sets.c.ord if numpy_path else sets.c.set_hash

    blocked_table = blocked_pairs_table(conn, schema, blocked)
    k = tables.set_keys
    is_blocked = sa.exists().where(
        blocked_table.c.identifier_type == k.c.identifier_type, blocked_table.c.value == k.c.value
    )
    joined = k.join(sets, sets.c.set_hash == k.c.set_hash)
    blocked_count = int(
        conn.execute(sa.select(sa.func.count()).select_from(joined).where(is_blocked)).scalar() or 0
    )
    # A previous id links to both the user id and the anonymous id of its value: which one it becomes
    # depends on the order of resolution, so its component holds both (and goes to the resolver).
    plain = k.c.identifier_type != previous_id
    columns = [sets.c.ord, node.label("node"), k.c.pos]
    raw_links = sa.union_all(
        sa.select(
            *columns, k.c.identifier_type.label("t"), k.c.value.label("v"), sa.literal(0).label("alias")
        )
        .select_from(joined)
        .where(plain, ~is_blocked),
        *[
            sa.select(*columns, sa.literal(kind, sa.Text).label("t"), k.c.value.label("v"), sa.literal(1))
            .select_from(joined)
            .where(~plain, ~is_blocked)
            for kind in ("user_id", "anonymous_id")
        ],
    )
    create_table_as(conn, schema, "_id_raw_links", raw_links)
    r = work_table(schema, "_id_raw_links", "ord", "node", "pos", "t", "v", "alias")
    create_table_as(
        conn,
        schema,
        "_id_keys",
        sa.select(r.c.t, r.c.v, sa.func.row_number().over().label("key")).group_by(r.c.t, r.c.v),
    )
    keys = work_table(schema, "_id_keys", "t", "v", "key")
    create_table_as(
        conn,
        schema,
        "_id_links",
        sa.select(r.c.ord, r.c.node, r.c.pos, keys.c.key, r.c.alias).select_from(
            r.join(keys, sa.and_(keys.c.t == r.c.t, keys.c.v == r.c.v))
        ),
    )
    drop_table(conn, schema, "_id_raw_links")
    link = work_table(schema, "_id_links", "ord", "node", "pos", "key", "alias")
    # Per identifier: its first set, a representative set every set holding it links to, when it was
    # first and last seen.
    create_table_as(
        conn,
        schema,
        "_id_key_stats",
        sa.select(
            link.c.key,
            sa.func.min(link.c.ord).label("first_ord"),
            sa.func.min(link.c.node).label("rep"),
            sa.func.min(sets.c.first_seen).label("key_first"),
            sa.func.max(sets.c.last_seen).label("key_last"),
        )
        .select_from(link.join(sets, sets.c.ord == link.c.ord))
        .group_by(link.c.key),
    )
    stats = work_table(schema, "_id_key_stats", "key", "first_ord", "rep", "key_first", "key_last")
    create_table_as(
        conn,
        schema,
        "_id_graph",
        sa.select(link.c.node.label("a"), stats.c.rep.label("b"))
        .select_from(link.join(stats, stats.c.key == link.c.key))
        .where(link.c.node != stats.c.rep)
        .distinct(),
    )
    if numpy_path:
        components = label_numpy(conn, schema, "_id_graph", count_rows(conn, sets) + 1, "_id_label")
    else:
        components = label_sql(conn, schema, "_id_graph", sa.select(sets.c.set_hash), "_id_label")
    label = work_table(schema, "_id_label", "node", "label")
    create_table_as(
        conn,
        schema,
        "_id_set_label",
        sa.select(sets.c.ord, label.c.label).select_from(sets.join(label, label.c.node == node)),
    )
    set_label = work_table(schema, "_id_set_label", "ord", "label")
    create_table_as(
        conn,
        schema,
        "_id_setinfo",
        sa.select(
            link.c.ord,
            (sa.func.min(stats.c.first_ord) == link.c.ord).label("creating"),
            sa.func.max(link.c.alias).label("alias"),
            PickBy(link.c.key, [link.c.pos], sa.true(), last=False).label("first_key"),
        )
        .select_from(link.join(stats, stats.c.key == link.c.key))
        .group_by(link.c.ord),
    )
    info_raw = work_table(schema, "_id_setinfo", "ord", "creating", "alias", "first_key")
    info = (
        sa.select(info_raw, set_label.c.label)
        .select_from(info_raw.join(set_label, set_label.c.ord == info_raw.c.ord))
        .subquery("info")
    )

    bounded = [(kind, limit) for kind, limit in limits.items() if limit is not None]
    limit_table = scratch_table(
        conn,
        schema,
        "_id_limits",
        pa.table(
            {"identifier_type": [k for k, _ in bounded], "lim": [n for _, n in bounded]},
            schema=pa.schema([("identifier_type", pa.string()), ("lim", pa.int64())]),
        ),
    )
    per_kind = (
        sa.select(set_label.c.label, keys.c.t, sa.func.count().label("n"))
        .select_from(
            stats.join(keys, keys.c.key == stats.c.key).join(set_label, set_label.c.ord == stats.c.first_ord)
        )
        .group_by(set_label.c.label, keys.c.t)
        .subquery()
    )
    over = (
        sa.select(per_kind.c.label)
        .join(limit_table, limit_table.c.identifier_type == per_kind.c.t)
        .where(per_kind.c.n > limit_table.c.lim)
    )
    aliased = sa.select(info.c.label).where(info.c.alias == 1)
    create_table_as(conn, schema, "_id_complex", sa.select(sa.union(over, aliased).subquery()))
    complex_labels = work_table(schema, "_id_complex", "label")

    create_table_as(
        conn,
        schema,
        "_id_creating",
        sa.select(info.c.ord, info.c.label, sets.c.first_seen, ProfileIdHash(keys.c.t, keys.c.v).label("pid"))
        .select_from(info.join(sets, sets.c.ord == info.c.ord).join(keys, keys.c.key == info.c.first_key))
        .where(info.c.creating, ~info.c.label.in_(sa.select(complex_labels.c.label))),
    )
    creating = work_table(schema, "_id_creating", "ord", "label", "first_seen", "pid")
    create_table_as(
        conn,
        schema,
        "_id_survivor",
        sa.select(
            creating.c.label,
            PickBy(creating.c.pid, [creating.c.first_seen, creating.c.pid], sa.true(), last=False).label(
                "survivor"
            ),
            sa.func.min(creating.c.first_seen).label("created_at"),
        ).group_by(creating.c.label),
    )
    survivor = work_table(schema, "_id_survivor", "label", "survivor", "created_at")

    conn.execute(
        sa.insert(tables.profiles).from_select(
            ["profile_id", "created_at"], sa.select(survivor.c.survivor, survivor.c.created_at)
        )
    )
    s_cols = ["set_hash", "profile_id", "first_seen", "last_seen"]
    conn.execute(
        sa.insert(tables.identity_sets).from_select(
            s_cols,
            sa.select(sets.c.set_hash, survivor.c.survivor, sets.c.first_seen, sets.c.last_seen).select_from(
                sets.join(set_label, set_label.c.ord == sets.c.ord).join(
                    survivor, survivor.c.label == set_label.c.label
                )
            ),
        )
    )
    conn.execute(
        sa.insert(tables.identity_sets).from_select(
            s_cols,
            sa.select(sets.c.set_hash, sa.null(), sets.c.first_seen, sets.c.last_seen).where(
                ~sets.c.ord.in_(sa.select(info.c.ord))
            ),
        )
    )
    conn.execute(
        sa.insert(tables.identities).from_select(
            ["identifier_type", "value", "profile_id", "first_seen", "last_seen"],
            sa.select(
                keys.c.t, keys.c.v, survivor.c.survivor, stats.c.key_first, stats.c.key_last
            ).select_from(
                stats.join(keys, keys.c.key == stats.c.key)
                .join(set_label, set_label.c.ord == stats.c.first_ord)
                .join(survivor, survivor.c.label == set_label.c.label)
            ),
        )
    )
    # A creating set's profile is merged at the first later set of its component that created nothing (sets
    # are ordered by first seen, so the earliest of the later ones). A join, not a window over every set:
    # only the merged profiles' components are read, and DuckDB's window over all sets does not spill.
    merged = (
        sa.select(creating.c.ord, creating.c.label, creating.c.pid, survivor.c.survivor)
        .select_from(creating.join(survivor, survivor.c.label == creating.c.label))
        .where(creating.c.pid != survivor.c.survivor)
        .subquery("m")
    )
    later = set_label.alias("later")
    create_table_as(
        conn,
        schema,
        "_id_merged",
        sa.select(merged.c.pid, merged.c.survivor, sa.func.min(sets.c.first_seen).label("merged_at"))
        .select_from(
            merged.join(later, sa.and_(later.c.label == merged.c.label, later.c.ord > merged.c.ord))
            .join(sets, sets.c.ord == later.c.ord)
            .outerjoin(creating, creating.c.ord == later.c.ord)
        )
        .where(creating.c.ord.is_(None))
        .group_by(merged.c.pid, merged.c.survivor),
    )
    merges = work_table(schema, "_id_merged", "pid", "survivor", "merged_at")
    conn.execute(
        sa.insert(tables.profile_merges).from_select(
            ["merged_profile_id", "into_profile_id", "merged_at"],
            sa.select(merges.c.pid, merges.c.survivor, merges.c.merged_at),
        )
    )
    conn.execute(
        sa.insert(tables.profile_aliases).from_select(
            ["old_profile_id", "profile_id"], sa.select(merges.c.pid, merges.c.survivor)
        )
    )
    created = count_rows(conn, creating)
    merge_count = count_rows(conn, merges)
    total = count_rows(conn, sets)
    hard = _hard_sets(conn, tables, sets, info, complex_labels)
    for name in _WORK:
        drop_table(conn, schema, name)
    return Rebuilt(total, created, merge_count, blocked_count, components.rounds, hard)


def _hard_sets(conn: sa.Connection, tables: Any, sets: Any, info: Any, complex_labels: Any) -> list[HardSet]:
    """The sets of complex components in resolution order, with every identifier as landed (`set_keys`)."""
    k = tables.set_keys
    rows = conn.execute(
        sa.select(sets.c.set_hash, sets.c.first_seen, sets.c.last_seen, k.c.identifier_type, k.c.value)
        .select_from(info.join(sets, sets.c.ord == info.c.ord).join(k, k.c.set_hash == sets.c.set_hash))
        .where(info.c.label.in_(sa.select(complex_labels.c.label)))
        .order_by(sets.c.ord, k.c.pos)
    )
    hard: list[HardSet] = []
    for row in rows:
        if not hard or hard[-1].set_hash != row.set_hash:
            hard.append(HardSet(row.set_hash, [], row.first_seen, row.last_seen))
        hard[-1].pairs.append([row.identifier_type, row.value])
    return hard


# ------------------------------------------------------------------------------------------ DuckDB: numpy

_log = logging.getLogger(__name__)
_TS = pa.timestamp("us")


class _Steps:
    """Wall time of each step of a rebuild, logged at DEBUG (the identity benchmark prints them)."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        if _log.isEnabledFor(logging.DEBUG):
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            _log.debug("identity rebuild: %-14s %6.2f s  peak %5.0f MB", name, now - self.last, peak)
        self.last = now


def _micros(column: Any) -> np.ndarray[Any, Any]:
    return np.asarray(column.cast(pa.int64()).to_numpy(), dtype=np.int64)


def _set_order(conn: sa.Connection, tables: Any, times: pa.Table) -> np.ndarray[Any, Any]:
    """The sets' resolution order (time first seen, then identifier text): positions into `times`."""
    first = _micros(times.column("first_seen"))
    order = np.argsort(first, kind="stable")
    ranked = first[order]
    tie = ranked[1:] == ranked[:-1]
    if not tie.any():
        return order
    # Sets first seen at the same moment are ordered by their identifier text: read it for those only.
    tied = np.zeros(len(order), dtype=bool)
    tied[1:] |= tie
    tied[:-1] |= tie
    at = order[tied]
    view_data = pa.table({"i": pa.array(at), "set_hash": times.column("set_hash").take(pa.array(at))})
    ids = tables.identifier_sets
    with arrow_view(conn, view_data) as view:
        ranks = duckdb_arrow(
            conn,
            sa.select(view.c.i, sa.func.dense_rank().over(order_by=ids.c.ids).label("r")).select_from(
                view.join(ids, ids.c.set_hash == view.c.set_hash)
            ),
        )
    rank = np.zeros(len(order), dtype=np.int64)
    rank[np.asarray(ranks.column("i").to_numpy(), dtype=np.int64)] = ranks.column("r").to_numpy()
    return np.lexsort((rank, first))


# Bytes `rebuild_duckdb` holds in Python per (set, identifier) link at its peak, the per-set and per-identifier
# arrays spread over the links. With DuckDB's limit lowered by this much, 1M profiles (7.7M links) peaked at
# the limit plus 0.45 GB (1.65 GB with 1.2GB; 1.81 GB before, with DuckDB keeping all of its limit).
_BYTES_PER_LINK = 60
# Rows per insert of the rebuild's results: bounds their Arrow copies (each slice of identities scans `set_keys`).
_WRITE_ROWS = 4_000_000


def _slices(rows: np.ndarray[Any, Any]) -> Iterator[np.ndarray[Any, Any]]:
    """`rows` in slices of at most _WRITE_ROWS."""
    for start in range(0, len(rows), _WRITE_ROWS):
        yield rows[start : start + _WRITE_ROWS]


def numpy_budget(conn: sa.Connection, engine: Any) -> int | None:
    """The bytes `rebuild_duckdb`'s arrays would take, if they fit in half of DuckDB's memory limit (else None).

    DuckDB gives the rest of its limit back while they live (`rebuild_duckdb`), so the process stays near
    the limit. Larger graphs (beyond 10M links, about 1.3M profiles of the identity benchmark's shape, with the
    default 1.2GB) are rebuilt in SQL (`rebuild_simple` with `label_sql`), where DuckDB spills to disk: slower, but
    bounded.
    """
    limit = duckdb_memory_limit(conn)
    arrays = count_rows(conn, engine.tables.set_keys) * _BYTES_PER_LINK
    return arrays if limit is None or arrays * 2 <= limit else None


def rebuild_duckdb(conn: sa.Connection, engine: Any, *args: Any, arrays: int = 0) -> Rebuilt | None:
    """`_rebuild_in_numpy` (same arguments) with DuckDB's limit lowered by `arrays` bytes (see `numpy_budget`)."""
    limit = duckdb_memory_limit(conn)
    with duckdb_memory(conn, engine, None if limit is None else limit - arrays):
        return _rebuild_in_numpy(conn, engine, *args)


def _rebuild_in_numpy(
    conn: sa.Connection,
    engine: Any,
    limits: dict[str, int | None],
    blocked: dict[str, frozenset[str]],
    condition: Any,
    previous_id: str,
) -> Rebuilt | None:
    """`rebuild_simple` on DuckDB with the grouping in numpy: the same result, in a few passes over the data.

    Identifiers are numbered by a 64-bit hash of (type, value), checked by a second (31-bit) hash; on a clash
    it returns None before writing anything and the caller falls back to `rebuild_simple`. One refinement
    over `rebuild_simple`: a previous id whose value is never a user id resolves to the anonymous id whatever
    the order, so it is a plain link and its component can stay simple (same result, fewer sets left to the
    resolver). Memory: integer arrays per (set, identifier) link, per set and per identifier, all in RAM
    (`_BYTES_PER_LINK`); the links arrive batch by batch and the results go out in slices.
    """
    tables, schema = engine.tables, engine.schema
    step = _Steps()
    e, k = tables.events.c, tables.set_keys
    times = duckdb_arrow(
        conn,
        sa.select(
            e.set_hash,
            sa.func.min(e.timestamp).label("first_seen"),
            sa.func.max(e.timestamp).label("last_seen"),
        )
        .where(condition)
        .group_by(e.set_hash),
    )
    step("set times")
    order = _set_order(conn, tables, times)
    n = len(order)
    hashes = np.asarray(times.column("set_hash").to_numpy(), dtype=np.int64)[order]
    firsts = _micros(times.column("first_seen"))[order]
    lasts = _micros(times.column("last_seen"))[order]
    del times
    del order
    step("set order")

    blocked_table = blocked_pairs_table(conn, schema, blocked)
    kinds = sorted(
        {r[0] for r in conn.execute(sa.select(k.c.identifier_type).distinct())} | {"user_id", "anonymous_id"}
    )
    with arrow_view(
        conn, pa.table({"set_hash": pa.array(hashes), "ord": pa.array(np.arange(n, dtype=np.int32))})
    ) as sets:
        found = k.join(sets, sets.c.set_hash == k.c.set_hash)
        is_blocked = sa.and_(
            blocked_table.c.identifier_type == k.c.identifier_type, blocked_table.c.value == k.c.value
        )
        blocked_count = int(
            conn.execute(
                sa.select(sa.func.count()).select_from(found.join(blocked_table, is_blocked))
            ).scalar()
            or 0
        )
        usable = found.outerjoin(blocked_table, is_blocked)
        unblocked = blocked_table.c.value.is_(None)

        def link_columns(kind: Any) -> list[Any]:
            code = sa.case({name: i for i, name in enumerate(kinds)}, value=kind, else_=-1)
            return [
                sets.c.ord,
                k.c.pos,
                sa.cast(code, sa.SmallInteger).label("kind"),
                sa.func.hash(kind, k.c.value).label("h1"),
                sa.cast(
                    sa.func.hash(kind + sa.func.chr(31) + k.c.value).op("&")(0x7FFFFFFF), sa.Integer
                ).label("h2"),
            ]

        plain = k.c.identifier_type != previous_id
        # A previous id is read as an anonymous id, and also as a user id (`hu`) if it could be one.
        no_user: Any = sa.literal_column("0::UBIGINT").label("hu")
        anonymous = sa.literal("anonymous_id", sa.Text)
        # Work tables, not CTEs: DuckDB spills them to disk, and the links reach numpy batch by batch (a
        # materialised result or an Arrow table of every link did not fit in 1.2GB at 3M profiles).
        with any_row_order(conn):
            create_table_as(
                conn,
                schema,
                "_id_raw_links",
                sa.union_all(
                    sa.select(*link_columns(k.c.identifier_type), no_user, sa.false().label("alias"))
                    .select_from(usable)
                    .where(plain, unblocked),
                    sa.select(
                        *link_columns(anonymous),
                        sa.func.hash(sa.literal("user_id", sa.Text), k.c.value),
                        sa.true(),
                    )
                    .select_from(usable)
                    .where(~plain, unblocked),
                ),
            )
    drop_table(conn, schema, "_id_blocked")
    raw = work_table(schema, "_id_raw_links", "ord", "pos", "kind", "h1", "h2", "hu", "alias")
    with any_row_order(conn):
        # Identifiers numbered by their hash (checked against the second hash below).
        create_table_as(
            conn,
            schema,
            "_id_numbers",
            sa.select(raw.c.h1, (sa.func.row_number().over() - 1).label("key")).group_by(raw.c.h1),
        )
    numbers = work_table(schema, "_id_numbers", "h1", "key")
    user = numbers.alias("u")
    links = duckdb_numpy(
        conn,
        sa.select(
            raw.c.ord,
            raw.c.pos,
            raw.c.kind,
            raw.c.h2,
            raw.c.alias,
            sa.cast(numbers.c.key, sa.Integer).label("key"),
            sa.cast(sa.func.coalesce(user.c.key, -1), sa.Integer).label("user_key"),
        ).select_from(
            raw.join(numbers, numbers.c.h1 == raw.c.h1).outerjoin(
                user, sa.and_(raw.c.alias, user.c.h1 == raw.c.hu)
            )
        ),
        count_rows(conn, raw),
    )
    for name in ("_id_raw_links", "_id_numbers"):
        drop_table(conn, schema, name)
    step("links")

    ords, pos, link_kind, key, h2 = (links.pop(c) for c in ("ord", "pos", "kind", "key", "h2"))
    alias_rows = np.flatnonzero(links.pop("alias"))
    user_key = links.pop("user_key")[alias_rows]
    del links

    nkeys = int(key.max()) + 1 if len(key) else 0
    second = np.zeros(nkeys, dtype=np.int32)
    second[key] = h2
    if np.any(second[key] != h2):
        return None  # two identifiers share a hash: let SQL number them
    del second, h2
    key_kind = np.zeros(nkeys, dtype=np.int16)
    key_kind[key] = link_kind
    key_alias = np.zeros(nkeys, dtype=bool)
    # A previous id whose value is nowhere a user id always resolves to the anonymous id (a plain link).
    # Otherwise which one it becomes depends on the order of resolution: its set links to both, and its
    # component goes to the resolver.
    ambiguous = np.flatnonzero(user_key >= 0)
    ambiguous = ambiguous[key_kind[user_key[ambiguous]] == kinds.index("user_id")]
    if len(ambiguous):
        rows = alias_rows[ambiguous]
        key_alias[key[rows]] = True
        key_alias[user_key[ambiguous]] = True
        ords = np.concatenate([ords, ords[rows]])
        pos = np.concatenate([pos, pos[rows]])
        key = np.concatenate([key, user_key[ambiguous].astype(np.int32)])
        del rows
    del user_key, ambiguous, link_kind, alias_rows
    first_ord = np.full(nkeys, n, dtype=np.int32)
    np.minimum.at(first_ord, key, ords)
    key_last = np.full(nkeys, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(key_last, key, lasts[ords])
    step("identifiers")

    # Components: sets joined by the identifiers they share, numbered 0..ncomp-1.
    root = label_links(ords, key, n, nkeys)
    is_root = root == np.arange(n, dtype=np.int32)
    ncomp = int(is_root.sum())
    set_label = (np.cumsum(is_root, dtype=np.int32) - 1)[root]
    del root, is_root
    key_label = set_label[first_ord]
    step("components")

    # Per set: does it hold identifiers (else no profile), is it creating (no identifier seen before), and
    # its first identifier (smallest position) for the id of the profile it creates.
    has_links = np.zeros(n, dtype=bool)
    has_links[ords] = True
    creating = has_links.copy()
    creating[ords[first_ord[key] != ords]] = False
    best = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, ords, (pos.astype(np.int64) << 32) | key)
    # Per component: an identifier type over its limit, or an alias, leaves it to the resolver.
    complex_comp = np.zeros(ncomp, dtype=bool)
    for kind, limit in limits.items():
        if limit is not None and kind in kinds:
            counts = np.bincount(key_label[key_kind == kinds.index(kind)], minlength=ncomp)
            complex_comp |= counts > limit
    complex_comp[key_label[key_alias]] = True
    simple_set = has_links & ~complex_comp[set_label]
    hard_set = has_links & complex_comp[set_label]
    # The representative link of each identifier: one in its first set (gives its type and value).
    rep = np.empty(nkeys, dtype=np.int64)
    at_first = np.flatnonzero(ords == first_ord[key])
    rep[key[at_first]] = at_first
    del at_first, key, ords
    step("flags")

    # The profile each creating set creates; the survivor of a component is the oldest (time, id).
    # (A previous id in a simple component is read as an anonymous id.)
    read_as = sa.case((k.c.identifier_type == previous_id, "anonymous_id"), else_=k.c.identifier_type)
    creators = np.flatnonzero(creating & simple_set)
    with arrow_view(
        conn,
        pa.table(
            {
                "i": pa.array(np.arange(len(creators), dtype=np.int64)),
                "set_hash": pa.array(hashes[creators]),
                "pos": pa.array((best[creators] >> 32).astype(np.int32)),
            }
        ),
    ) as first_keys:
        pid_rows = duckdb_arrow(
            conn,
            sa.select(first_keys.c.i, ProfileIdHash(read_as, k.c.value).label("pid")).select_from(
                first_keys.join(
                    k, sa.and_(k.c.set_hash == first_keys.c.set_hash, k.c.pos == first_keys.c.pos)
                )
            ),
        )
    pid = np.zeros(len(creators), dtype=np.int64)
    pid[np.asarray(pid_rows.column("i").to_numpy(), dtype=np.int64)] = pid_rows.column("pid").to_numpy()
    del pid_rows
    creator_label = set_label[creators]
    pick = np.lexsort((pid, firsts[creators], creator_label))
    winners = pick[np.r_[True, creator_label[pick][1:] != creator_label[pick][:-1]]] if len(pick) else pick
    survivor = np.zeros(ncomp, dtype=np.int64)
    survivor[creator_label[winners]] = pid[winners]
    step("survivors")

    # A creating set's profile is merged at the first later set of its component that created nothing.
    members = np.flatnonzero(simple_set)
    members = members[np.argsort(set_label[members], kind="stable")]
    later = np.flatnonzero(~creating[members])
    merged = np.flatnonzero(pid != survivor[creator_label])
    position = np.empty(n, dtype=np.int64)
    position[members] = np.arange(len(members))
    next_free = later[np.searchsorted(later, position[creators[merged]], side="right")]
    merged_at = firsts[members[next_free]]
    del members, later, position, next_free, creating, has_links, best
    step("merges")

    load_arrow(
        conn,
        tables.profiles,
        pa.table(
            {
                "profile_id": pa.array(pid[winners]),
                "created_at": pa.array(firsts[creators[winners]]).cast(_TS),
            }
        ),
    )
    for part in _slices(np.flatnonzero(~hard_set)):
        load_arrow(
            conn,
            tables.identity_sets,
            pa.table(
                {
                    "set_hash": pa.array(hashes[part]),
                    "profile_id": pa.array(survivor[set_label[part]], mask=~simple_set[part]),
                    "first_seen": pa.array(firsts[part]).cast(_TS),
                    "last_seen": pa.array(lasts[part]).cast(_TS),
                }
            ),
        )
    load_arrow(
        conn,
        tables.profile_merges,
        pa.table(
            {
                "merged_profile_id": pa.array(pid[merged]),
                "into_profile_id": pa.array(survivor[creator_label[merged]]),
                "merged_at": pa.array(merged_at).cast(_TS),
            }
        ),
    )
    load_arrow(
        conn,
        tables.profile_aliases,
        pa.table(
            {"old_profile_id": pa.array(pid[merged]), "profile_id": pa.array(survivor[creator_label[merged]])}
        ),
    )
    for part in _slices(np.flatnonzero(~complex_comp[key_label])):
        found = pa.table(
            {
                "set_hash": pa.array(hashes[first_ord[part]]),
                "pos": pa.array(pos[rep[part]].astype(np.int32)),
                "profile_id": pa.array(survivor[key_label[part]]),
                "first_seen": pa.array(firsts[first_ord[part]]).cast(_TS),
                "last_seen": pa.array(key_last[part]).cast(_TS),
            }
        )
        with arrow_view(conn, found) as found_keys:
            conn.execute(
                sa.insert(tables.identities).from_select(
                    ["identifier_type", "value", "profile_id", "first_seen", "last_seen"],
                    sa.select(
                        read_as,
                        k.c.value,
                        found_keys.c.profile_id,
                        found_keys.c.first_seen,
                        found_keys.c.last_seen,
                    ).select_from(
                        found_keys.join(
                            k, sa.and_(k.c.set_hash == found_keys.c.set_hash, k.c.pos == found_keys.c.pos)
                        )
                    ),
                )
            )
        del found
    step("write")
    hard_ords = np.flatnonzero(hard_set)
    hard: list[HardSet] = []
    if len(hard_ords):
        with arrow_view(
            conn,
            pa.table(
                {
                    "set_hash": pa.array(hashes[hard_ords]),
                    "ord": pa.array(hard_ords.astype(np.int64)),
                    "first_seen": pa.array(firsts[hard_ords]).cast(_TS),
                    "last_seen": pa.array(lasts[hard_ords]).cast(_TS),
                }
            ),
        ) as hv:
            rows = duckdb_arrow(
                conn,
                sa.select(hv.c.set_hash, hv.c.first_seen, hv.c.last_seen, k.c.identifier_type, k.c.value)
                .select_from(hv.join(k, k.c.set_hash == hv.c.set_hash))
                .order_by(hv.c.ord, k.c.pos),
            )
        columns = [rows.column(name).to_pylist() for name in rows.column_names]
        del rows
        for set_hash, first_seen, last_seen, kind, value in zip(*columns, strict=True):
            if not hard or hard[-1].set_hash != set_hash:
                hard.append(HardSet(set_hash, [], first_seen, last_seen))
            hard[-1].pairs.append([kind, value])
    step(f"hard sets ({len(hard)})")
    return Rebuilt(n, len(creators), len(merged), blocked_count, 0, hard)
