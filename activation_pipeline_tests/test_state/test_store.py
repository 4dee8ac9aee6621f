"""The state store itself: URLs, idempotent tables, leases (busy, expiry, dead holder), snapshots."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from activation_pipeline.state.leases import (
    DestinationBusyError,
    acquire_lease,
    pid_alive,
    release_lease,
    renew_lease,
)
from activation_pipeline.state.schema import destination_leases
from activation_pipeline.state.store import StateStore, open_state, state_url


def test_state_url() -> None:
    assert state_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert state_url("state/x.db").startswith("sqlite:////") and state_url("state/x.db").endswith(
        "state/x.db"
    )


def test_sqlite_file_and_directory_are_created(tmp_path: Path) -> None:
    store = open_state(tmp_path / "nested" / "state.db")
    try:
        assert (tmp_path / "nested" / "state.db").exists()
        with store.read() as db:
            mode = db.exec_driver_sql("PRAGMA journal_mode").scalar_one()
        assert mode == "wal"
    finally:
        store.dispose()


def test_lease_is_exclusive_and_released(store: StateStore) -> None:
    lease = acquire_lease(store, "dest")
    with pytest.raises(DestinationBusyError, match=f"process {os.getpid()}"):
        acquire_lease(store, "dest")
    acquire_lease(store, "other_dest")  # other destinations are independent
    renew_lease(store, lease)
    release_lease(store, lease)
    release_lease(store, acquire_lease(store, "dest"))


def test_expired_lease_is_taken_over(store: StateStore) -> None:
    acquire_lease(store, "dest", ttl=0.01)
    time.sleep(0.05)
    acquire_lease(store, "dest")


def test_lease_of_a_dead_process_is_taken_over(store: StateStore) -> None:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead_pid = int(child.stdout)
    assert not pid_alive(dead_pid)
    lease = acquire_lease(store, "dest")
    with store.write() as db:
        db.execute(sa.update(destination_leases).values(pid=dead_pid, expires_at=time.time() + 3600))
    taken = acquire_lease(store, "dest")
    assert taken.holder != lease.holder
