"""The resync request queue: oldest first, status changes, on SQLite and PostgreSQL."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from activation_pipeline.state.resync_requests import RequestStatus, enqueue, mark, requests
from activation_pipeline.state.store import StateStore, open_state


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    """A fresh state store on each engine."""
    if request.param == "sqlite":
        opened = open_state(tmp_path / "state.db")
    else:
        opened = open_state(
            f"postgresql+psycopg2://postgres@127.0.0.1:5432/{request.getfixturevalue('pg_database')}"
        )
    yield opened
    opened.dispose()


def test_queue_order_and_status(store: StateStore) -> None:
    """Requests keep the order they were made in; marking moves them between statuses."""
    first = enqueue(store, "acme", ["audience.a.meta", "audience.a.gads"], "new enrichment")
    second = enqueue(store, "acme", ["audience.b.meta"], "fix")
    pending = requests(store, frozenset({RequestStatus.PENDING}))
    assert [r.connection_id for r in pending] == ["audience.a.meta", "audience.a.gads", "audience.b.meta"]
    assert [r.seq for r in pending] == sorted(r.seq for r in pending)
    mark(store, first[0].request_id, RequestStatus.LAUNCHED)
    mark(store, first[0].request_id, RequestStatus.FAILED, run_id="run-1", detail="boom")
    [failed] = requests(store, frozenset({RequestStatus.FAILED}))
    assert (failed.request_id, failed.run_id, failed.detail, failed.reason) == (
        first[0].request_id,
        "run-1",
        "boom",
        "new enrichment",
    )
    assert second[0].request_id in {r.request_id for r in requests(store)}
