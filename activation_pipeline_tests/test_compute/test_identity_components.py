"""Identity as connected components: same graph as the sequential resolver, O(log n) SQL rounds, stable ids."""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

from activation_pipeline.compute import identity, identity_components
from activation_pipeline.compute.engine import ComputeEngine, duckdb_memory_limit
from activation_pipeline.compute.identity import Resolver, _final, profile_id_for
from activation_pipeline.compute.identity_components import label_links, label_numpy, label_sql, work_table
from activation_pipeline.compute.pipeline import ComputePipeline
from activation_pipeline.compute.scratch import scratch_table
from activation_pipeline.config import Workspace

from .conftest import PG_URL, Messages, at, drop_schemas, make_workspace

UNLIMITED_DEVICE = "\n    device_id: {custom: true}\n"


def _workspace(tmp_path: Path) -> Workspace:
    from .conftest import BASE_YAML

    return make_workspace(
        tmp_path, base=BASE_YAML.replace("\n  blocked_values", UNLIMITED_DEVICE + "  blocked_values")
    )


def _graph_table(pipeline: ComputePipeline) -> dict[str, list[tuple[Any, ...]]]:
    tables = pipeline.engine.tables
    out = {}
    for name, table in (
        ("identities", tables.identities),
        ("sets", tables.identity_sets),
        ("profiles", tables.profiles),
        ("aliases", tables.profile_aliases),
    ):
        out[name] = sorted((tuple(r.values()) for r in pipeline.read(sa.select(table)).to_pylist()), key=repr)
    merges = pipeline.read(sa.select(tables.profile_merges)).to_pylist()
    out["merges"] = sorted((m["merged_profile_id"], m["into_profile_id"]) for m in merges)
    return out


def _sequential(
    pipeline: ComputePipeline, workspace: Workspace, as_of: str
) -> dict[str, list[tuple[Any, ...]]]:
    """The graph the all-sequential resolver builds from the same events (the behaviour before components)."""
    e, texts = pipeline.engine.tables.events.c, pipeline.engine.tables.identifier_sets.c
    rows = pipeline.read(
        sa.select(
            e.set_hash,
            sa.func.min(texts.ids).label("ids"),
            sa.func.min(e.timestamp).label("first_seen"),
            sa.func.max(e.timestamp).label("last_seen"),
        )
        .where(e.timestamp <= at(as_of).replace(tzinfo=None), e.set_hash == texts.set_hash)
        .group_by(e.set_hash)
    ).to_pylist()
    rows.sort(key=lambda r: (r["first_seen"], r["ids"]))
    resolver = Resolver.for_workspace(workspace)
    profiles = [resolver.resolve(json.loads(r["ids"]), r["first_seen"], r["last_seen"]) for r in rows]
    aliases = {old: new for old, new, _ in resolver.merges}
    return {
        "identities": sorted(
            ((k[0], k[1], v.owner, v.first, v.last) for k, v in resolver.ids.items()), key=repr
        ),
        "sets": sorted(
            (
                (r["set_hash"], None if p is None else _final(aliases, p), r["first_seen"], r["last_seen"])
                for r, p in zip(rows, profiles, strict=True)
            ),
            key=repr,
        ),
        "profiles": sorted(resolver.created.items(), key=repr),
        "aliases": sorted(((old, _final(aliases, old)) for old in aliases), key=repr),
    }


