"""Shared fixtures of the compute tests: one fixture runs each case on DuckDB and on PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.compute.pipeline import ComputePipeline
from activation_pipeline.config import Workspace, validate_text

PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"

BASE_YAML = """
workspace: test-ws
sources:
  events: {path: events/}
identity:
  identifiers:
    user_id: {limit: 1}
    email: {limit: 2, blocked_values: [shared@example.com]}
    anonymous_id: {}
    phone: {limit: 2}
    crm_id: {custom: true, limit: 1}
  blocked_values: ["unknown"]
"""


def drop_schemas(url: str, schema: str) -> None:
    """Drop a test schema and its Segment-view schema."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        for name in (schema, f"{schema}_segment"):
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    engine.dispose()


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def compute_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ComputeEngine]:
    """A fresh compute engine: a DuckDB file, or a new schema on the local PostgreSQL server."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    if request.param == "duckdb":
        engine = ComputeEngine(url=f"duckdb:///{tmp_path / 'compute.duckdb'}", schema=schema)
        yield engine
        engine.dispose()
        return
    engine = ComputeEngine(url=PG_URL, schema=schema)
    yield engine
    engine.dispose()
    drop_schemas(PG_URL, schema)


def make_workspace(tmp_path: Path, extra_yaml: str = "", base: str = BASE_YAML) -> Workspace:
    """A validated workspace whose files live in tmp_path (events in tmp_path/events)."""
    text = base + extra_yaml
    (tmp_path / "events").mkdir(exist_ok=True)
    (tmp_path / "workspace.yml").write_text(text)
    workspace, problems = validate_text(text, base_dir=tmp_path)
    assert workspace is not None, [str(p) for p in problems]
    return workspace


def ts(text: str) -> str:
    """ISO text for a day/time given as `2026-10-01T10:00` or `2026-10-01T10:00:05` (UTC)."""
    if text.endswith("Z"):
        return text
    return text + ("Z" if text.count(":") == 2 else ":00Z")


def at(text: str) -> datetime:
    """An aware UTC datetime from `2026-10-01T10:00`."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Messages:
    """Builds Segment messages and writes them as dated JSONL files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.by_day: dict[str, list[str]] = {}
        self.counter = 0

    def add(self, kind: str, when: str, **fields: Any) -> dict[str, Any]:
        self.counter += 1
        message = {"type": kind, "messageId": f"m{self.counter:05d}", "timestamp": ts(when), **fields}
        self.raw(when[:10], json.dumps(message))
        return message

    def raw(self, day: str, line: str) -> None:
        self.by_day.setdefault(day, []).append(line)

    def identify(self, when: str, user: str | None = None, anon: str | None = None, **traits: Any) -> None:
        fields: dict[str, Any] = {"traits": traits}
        if user:
            fields["userId"] = user
        if anon:
            fields["anonymousId"] = anon
        self.add("identify", when, **fields)

    def track(
        self, when: str, event: str, user: str | None = None, anon: str | None = None, **props: Any
    ) -> None:
        fields: dict[str, Any] = {"event": event, "properties": props}
        if user:
            fields["userId"] = user
        if anon:
            fields["anonymousId"] = anon
        self.add("track", when, **fields)

    def group(self, when: str, user: str, group_id: str, **traits: Any) -> None:
        self.add("group", when, userId=user, groupId=group_id, traits=traits)

    def alias(self, when: str, user: str, previous: str) -> None:
        self.add("alias", when, userId=user, previousId=previous)

    def write(self) -> None:
        events = self.root / "events"
        events.mkdir(exist_ok=True)
        for day, lines in self.by_day.items():
            (events / f"{day}.jsonl").write_text("\n".join(lines) + "\n")


@pytest.fixture
def messages(tmp_path: Path) -> Messages:
    """A message builder writing into tmp_path/events."""
    return Messages(tmp_path)


def run(
    workspace: Workspace, engine: ComputeEngine, messages: Messages, as_of: str, full: bool = False
) -> ComputePipeline:
    """Write the messages, land every day and evaluate at `as_of`."""
    messages.write()
    pipeline = ComputePipeline(workspace, engine)
    pipeline.land()
    pipeline.evaluate(at(as_of), full=full)
    return pipeline


def by_profile(pipeline: ComputePipeline, table: str) -> dict[Any, dict[str, Any]]:
    """A trait table keyed by its first column."""
    rows = pipeline.table(table).to_pylist()
    if not rows:
        return {}
    key = next(iter(rows[0]))
    return {r[key]: r for r in rows}


def profile_of(pipeline: ComputePipeline, kind: str, value: str) -> int:
    """The profile holding an identifier."""
    for row in pipeline.identities().to_pylist():
        if row["identifier_type"] == kind and row["value"] == value:
            return int(row["profile_id"])
    raise KeyError((kind, value))


def members(pipeline: ComputePipeline, key: str) -> set[int]:
    """Current members of an audience."""
    return {r["profile_id"] for r in pipeline.membership(key).to_pylist()}


Factory = Callable[..., Any]
