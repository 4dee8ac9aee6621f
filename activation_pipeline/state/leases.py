"""One sync run at a time per destination: a lease row, taken over when it expired or its process died.

A holder keeps its lease alive with a heartbeat (`LeaseKeeper`) while it works, however long a request takes,
and every claim and acknowledgement is fenced (`hold_lease`): checked, in the same transaction, against the
lease row. A run that lost its lease (its process stalled past the lease, and another run took over) can
therefore complete nothing: what it sent meanwhile is recorded by the run that holds the lease.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from activation_pipeline.errors import StateError
from activation_pipeline.state.schema import destination_leases
from activation_pipeline.state.store import StateStore

log = logging.getLogger(__name__)


class DestinationBusyError(StateError, RuntimeError):
    """Another live run holds the destination's lease."""


class LeaseLostError(StateError, RuntimeError):
    """This run's lease expired and was taken over: it may not claim or acknowledge anything more."""


@dataclass(frozen=True)
class Lease:
    """A held lease."""

    destination_id: str
    holder: str


def pid_alive(pid: int) -> bool:
    """Whether a local process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def acquire_lease(store: StateStore, destination_id: str, ttl: float = 120.0) -> Lease:
    """Take the destination's lease, or raise DestinationBusyError naming the host and pid holding it."""
    host, pid = socket.gethostname(), os.getpid()
    holder = f"{host}:{pid}:{uuid.uuid4().hex[:8]}"
    table = destination_leases
    with store.write() as connection:
        connection.execute(
            store.insert(table)
            .values(destination_id=destination_id, holder="", host="", pid=0, expires_at=0.0)
            .on_conflict_do_nothing(index_elements=["destination_id"])
        )
        row = connection.execute(
            sa.select(table).where(table.c.destination_id == destination_id).with_for_update()
        ).one()
        now = time.time()
        free = row.expires_at < now or (row.host == host and not pid_alive(row.pid))
        if not free:
            raise DestinationBusyError(
                f"destination {destination_id} is being synced by process {row.pid} on {row.host} "
                f"(lease expires in {row.expires_at - now:.0f} s)"
            )
        connection.execute(
            sa.update(table)
            .where(table.c.destination_id == destination_id)
            .values(holder=holder, host=host, pid=pid, expires_at=now + ttl)
        )
    return Lease(destination_id, holder)


def renew_lease(store: StateStore, lease: Lease, ttl: float = 120.0) -> bool:
    """Extend a held lease; False when it is no longer this holder's."""
    with store.write() as connection:
        renewed = connection.execute(
            sa.update(destination_leases)
            .where(
                destination_leases.c.destination_id == lease.destination_id,
                destination_leases.c.holder == lease.holder,
            )
            .values(expires_at=time.time() + ttl)
        )
    return bool(renewed.rowcount)


def hold_lease(connection: sa.Connection, lease: Lease) -> None:
    """Fence: raise LeaseLostError unless `lease` is still held (checked inside the caller's transaction)."""
    table = destination_leases
    row = connection.execute(
        sa.select(table.c.holder, table.c.expires_at)
        .where(table.c.destination_id == lease.destination_id)
        .with_for_update()
    ).first()
    if row is None or row.holder != lease.holder or row.expires_at < time.time():
        raise LeaseLostError(
            f"destination {lease.destination_id}: this run's lease was taken over by another run; "
            "nothing more is recorded by this run"
        )


class LeaseKeeper:
    """A heartbeat renewing a lease every third of its time to live while the holder works."""

    def __init__(self, store: StateStore, lease: Lease, ttl: float) -> None:
        """Start renewing `lease` in a background thread."""
        self.store, self.lease, self.ttl = store, lease, ttl
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{lease.destination_id}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                if not renew_lease(self.store, self.lease, self.ttl):
                    self.lost.set()
                    return
            except Exception as error:
                log.warning(
                    "lease heartbeat of %s failed: %s", self.lease.destination_id, type(error).__name__
                )

    def check(self) -> None:
        """Raise LeaseLostError when the heartbeat found the lease gone."""
        if self.lost.is_set():
            raise LeaseLostError(
                f"destination {self.lease.destination_id}: this run's lease was taken over by another run"
            )

    def stop(self) -> None:
        """Stop renewing."""
        self._stop.set()
        self._thread.join()


def release_lease(store: StateStore, lease: Lease) -> None:
    """Give a lease up."""
    with store.write() as connection:
        connection.execute(
            sa.update(destination_leases)
            .where(
                destination_leases.c.destination_id == lease.destination_id,
                destination_leases.c.holder == lease.holder,
            )
            .values(holder="", host="", pid=0, expires_at=0.0)
        )