def _random_messages(messages: Messages, seed: int, count: int = 260) -> None:
    rng = random.Random(seed)
    users = [f"u{i}" for i in range(18)]
    anons = [f"a{i}" for i in range(40)] + ["unknown"]
    emails = [f"e{i}@x.io" for i in range(12)] + ["shared@example.com"]
    phones = [f"+1555000{i:04d}" for i in range(6)]
    devices = [f"d{i}" for i in range(25)]
    for n in range(count):
        when = f"2026-10-{1 + n * 9 // count:02d}T{rng.randrange(24):02d}:{rng.randrange(60):02d}"
        roll = rng.random()
        if roll < 0.08:
            messages.alias(when, user=rng.choice(users), previous=rng.choice(anons + users[:4]))
            continue
        traits: dict[str, Any] = {}
        if rng.random() < 0.35:
            traits["email"] = rng.choice(emails)
        if rng.random() < 0.15:
            traits["phone"] = rng.choice(phones)
        if rng.random() < 0.4:
            traits["device_id"] = rng.choice(devices)
        if rng.random() < 0.05:
            traits["crm_id"] = f"C{rng.randrange(5)}"
        user = rng.choice(users) if rng.random() < 0.4 else None
        anon = rng.choice(anons) if rng.random() < 0.8 or not (user or traits) else None
        messages.identify(when, user=user, anon=anon, **traits)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rebuild_gives_the_sequential_resolvers_graph(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages, seed: int
) -> None:
    """Limits, blocked values and aliases in random data: components give exactly the sequential result."""
    workspace = _workspace(tmp_path)
    _random_messages(messages, seed)
    messages.write()
    pipeline = ComputePipeline(workspace, compute_engine)
    pipeline.land()
    summary = pipeline.resolve_identities(at("2026-10-12T00:00"))
    assert summary.mode == "full" and summary.limited > 0 and summary.blocked > 0
    got = _graph_table(pipeline)
    expected = _sequential(pipeline, workspace, "2026-10-12T00:00")
    for name in ("identities", "sets", "profiles", "aliases"):
        assert got[name] == expected[name], name


