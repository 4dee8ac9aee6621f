"""What a destination client remembers per connection between runs (e.g. the Meta audience it created)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from activation_pipeline.state.schema import destination_memory
from activation_pipeline.state.store import StateStore


class DestinationMemory:
    """Per-connection platform ids of one destination, kept in the state store (`ClientOptions.memory`)."""

    def __init__(self, store: StateStore, destination_id: str) -> None:
        """Bind to a store and a destination."""
        self.store = store
        self.destination_id = destination_id

    def _where(self, connection_id: str, key: str) -> sa.ColumnElement[bool]:
        t = destination_memory.c
        return sa.and_(
            t.destination_id == self.destination_id, t.connection_id == connection_id, t.key == key
        )

    def get(self, connection_id: str, key: str) -> str | None:
        """The remembered value, or None."""
        with self.store.read() as connection:
            value = connection.execute(
                sa.select(destination_memory.c.value).where(self._where(connection_id, key))
            ).scalar_one_or_none()
        return None if value is None else str(value)

    def put(self, connection_id: str, key: str, value: str) -> None:
        """Remember a value (replacing an earlier one)."""
        statement = self.store.insert(destination_memory).values(
            destination_id=self.destination_id,
            connection_id=connection_id,
            key=key,
            value=value,
            updated_at=datetime.now(UTC),
        )
        statement = statement.on_conflict_do_update(
            index_elements=["destination_id", "connection_id", "key"],
            set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
        )
        with self.store.write() as connection:
            connection.execute(statement)

    def forget(self, connection_id: str, key: str) -> None:
        """Drop a remembered value."""
        with self.store.write() as connection:
            connection.execute(sa.delete(destination_memory).where(self._where(connection_id, key)))
