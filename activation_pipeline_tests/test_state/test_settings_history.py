"""Settings history records each change of a connection's settings as a diff, on SQLite and PostgreSQL."""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from activation_pipeline.config import load_workspace
from activation_pipeline.config.models import IdStrategy
from activation_pipeline.config.workspace import Workspace
from activation_pipeline.orchestration.workspace import SAMPLE_WORKSPACE
from activation_pipeline.state.settings_history import (
    Difference,
    diff,
    format_history,
    history,
    record_settings,
)
from activation_pipeline.state.store import StateStore, open_state

CONNECTION = "audience.high_value_recent.meta_ads"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    """A fresh state store on each engine."""
    if request.param == "sqlite":
        opened = open_state(tmp_path / "state.db")
    else:
        database = request.getfixturevalue("pg_database")
        opened = open_state(f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}")
    yield opened
    opened.dispose()


def _changed(workspace: Workspace, **changes: object) -> Workspace:
    connections = [
        c.model_copy(update=changes) if c.connection_id == CONNECTION else c for c in workspace.connections
    ]
    return workspace.model_copy(update={"connections": connections})


def test_records_creation_then_only_changes(store: StateStore) -> None:
    """The first run records every connection; an unchanged run records nothing; a change records a diff."""
    sample = load_workspace(SAMPLE_WORKSPACE)
    first = record_settings(store, sample, datetime(2026, 11, 1, tzinfo=UTC))
    # Every connection and journey send target, and each journey's definition (`journey.<key>`).
    assert len(first) == len(sample.delivery_connections()) + len(sample.journeys)
    assert record_settings(store, sample) == []

    id_sync = [
        s.model_copy(update={"strategy": IdStrategy.FIRST_ADDED}) if s.identifier == "email" else s
        for s in sample.connection(CONNECTION).id_sync
    ]
    changed = _changed(sample, id_sync=id_sync, send_track=True)
    [version] = record_settings(store, changed, datetime(2026, 11, 2, tzinfo=UTC))
    assert version.connection_id == CONNECTION
    assert set(version.diff) == {
        Difference("id_sync[0].strategy", "last_added", "first_added"),
        Difference("send_track", False, True),
    }
    versions = history(store, sample.workspace, CONNECTION)
    assert [v.recorded_at.date().isoformat() for v in versions] == ["2026-11-01", "2026-11-02"]
    assert 'id_sync[0].strategy: "last_added" -> "first_added"' in format_history(versions)


def test_removed_connection_is_recorded(store: StateStore) -> None:
    """A connection that leaves the file gets a 'removed' version."""
    sample = load_workspace(SAMPLE_WORKSPACE)
    record_settings(store, sample)
    fewer = sample.model_copy(
        update={"connections": [c for c in sample.connections if c.connection_id != CONNECTION]}
    )
    [version] = record_settings(store, fewer)
    assert version.settings is None
    assert "removed" in format_history(history(store, sample.workspace, CONNECTION))


def test_diff_paths() -> None:
    """Nested dicts and lists give dotted/indexed paths; added items compare with None."""
    assert diff({"a": [1, {"b": 2}]}, {"a": [1, {"b": 3}, 4]}) == [
        Difference("a[1].b", 2, 3),
        Difference("a[2]", None, 4),
    ]