def test_a_simple_component_merges_into_the_oldest_profile_without_the_resolver(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages.identify("2026-10-02T10:00", anon="a2", device_id="d2")
    messages.identify("2026-10-01T10:00", anon="a1")
    messages.identify("2026-10-03T10:00", user="u1", anon="a2")
    messages.identify("2026-10-04T10:00", user="u1", anon="a1", email="e@x.io")
    messages.identify("2026-10-04T11:00", anon="unknown", device_id="d9")  # blocked anon: not a link
    messages.identify("2026-10-04T12:00", anon="unknown", device_id="d8")
    messages.write()
    pipeline = ComputePipeline(_workspace(tmp_path), compute_engine)
    pipeline.land()
    resolved: list[Any] = []
    monkeypatch.setattr(Resolver, "resolve", lambda self, *a: resolved.append(a))
    summary = pipeline.resolve_identities(at("2026-10-05T00:00"))
    assert resolved == [] and summary.merges == 1 and summary.blocked == 2
    graph = _graph_table(pipeline)
    older, younger = profile_id_for(("anonymous_id", "a1")), profile_id_for(("anonymous_id", "a2"))
    assert {(r[0], r[1], r[2]) for r in graph["identities"]} == {
        ("anonymous_id", "a1", older),
        ("anonymous_id", "a2", older),
        ("device_id", "d2", older),
        ("user_id", "u1", older),
        ("email", "e@x.io", older),
        ("device_id", "d9", profile_id_for(("device_id", "d9"))),
        ("device_id", "d8", profile_id_for(("device_id", "d8"))),
    }
    assert graph["merges"] == graph["aliases"] == [(younger, older)]


def test_a_long_chain_is_one_profile_in_few_rounds(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2,000 sets linked one after another (diameter 2,000): one profile, O(log n) rounds on SQL."""
    links = 1000
    for i in range(links):
        when = f"2026-10-01T{i // 60 // 60:02d}:{i // 60 % 60:02d}"
        messages.identify(when, anon=f"a{i}", device_id=f"d{i}")
        messages.identify(when, anon=f"a{i + 1}", device_id=f"d{i}")
    messages.write()
    rounds: list[int] = []
    real = identity_components.label_sql

    def counting(*args: Any) -> Any:
        result = real(*args)
        rounds.append(result.rounds)
        return result

    monkeypatch.setattr(identity_components, "label_sql", counting)
    workspace = _workspace(tmp_path)
    pipeline = ComputePipeline(workspace, compute_engine)
    pipeline.land()
    summary = pipeline.resolve_identities(at("2026-10-05T00:00"))
    assert summary.profiles == 1 and summary.sets_processed == 2 * links
    got, expected = _graph_table(pipeline), _sequential(pipeline, workspace, "2026-10-05T00:00")
    assert got["identities"] == expected["identities"] and got["profiles"] == expected["profiles"]
    if not compute_engine.is_duckdb:
        assert rounds and rounds[0] <= 3 * math.log2(2 * links), rounds


@pytest.mark.parametrize("shuffle", [False, True])
def test_sql_labels_converge_in_log_rounds_and_match_numpy(
    compute_engine: ComputeEngine, shuffle: bool
) -> None:
    """A path of 2,000 nodes plus a star and singletons; rounds stay logarithmic whatever the numbering."""
    n = 2000
    order = list(range(n))
    if shuffle:
        random.Random(5).shuffle(order)
    edges = [(order[i], order[i + 1]) for i in range(n - 1)]
    edges += [(n, n + k) for k in range(1, 50)] + [(n + 60, n + 61)]
    nodes = n + 70
    schema = compute_engine.schema
    with compute_engine.begin() as conn:
        scratch_table(
            conn,
            schema,
            "g",
            pa.table(
                {"a": [a for a, _ in edges], "b": [b for _, b in edges]},
                schema=pa.schema([("a", pa.int64()), ("b", pa.int64())]),
            ),
        )
        scratch_table(
            conn,
            schema,
            "n",
            pa.table({"node": list(range(nodes))}, schema=pa.schema([("node", pa.int64())])),
        )
        node_table = work_table(schema, "n", "node")
        result = label_sql(conn, schema, "g", sa.select(node_table.c.node), "labels_sql")
        got = _partition(conn, schema, "labels_sql")
        if compute_engine.is_duckdb:
            label_numpy(conn, schema, "g", nodes, "labels_numpy")
            assert _partition(conn, schema, "labels_numpy") == got
    assert result.rounds <= 2 * math.log2(nodes), result.rounds
    expected = {frozenset(range(n)), frozenset(range(n, n + 50)), frozenset({n + 60, n + 61})}
    expected |= {frozenset({k}) for k in range(nodes) if not any(k in c for c in expected)}
    assert got == expected


@pytest.mark.parametrize("seed", range(40))
def test_numpy_labels_match_scipy(seed: int) -> None:
    """Hook and jump over (set, key) links gives scipy's components; each label is its component's smallest set."""
    rng = np.random.default_rng(seed)
    nsets, nkeys = int(rng.integers(1, 400)), int(rng.integers(1, 400))
    links = int(rng.integers(0, 3 * nsets))
    sets, keys = rng.integers(0, nsets, links), rng.integers(0, nkeys, links)
    if seed % 4 == 0:  # one path through every set, numbered forwards, backwards or shuffled
        walk = [np.arange(nsets), np.arange(nsets)[::-1], rng.permutation(nsets)][seed % 3]
        sets = np.concatenate([walk[:-1], walk[1:]])
        keys = np.concatenate([np.arange(nsets - 1)] * 2)
        nkeys = max(nkeys, nsets)
    roots = label_links(sets, keys, nsets, nkeys)
    graph = coo_array((np.ones(len(sets)), (sets, nsets + keys)), shape=(nsets + nkeys, nsets + nkeys))
    _, expected = connected_components(graph, directed=False)
    expected = expected[:nsets]
    assert len(set(zip(roots.tolist(), expected.tolist(), strict=True))) == len(set(roots.tolist()))
    assert len(set(roots.tolist())) == len(set(expected.tolist()))
    for label in set(roots.tolist()):
        assert label == int(np.flatnonzero(roots == label).min())


def _partition(conn: sa.Connection, schema: str, name: str) -> set[frozenset[int]]:
    t = work_table(schema, name, "node", "label")
    groups: dict[int, set[int]] = {}
    for node, label in conn.execute(sa.select(t.c.node, t.c.label)):
        groups.setdefault(label, set()).add(node)
    return {frozenset(g) for g in groups.values()}


def _two_engines(kind: str, tmp_path: Path) -> Iterator[tuple[ComputeEngine, ComputeEngine]]:
    a, b = f"inc_{uuid.uuid4().hex[:8]}", f"full_{uuid.uuid4().hex[:8]}"
    url = f"duckdb:///{tmp_path / 'c.duckdb'}" if kind == "duckdb" else PG_URL
    engines = ComputeEngine(url, a), ComputeEngine(url, b)
    yield engines
    for engine in engines:
        engine.dispose()
    if kind == "postgres":
        drop_schemas(PG_URL, a)
        drop_schemas(PG_URL, b)


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_incremental_runs_equal_a_rebuild_and_keep_profile_ids(
    tmp_path: Path, messages: Messages, kind: str
) -> None:
    workspace = _workspace(tmp_path)
    _random_messages(messages, 7, count=300)
    messages.write()
    for inc_engine, full_engine in _two_engines(kind, tmp_path):
        incremental, full = ComputePipeline(workspace, inc_engine), ComputePipeline(workspace, full_engine)
        for pipeline in (incremental, full):
            pipeline.land()
        seen: dict[tuple[str, str], int] = {}
        for day in ("2026-10-03T00:00", "2026-10-05T12:00", "2026-10-08T00:00", "2026-10-12T00:00"):
            inc = incremental.resolve_identities(at(day))
            full.force_full()
            full.resolve_identities(at(day))
            assert inc.mode == ("full" if day.startswith("2026-10-03") else "incremental")
            got, want = _graph_table(incremental), _graph_table(full)
            for name in ("identities", "sets", "profiles", "aliases"):
                assert got[name] == want[name], (day, name)
            # A profile keeps its id unless it was merged into another one.
            aliases = dict(got["aliases"])
            for row in got["identities"]:
                key, owner = (row[0], row[1]), row[2]
                if key in seen and owner is not None:
                    assert _final(aliases, seen[key]) == owner, key
                if owner is not None:
                    seen[key] = owner


@pytest.mark.postgres
def test_duckdb_and_postgres_build_the_same_graph(tmp_path: Path, messages: Messages) -> None:
    workspace = _workspace(tmp_path)
    _random_messages(messages, 11, count=300)
    messages.write()
    schema = f"agree_{uuid.uuid4().hex[:8]}"
    duck = ComputePipeline(workspace, ComputeEngine(f"duckdb:///{tmp_path / 'd.duckdb'}", "agree"))
    pg = ComputePipeline(workspace, ComputeEngine(PG_URL, schema))
    try:
        graphs = []
        for pipeline in (duck, pg):
            pipeline.land()
            pipeline.resolve_identities(at("2026-10-06T00:00"))
            pipeline.resolve_identities(at("2026-10-12T00:00"))
            graphs.append(_graph_table(pipeline))
        assert graphs[0] == graphs[1]
    finally:
        duck.close()
        pg.close()
        drop_schemas(PG_URL, schema)


@pytest.mark.parametrize("seed", [4, 5])
def test_numpy_rebuild_equals_the_sql_rebuild_merges_included(
    tmp_path: Path, messages: Messages, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """DuckDB's numpy rebuild writes what the SQL rebuilds write, merges too: its fallback on a hash clash
    (numpy labels of the SQL graph) and the one for graphs too large for memory (SQL labels, spilled by DuckDB)."""
    workspace = _workspace(tmp_path)
    _random_messages(messages, seed, count=400)
    messages.write()
    graphs, merge_rows, rounds = [], [], []
    for name in ("numpy", "hash_clash", "too_large"):
        pipeline = ComputePipeline(workspace, ComputeEngine(f"duckdb:///{tmp_path / name}.duckdb", "c"))
        if name == "numpy":  # results written in many slices
            monkeypatch.setattr(identity_components, "_WRITE_ROWS", 7)
        if name == "hash_clash":
            monkeypatch.setattr(identity, "rebuild_duckdb", lambda *args, **kwargs: None)
        if name == "too_large":  # as if each link needed a GB of arrays
            monkeypatch.setattr(identity_components, "_BYTES_PER_LINK", 10**9)

            def counting(
                *args: Any, real: Any = identity_components.label_sql
            ) -> identity_components.Components:
                result = real(*args)
                rounds.append(result.rounds)
                return result

            monkeypatch.setattr(identity_components, "label_sql", counting)
        pipeline.land()
        pipeline.resolve_identities(at("2026-10-12T00:00"))
        # Landing relies on insertion order: the SQL rebuild turns it off for a while.
        with pipeline.engine.begin() as conn:
            order = conn.execute(sa.text("SELECT current_setting('preserve_insertion_order')")).scalar()
        assert order is True
        graphs.append(_graph_table(pipeline))
        merge_rows.append(
            sorted(pipeline.read(sa.select(pipeline.engine.tables.profile_merges)).to_pylist(), key=repr)
        )
        pipeline.close()
    assert graphs[0] == graphs[1] == graphs[2]
    assert merge_rows[0] == merge_rows[1] == merge_rows[2] and merge_rows[0]
    assert rounds and rounds[0] > 0  # labelled in SQL


def test_duckdb_memory_limit_is_read_in_bytes(tmp_path: Path) -> None:
    """The rebuild's choice reads DuckDB's own setting, whatever unit it was given in."""
    for given, expected in (("1.2GB", 1.1 * 2**30), ("512MB", 488.2 * 2**20), ("4GiB", 4 * 2**30)):
        engine = ComputeEngine(
            f"duckdb:///{tmp_path / 'm.duckdb'}", "s", duckdb_settings={"memory_limit": given}
        )
        with engine.begin() as conn:
            assert duckdb_memory_limit(conn) == int(expected)
        engine.dispose()


def test_the_numpy_rebuild_gives_duckdb_memory_back_for_its_arrays(
    tmp_path: Path, messages: Messages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the numpy rebuild runs, DuckDB's limit is lowered by its arrays' estimate; then set back as configured."""
    _random_messages(messages, 7, count=60)
    messages.write()
    engine = ComputeEngine(f"duckdb:///{tmp_path / 'm.duckdb'}", "c", duckdb_settings={"memory_limit": "1GB"})
    pipeline = ComputePipeline(_workspace(tmp_path), engine)
    pipeline.land()
    with engine.begin() as conn:
        before = duckdb_memory_limit(conn)
        links = identity_components.count_rows(conn, engine.tables.set_keys)
    monkeypatch.setattr(identity_components, "_BYTES_PER_LINK", 2**20)  # a MiB per link
    seen: list[int | None] = []
    real = identity_components._rebuild_in_numpy

    def recording(conn: sa.Connection, *args: Any) -> Any:
        seen.append(duckdb_memory_limit(conn))
        return real(conn, *args)

    monkeypatch.setattr(identity_components, "_rebuild_in_numpy", recording)
    pipeline.resolve_identities(at("2026-10-12T00:00"))
    with engine.begin() as conn:
        after = duckdb_memory_limit(conn)
    pipeline.close()
    assert before is not None and links * 2**21 <= before
    assert seen == [(before // 2**20 - links) * 2**20] and after == before


def test_an_alias_from_an_anonymous_id_stays_simple_on_duckdb(
    tmp_path: Path, messages: Messages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A previous id that is nowhere a user id can only be the anonymous id: no resolver needed."""
    messages.identify("2026-10-01T10:00", anon="a1", device_id="d1")
    messages.alias("2026-10-02T10:00", user="u1", previous="a1")
    messages.identify("2026-10-03T10:00", user="u1", email="e@x.io")
    messages.alias("2026-10-04T10:00", user="u3", previous="u2")  # u2 is a user id: order decides
    messages.identify("2026-10-05T10:00", user="u2", anon="a2")
    messages.write()
    workspace = _workspace(tmp_path)
    pipeline = ComputePipeline(workspace, ComputeEngine(f"duckdb:///{tmp_path / 'alias.duckdb'}", "c"))
    pipeline.land()
    resolved: list[Any] = []
    real = Resolver.resolve

    def recording(self: Resolver, pairs: list[list[str]], *args: Any) -> Any:
        resolved.append(pairs)
        return real(self, pairs, *args)

    monkeypatch.setattr(Resolver, "resolve", recording)
    pipeline.resolve_identities(at("2026-10-06T00:00"))
    got = _graph_table(pipeline)
    monkeypatch.setattr(Resolver, "resolve", real)
    expected = _sequential(pipeline, workspace, "2026-10-06T00:00")
    pipeline.close()
    for name in ("identities", "sets", "profiles", "aliases"):
        assert got[name] == expected[name], name
    assert all(["user_id", "u1"] not in pairs for pairs in resolved) and resolved
    owner = {(r[0], r[1]): r[2] for r in got["identities"]}
    assert owner["anonymous_id", "a1"] == owner["user_id", "u1"] == owner["device_id", "d1"]


def test_a_failed_statement_over_an_arrow_view_keeps_its_own_error(tmp_path: Path) -> None:
    """DuckDB refuses the view's unregister once a statement failed; the statement's error is what is raised."""
    import pyarrow as pa
    import sqlalchemy as sa

    from activation_pipeline.compute.engine import ComputeEngine, arrow_view

    engine = ComputeEngine(f"duckdb:///{tmp_path / 'c.duckdb'}", "s")
    with (
        pytest.raises(sa.exc.DBAPIError, match="boom"),
        engine.begin() as conn,
        arrow_view(conn, pa.table({"a": [1]})) as view,
    ):
        conn.execute(sa.select(sa.func.error("boom")).select_from(view))
    engine.dispose()
