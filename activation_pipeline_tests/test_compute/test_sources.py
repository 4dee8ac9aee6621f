"""Events from a SQL warehouse in Segment's layout, and SQL traits run on that warehouse."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.compute.identity import profile_id_for
from activation_pipeline.compute.pipeline import ComputePipeline
from activation_pipeline.compute.sources import segment_table_name

from .conftest import PG_URL, at, by_profile, drop_schemas, make_workspace

WAREHOUSE_DDL = [
    "CREATE TABLE {s}.identifies (id TEXT, user_id TEXT, anonymous_id TEXT, timestamp TIMESTAMP, "
    "received_at TIMESTAMP, email TEXT, plan TEXT, context_device_type TEXT, context_device_advertising_id TEXT)",
    "CREATE TABLE {s}.tracks (id TEXT, user_id TEXT, anonymous_id TEXT, event TEXT, event_text TEXT, timestamp TIMESTAMP)",
    "CREATE TABLE {s}.order_completed (id TEXT, user_id TEXT, anonymous_id TEXT, event TEXT, event_text TEXT, "
    "timestamp TIMESTAMP, revenue NUMERIC(10, 2), currency TEXT)",
    "CREATE TABLE {s}.groups (id TEXT, user_id TEXT, anonymous_id TEXT, group_id TEXT, timestamp TIMESTAMP, name TEXT)",
    "CREATE TABLE {s}.aliases (id TEXT, user_id TEXT, anonymous_id TEXT, previous_id TEXT, timestamp TIMESTAMP)",
]
ROWS = {
    "identifies": [
        {
            "id": "i1",
            "user_id": "u1",
            "anonymous_id": "a1",
            "timestamp": datetime(2026, 10, 1, 9),
            "email": "U1@x.com",
            "plan": "pro",
        },
        {
            "id": "i2",
            "user_id": "u2",
            "anonymous_id": None,
            "timestamp": datetime(2026, 10, 2, 9),
            "email": None,
            "plan": "free",
        },
    ],
    "tracks": [
        {
            "id": "t1",
            "user_id": None,
            "anonymous_id": "a1",
            "event": "order_completed",
            "event_text": "Order Completed",
            "timestamp": datetime(2026, 10, 1, 8),
        },
        {
            "id": "t2",
            "user_id": "u2",
            "anonymous_id": None,
            "event": "order_completed",
            "event_text": "Order Completed",
            "timestamp": datetime(2026, 10, 2, 10),
        },
        {
            "id": "t3",
            "user_id": None,
            "anonymous_id": None,
            "event": "order_completed",
            "event_text": "Order Completed",
            "timestamp": datetime(2026, 10, 2, 11),
        },
    ],
    "order_completed": [
        {
            "id": "t1",
            "user_id": None,
            "anonymous_id": "a1",
            "event": "order_completed",
            "event_text": "Order Completed",
            "timestamp": datetime(2026, 10, 1, 8),
            "revenue": 120,
            "currency": "USD",
        },
        {
            "id": "t2",
            "user_id": "u2",
            "anonymous_id": None,
            "event": "order_completed",
            "event_text": "Order Completed",
            "timestamp": datetime(2026, 10, 2, 10),
            "revenue": 30,
            "currency": "USD",
        },
    ],
    "groups": [
        {
            "id": "g1",
            "user_id": "u1",
            "anonymous_id": None,
            "group_id": "acct1",
            "timestamp": datetime(2026, 10, 1, 10),
            "name": "Acme",
        }
    ],
    "aliases": [
        {
            "id": "al1",
            "user_id": "u3",
            "anonymous_id": None,
            "previous_id": "u2",
            "timestamp": datetime(2026, 10, 2, 12),
        }
    ],
}

TRAITS = """
traits:
  custom: [plan]
  account: [name]
  computed:
    - {key: revenue, type: aggregation, function: sum, event: Order Completed, property: revenue}
  sql:
    - {key: big_spender, identifier: email, query: "SELECT lower(email) AS email, 'yes' AS big_spender FROM {s}.identifies WHERE plan = 'pro'"}
