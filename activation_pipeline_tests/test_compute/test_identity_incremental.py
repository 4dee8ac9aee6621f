"""Incremental identity runs: known sets only move times (in SQL), new sets and aliases go through the
resolver; merges, late events and group calls arriving incrementally give exactly a full rebuild."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from activation_pipeline.compute.pipeline import ComputePipeline

from .conftest import Messages, at
from .test_identity_components import _graph_table, _random_messages, _two_engines, _workspace


def _account_users(pipeline: ComputePipeline) -> list[tuple[Any, ...]]:
    table = sa.table(
        "account_users", sa.column("group_id"), sa.column("profile_id"), schema=pipeline.engine.schema
    )
    return sorted(tuple(r.values()) for r in pipeline.read(sa.select(table)).to_pylist())


def _write_until(messages: Messages, last_day: str) -> None:
    events = messages.root / "events"
    events.mkdir(exist_ok=True)
    for day, lines in messages.by_day.items():
        if day <= last_day:
            (events / f"{day}.jsonl").write_text("\n".join(lines) + "\n")


def _late_copies(messages: Messages) -> None:
    """Late arrivals: messages of sets already resolved, again at the end of their day (old timestamps,
    landed after the run that resolved them), and group calls of users already seen (just before the last as-of). A late message may
    not be the first of its set: identity resolves in order of first appearance (module docstring)."""
    rng = random.Random(9)
    earlier = [
        json.loads(line) for day, lines in messages.by_day.items() if day <= "2026-10-04" for line in lines
    ]
    users = sorted({m["userId"] for m in earlier if m.get("userId")})
    for message in rng.sample(earlier, 40):
        fields = {k: v for k, v in message.items() if k not in ("type", "messageId", "timestamp")}
        messages.add(message["type"], message["timestamp"][:10] + "T23:59", **fields)
    for _ in range(8):
        messages.group("2026-10-05T11:59", user=rng.choice(users), group_id=f"g{rng.randrange(7)}")
    messages.write()


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_merges_aliases_groups_and_late_events_arriving_incrementally_equal_a_rebuild(
    tmp_path: Path, messages: Messages, kind: str
) -> None:
    workspace = _workspace(tmp_path)
    _random_messages(messages, 23, count=320)
    rng = random.Random(5)
    for n in range(60):
        when = f"2026-10-{1 + n * 9 // 60:02d}T{rng.randrange(24):02d}:30"
        messages.group(when, user=f"u{rng.randrange(18)}", group_id=f"g{rng.randrange(5)}")
    # A user with group calls whose profile is merged away in an incremental run: its accounts follow.
    messages.identify("2026-10-01T08:00", anon="az1")
    messages.group("2026-10-04T09:00", user="uz", group_id="gz")
    messages.group("2026-10-04T09:30", user="uz", group_id="g1")
    messages.identify("2026-10-06T09:00", user="uz", anon="az1")
    _write_until(messages, "2026-10-05")
    for inc_engine, full_engine in _two_engines(kind, tmp_path):
        incremental, full = ComputePipeline(workspace, inc_engine), ComputePipeline(workspace, full_engine)
        summaries = []
        for day in ("2026-10-03T00:00", "2026-10-05T12:00", "late", "2026-10-07T00:00", "2026-10-10T00:00"):
            if day == "late":
                _late_copies(messages)
                continue
            for pipeline in (incremental, full):
                pipeline.land()
            summaries.append(incremental.resolve_identities(at(day)))
            full.force_full()
            full.resolve_identities(at(day))
            got, want = _graph_table(incremental), _graph_table(full)
            for name in ("identities", "sets", "profiles", "aliases", "merges"):
                assert got[name] == want[name], (day, name)
            assert _account_users(incremental) == _account_users(full), day
        assert [s.mode for s in summaries] == ["full", *["incremental"] * 3]
        later = summaries[1:]
        assert all(s.sets_processed > s.new_sets for s in later)  # known sets seen again
        assert sum(s.merges for s in later) > 0
        assert _account_users(incremental)
        # A database without the table (dropped by hand): the incremental run rebuilds it from every call.
        expected = _account_users(incremental)
        with inc_engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {inc_engine.schema}.account_users"))
        assert incremental.resolve_identities(at("2026-10-10T06:00")).mode == "incremental"
        assert _account_users(incremental) == expected
