"""One sync run at a time per destination: a lease row, taken over when it expired or its process died."""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from activation_pipeline.errors import StateError
from activation_pipeline.state.schema import destination_leases
from activation_pipeline.state.store import StateStore


class DestinationBusyError(StateError, RuntimeError):
    """Another live run holds the destination's lease."""


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


def renew_lease(store: StateStore, lease: Lease, ttl: float = 120.0) -> None:
    """Extend a held lease."""
    with store.write() as connection:
        connection.execute(
            sa.update(destination_leases)
            .where(
                destination_leases.c.destination_id == lease.destination_id,
                destination_leases.c.holder == lease.holder,
            )
            .values(expires_at=time.time() + ttl)
        )


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