"""


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A Segment-layout warehouse schema (DuckDB file or PostgreSQL): yields (url, schema)."""
    schema = f"seg_{uuid.uuid4().hex[:8]}"
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}" if request.param == "duckdb" else PG_URL
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        for ddl in WAREHOUSE_DDL:
            conn.execute(sa.text(ddl.format(s=schema)))
        for table, rows in ROWS.items():
            columns = sorted({c for r in rows for c in r})
            t = sa.table(table, *[sa.column(c) for c in columns], schema=schema)
            conn.execute(sa.insert(t), [{c: r.get(c) for c in columns} for r in rows])
    engine.dispose()
    yield url, schema
    if request.param == "postgres":
        drop_schemas(PG_URL, schema)


def test_segment_table_names() -> None:
    assert segment_table_name("Order Completed") == "order_completed"
    assert segment_table_name("checkoutStepViewed") == "checkout_step_viewed"
    assert segment_table_name("  Sign-up: Done! ") == "sign_up_done"


def test_events_and_sql_traits_from_a_warehouse(tmp_path: Path, warehouse: tuple[str, str]) -> None:
    url, schema = warehouse
    base = f"""
workspace: wh
sources:
  events: {{url: "{url}", schema: {schema}}}
  warehouse: {{url: "{url}"}}
identity:
  identifiers: {{user_id: {{limit: 1}}, email: {{}}, anonymous_id: {{}}}}
"""
    workspace = make_workspace(tmp_path, TRAITS.replace("{s}", schema), base=base)
    engine = ComputeEngine(f"duckdb:///{tmp_path / 'compute.duckdb'}", "wh")
    pipeline = ComputePipeline(workspace, engine)
    landed = pipeline.land()
    assert (landed.events, landed.quarantined, landed.new_sources) == (6, 1, 4)
    assert pipeline.quarantine().to_pylist()[0]["reason"] == "no userId or anonymousId"
    pipeline.evaluate(at("2026-10-03T00:00"))
    u1, u2, u3 = (
        profile_id_for(("anonymous_id", "a1")),
        profile_id_for(("user_id", "u2")),
        profile_id_for(("user_id", "u3")),
    )
    assert {p: r["plan"] for p, r in by_profile(pipeline, "custom_traits").items()} == {u1: "pro", u2: "free"}
    assert {p: r["revenue"] for p, r in by_profile(pipeline, "computed_traits").items()} == {
        u1: 120,
        u2: 30,
        u3: 0,
    }
    assert {p: r["big_spender"] for p, r in by_profile(pipeline, "sqlt_big_spender").items()} == {u1: "yes"}
    assert by_profile(pipeline, "account_traits") == {"acct1": {"group_id": "acct1", "name": "Acme"}}
    graph = {(r["identifier_type"], r["value"]): r["profile_id"] for r in pipeline.identities().to_pylist()}
    assert (graph[("user_id", "u2")], graph[("user_id", "u3")]) == (
        u2,
        u3,
    )  # alias blocked by the user_id limit
    pipeline.close()


def test_a_warehouse_is_read_past_its_watermark(tmp_path: Path, warehouse: tuple[str, str]) -> None:
    url, schema = warehouse
    base = f"""
workspace: wh
sources:
  events: {{url: "{url}", schema: {schema}}}
identity:
  identifiers: {{user_id: {{limit: 1}}, email: {{}}, anonymous_id: {{}}}}
"""
    workspace = make_workspace(tmp_path, TRAITS.split("  sql:")[0], base=base)
    pipeline = ComputePipeline(workspace, ComputeEngine(f"duckdb:///{tmp_path / 'compute.duckdb'}", "wh"))
    assert pipeline.land().events == 6
    rerun = pipeline.land()
    assert (rerun.events, rerun.quarantined, rerun.unchanged_sources) == (0, 0, 4)
    # Segment loads a late event: an old timestamp, a new received_at; only it is landed.
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        identifies = sa.table(
            "identifies", *[sa.column(c) for c in ("id", "user_id", "timestamp", "received_at", "plan")],
            schema=schema,
        )  # fmt: skip
        conn.execute(
            sa.insert(identifies).values(
                id="i3",
                user_id="u2",
                timestamp=datetime(2026, 9, 1),
                received_at=datetime(2026, 10, 5),
                plan="pro",
            )
        )
    engine.dispose()
    late = pipeline.land()
    assert (late.events, late.appended_sources, late.unchanged_sources) == (1, 1, 3)
    pipeline.evaluate(at("2026-10-03T00:00"))
    assert by_profile(pipeline, "custom_traits")[profile_id_for(("user_id", "u2"))]["plan"] == "free"
    pipeline.close()
