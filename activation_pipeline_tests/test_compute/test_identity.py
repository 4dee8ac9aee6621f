"""Identity resolution: merges, aliases, limits, blocked values, first/last seen and stable profile ids."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.compute.identity import profile_id_for
from activation_pipeline.compute.pipeline import ComputePipeline

from .conftest import BASE_YAML, Messages, at, make_workspace, profile_of, run


def _graph(pipeline: ComputePipeline) -> dict[int, set[tuple[str, str]]]:
    graph: dict[int, set[tuple[str, str]]] = {}
    for row in pipeline.identities().to_pylist():
        graph.setdefault(row["profile_id"], set()).add((row["identifier_type"], row["value"]))
    return graph


def test_identifiers_seen_together_merge_and_keep_the_first_id(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages
) -> None:
    messages.track("2026-10-01T10:00", "Product Viewed", anon="a1")
    messages.identify("2026-10-02T10:00", user="u1", anon="a1", email="Ann@Example.com ")
    messages.track("2026-10-03T10:00", "Product Viewed", user="u1")
    pipeline = run(make_workspace(tmp_path), compute_engine, messages, "2026-10-05T00:00")
    graph = _graph(pipeline)
    anon_id = profile_id_for(("anonymous_id", "a1"))
    assert graph == {anon_id: {("anonymous_id", "a1"), ("user_id", "u1"), ("email", "ann@example.com")}}


def test_alias_merges_and_the_older_profile_survives(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages
) -> None:
    messages.track("2026-10-01T10:00", "Product Viewed", anon="a1")
    messages.identify("2026-10-02T10:00", user="u1", anon="a2")
    messages.alias("2026-10-03T10:00", user="u1", previous="a1")
    pipeline = run(make_workspace(tmp_path), compute_engine, messages, "2026-10-05T00:00")
    older, younger = profile_id_for(("anonymous_id", "a1")), profile_id_for(("user_id", "u1"))
    assert _graph(pipeline) == {older: {("anonymous_id", "a1"), ("anonymous_id", "a2"), ("user_id", "u1")}}
    tables = compute_engine.tables
    merges = pipeline.read(sa.select(tables.profile_merges)).to_pylist()
    assert [(m["merged_profile_id"], m["into_profile_id"]) for m in merges] == [(younger, older)]
    aliases = pipeline.read(sa.select(tables.profile_aliases)).to_pylist()
    assert [(a["old_profile_id"], a["profile_id"]) for a in aliases] == [(younger, older)]


def test_a_merge_that_breaks_a_limit_does_not_happen(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages
) -> None:
    messages.identify("2026-10-01T10:00", user="u1", email="e@x.com")
    messages.identify("2026-10-02T10:00", user="u2", email="e@x.com")  # user_id limit 1: no merge
    messages.identify("2026-10-03T10:00", user="u1", email="f@x.com")
    messages.identify("2026-10-04T10:00", user="u1", email="g@x.com")  # email limit 2: g dropped
    messages.identify("2026-10-04T11:00", user="u1", crm_id="C1")
    messages.identify("2026-10-04T12:00", user="u1", crm_id="C2")  # custom identifier limit 1
    pipeline = run(make_workspace(tmp_path), compute_engine, messages, "2026-10-05T00:00")
    p1, p2 = profile_id_for(("user_id", "u1")), profile_id_for(("user_id", "u2"))
    assert _graph(pipeline) == {
        p1: {("user_id", "u1"), ("email", "e@x.com"), ("email", "f@x.com"), ("crm_id", "C1")},
        p2: {("user_id", "u2")},
    }


def test_blocked_values_never_match_or_merge(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages
) -> None:
    messages.identify("2026-10-01T10:00", user="u1", anon="unknown", email="Shared@Example.com")
    messages.identify("2026-10-02T10:00", user="u2", anon="unknown", email="shared@example.com")
    pipeline = run(make_workspace(tmp_path), compute_engine, messages, "2026-10-05T00:00")
    assert _graph(pipeline) == {
        profile_id_for(("user_id", "u1")): {("user_id", "u1")},
        profile_id_for(("user_id", "u2")): {("user_id", "u2")},
    }


def test_each_identifier_keeps_first_and_last_seen(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages
) -> None:
    messages.track("2026-10-01T10:00", "A", anon="a1")
    messages.identify("2026-10-02T10:00", user="u1", anon="a1")
    messages.track("2026-10-04T09:30", "A", anon="a1")
    messages.track("2026-10-06T09:30", "A", anon="a1")  # after as-of: not seen yet
    pipeline = run(make_workspace(tmp_path), compute_engine, messages, "2026-10-05T00:00")
    seen = {
        (r["identifier_type"], r["value"]): (r["first_seen"], r["last_seen"])
        for r in pipeline.identities().to_pylist()
    }
    assert seen == {
        ("anonymous_id", "a1"): (datetime(2026, 10, 1, 10), datetime(2026, 10, 4, 9, 30)),
        ("user_id", "u1"): (datetime(2026, 10, 2, 10), datetime(2026, 10, 2, 10)),
    }


def test_profile_ids_are_stable_across_incremental_and_rebuilt_runs(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages
) -> None:
    workspace = make_workspace(tmp_path)
    messages.track("2026-10-01T10:00", "A", anon="a1")
    messages.identify("2026-10-02T10:00", user="u1", anon="a2")
    messages.track("2026-10-03T10:00", "A", anon="a3")
    messages.alias("2026-10-06T10:00", user="u1", previous="a1")
    messages.identify("2026-10-07T10:00", user="u1", anon="a3")
    pipeline = run(workspace, compute_engine, messages, "2026-10-05T00:00")
    before = _graph(pipeline)
    assert len(before) == 3
    summary = pipeline.evaluate(at("2026-10-08T00:00"))
    assert summary.identity.mode == "incremental" and summary.identity.merges == 2
    incremental = _graph(pipeline)
    pipeline.evaluate(at("2026-10-08T00:00"), full=True)
    assert (
        _graph(pipeline)
        == incremental
        == {
            profile_id_for(("anonymous_id", "a1")): {
                ("anonymous_id", "a1"),
                ("anonymous_id", "a2"),
                ("anonymous_id", "a3"),
                ("user_id", "u1"),
            }
        }
    )
    assert profile_of(pipeline, "user_id", "u1") == profile_id_for(("anonymous_id", "a1"))


def test_a_configuration_change_forces_a_full_run(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages
) -> None:
    messages.identify("2026-10-01T10:00", user="u1", email="e@x.com")
    messages.identify("2026-10-02T10:00", user="u1", email="f@x.com")
    messages.identify("2026-10-03T10:00", user="u1", email="g@x.com")
    pipeline = run(make_workspace(tmp_path), compute_engine, messages, "2026-10-05T00:00")
    assert len(_graph(pipeline)[profile_id_for(("user_id", "u1"))]) == 3  # email limit 2
    same = pipeline.evaluate(at("2026-10-06T00:00"))
    assert (same.identity.mode, same.audiences.mode) == ("incremental", "incremental")
    looser = make_workspace(tmp_path, base=BASE_YAML.replace("email: {limit: 2", "email: {limit: 5"))
    changed = ComputePipeline(looser, compute_engine).evaluate(at("2026-10-07T00:00"))
    assert (changed.identity.mode, changed.audiences.mode) == ("full", "full")
    assert len(_graph(pipeline)[profile_id_for(("user_id", "u1"))]) == 4
