"""Table definitions of the compute engine: landed events, quarantine, identity graph, state and audiences.

Trait tables have one column per configured trait and are created by `CREATE TABLE ... AS` in their modules;
the tables here have fixed columns. All timestamps are naive UTC.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from activation_pipeline.compute.sqlutil import table_columns

JsonType = sa.JSON().with_variant(JSONB(), "postgresql")
PREDICTIVE_TABLE = "predictive_traits"
"""The trait table of predictive traits: profile_id, then each trait's score and `<key>_percentile`."""


@dataclass(frozen=True)
class Tables:
    """The fixed tables of one compute schema."""

    metadata: sa.MetaData
    events: sa.Table
    quarantine: sa.Table
    landings: sa.Table
    state: sa.Table
    identities: sa.Table
    identity_sets: sa.Table
    identifier_sets: sa.Table
    set_keys: sa.Table
    profiles: sa.Table
    profile_merges: sa.Table
    profile_aliases: sa.Table
    pending_affected: sa.Table
    serving_pending: sa.Table
    """Profiles whose serving document may have changed since the serving copy was last published."""
    membership: sa.Table
    membership_previous: sa.Table
    changes: sa.Table
    audience_runs: sa.Table


def build_tables(schema: str | None) -> Tables:
    """Define the fixed tables in `schema`."""
    md = sa.MetaData(schema=schema)
    events = sa.Table(
        "events",
        md,
        sa.Column("message_id", sa.Text, nullable=False),
        # A 63-bit hash of message_id: DuckDB's duplicate check scans it instead of every stored id's text.
        sa.Column("message_hash", sa.BigInteger),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("event", sa.Text),
        sa.Column("user_id", sa.Text),
        sa.Column("anonymous_id", sa.Text),
        sa.Column("group_id", sa.Text),
        sa.Column("previous_id", sa.Text),
        sa.Column("timestamp", sa.DateTime, nullable=False),
        sa.Column("received_at", sa.DateTime),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("line", sa.BigInteger, nullable=False),
        sa.Column("batch", sa.BigInteger, nullable=False),
        sa.Column("set_hash", sa.BigInteger),
        sa.Column("traits", JsonType),
        sa.Column("properties", JsonType),
        sa.Column("context", JsonType),
        sa.Index("events_timestamp", "timestamp").ddl_if(dialect="postgresql"),
        sa.Index("events_set_hash", "set_hash").ddl_if(dialect="postgresql"),
        sa.Index("events_message_id", "message_id").ddl_if(dialect="postgresql"),
        sa.Index("events_source", "source").ddl_if(dialect="postgresql"),
    )
    quarantine = sa.Table(
        "quarantine",
        md,
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("line", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("raw", sa.Text, nullable=False),
        sa.Column("batch", sa.BigInteger, nullable=False),
    )
    landings = sa.Table(
        "landed_sources",
        md,
        sa.Column("source", sa.Text, primary_key=True),
        sa.Column("size", sa.BigInteger),
        sa.Column("mtime_ns", sa.BigInteger),
        sa.Column("content_hash", sa.Text),
        sa.Column("lines", sa.BigInteger),
        sa.Column("complete", sa.Boolean),
        sa.Column("watermark", sa.DateTime),
        sa.Column("batch", sa.BigInteger, nullable=False),
        sa.Column("events", sa.BigInteger, nullable=False),
        sa.Column("quarantined", sa.BigInteger, nullable=False),
        sa.Column("landed_at", sa.DateTime, nullable=False),
    )
    state = sa.Table(
        "compute_state",
        md,
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text),
    )
    identities = sa.Table(
        "identities",
        md,
        sa.Column("identifier_type", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("profile_id", sa.BigInteger),
        sa.Column("first_seen", sa.DateTime, nullable=False),
        sa.Column("last_seen", sa.DateTime, nullable=False),
        sa.Index("identities_key", "identifier_type", "value").ddl_if(dialect="postgresql"),
        sa.Index("identities_profile", "profile_id").ddl_if(dialect="postgresql"),
    )
    identity_sets = sa.Table(
        "identity_sets",
        md,
        sa.Column("set_hash", sa.BigInteger, nullable=False),
        sa.Column("profile_id", sa.BigInteger),
        sa.Column("first_seen", sa.DateTime, nullable=False),
        sa.Column("last_seen", sa.DateTime, nullable=False),
        sa.Index("identity_sets_hash", "set_hash").ddl_if(dialect="postgresql"),
        sa.Index("identity_sets_profile", "profile_id").ddl_if(dialect="postgresql"),
    )
    identifier_sets = sa.Table(
        "identifier_sets",
        md,
        sa.Column("set_hash", sa.BigInteger, nullable=False),
        # The set as landed, JSON `[[type, value], ...]` most trusted first: ties in resolution order break on it.
        sa.Column("ids", sa.Text, nullable=False),
        sa.Index("identifier_sets_hash", "set_hash").ddl_if(dialect="postgresql"),
    )
    set_keys = sa.Table(
        "set_keys",
        md,
        sa.Column("set_hash", sa.BigInteger, nullable=False),
        sa.Column("pos", sa.Integer, nullable=False),
        sa.Column("identifier_type", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Index("set_keys_hash", "set_hash").ddl_if(dialect="postgresql"),
    )
    profiles = sa.Table(
        "profiles",
        md,
        sa.Column("profile_id", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Index("profiles_id", "profile_id").ddl_if(dialect="postgresql"),
    )
    profile_merges = sa.Table(
        "profile_merges",
        md,
        sa.Column("merged_profile_id", sa.BigInteger, nullable=False),
        sa.Column("into_profile_id", sa.BigInteger, nullable=False),
        sa.Column("merged_at", sa.DateTime, nullable=False),
    )
    profile_aliases = sa.Table(
        "profile_aliases",
        md,
        sa.Column("old_profile_id", sa.BigInteger, nullable=False),
        sa.Column("profile_id", sa.BigInteger, nullable=False),
        sa.Index("profile_aliases_old", "old_profile_id").ddl_if(dialect="postgresql"),
    )
    pending_affected = sa.Table(
        "pending_affected",
        md,
        sa.Column("profile_id", sa.BigInteger, nullable=False),
    )
    serving_pending = sa.Table(
        "serving_pending",
        md,
        sa.Column("profile_id", sa.BigInteger, nullable=False),
    )
    membership = sa.Table(
        "audience_membership",
        md,
        sa.Column("audience_key", sa.Text, nullable=False),
        sa.Column("profile_id", sa.BigInteger, nullable=False),
        sa.Column("as_of", sa.DateTime, nullable=False),
        sa.Index("audience_membership_key", "audience_key", "profile_id").ddl_if(dialect="postgresql"),
    )
    membership_previous = sa.Table(
        "audience_membership_previous",
        md,
        sa.Column("audience_key", sa.Text, nullable=False),
        sa.Column("profile_id", sa.BigInteger, nullable=False),
        sa.Column("as_of", sa.DateTime, nullable=False),
    )
    changes = sa.Table(
        "audience_changes",
        md,
        sa.Column("audience_key", sa.Text, nullable=False),
        sa.Column("profile_id", sa.BigInteger, nullable=False),
        sa.Column("change", sa.Text, nullable=False),
        sa.Column("as_of", sa.DateTime, nullable=False),
        sa.Index("audience_changes_as_of", "as_of", "audience_key").ddl_if(dialect="postgresql"),
    )
    audience_runs = sa.Table(
        "audience_runs",
        md,
        sa.Column("audience_key", sa.Text, nullable=False),
        sa.Column("as_of", sa.DateTime, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("previous_size", sa.BigInteger),
        sa.Column("entered", sa.BigInteger, nullable=False),
        sa.Column("exited", sa.BigInteger, nullable=False),
        sa.Column("duplicates", sa.BigInteger, nullable=False),
    )
    return Tables(
        metadata=md,
        events=events,
        quarantine=quarantine,
        landings=landings,
        state=state,
        identities=identities,
        identity_sets=identity_sets,
        identifier_sets=identifier_sets,
        set_keys=set_keys,
        profiles=profiles,
        profile_merges=profile_merges,
        profile_aliases=profile_aliases,
        pending_affected=pending_affected,
        serving_pending=serving_pending,
        membership=membership,
        membership_previous=membership_previous,
        changes=changes,
        audience_runs=audience_runs,
    )


MESSAGE_HASH_SQL = "(hash(message_id) >> 1)::BIGINT"
"""DuckDB SQL for `events.message_hash`: DuckDB's own hash (0.02 us where md5 takes 0.56 per message).

DuckDB does not promise that `hash` stays the same across its versions, so the hash of a fixed text is kept
in the state table (`MESSAGE_HASH_PROBE`): when the running DuckDB hashes it differently, every stored
message hash is computed again before anything compares with it.
"""
MESSAGE_HASH_PROBE = "message_hash_probe"
_PROBE_TEXT = "activation-pipeline message hash"


def upgrade_tables(conn: sa.Connection, tables: Tables) -> None:
    """Add the columns tables created by an earlier version lack (filled where the code relies on them)."""
    events = tables.events
    added = "message_hash" not in table_columns(conn, str(events.schema), events.name)
    if added:
        preparer = conn.dialect.identifier_preparer
        target = f"{preparer.quote_schema(str(events.schema))}.{preparer.quote(events.name)}"
        conn.execute(sa.text(f"ALTER TABLE {target} ADD COLUMN message_hash BIGINT"))
    if conn.dialect.name == "duckdb":  # PostgreSQL's duplicate check looks message_id up in its index instead
        _refresh_message_hashes(conn, tables, fill=added)
    if "ids" in table_columns(conn, str(events.schema), events.name):
        _move_set_texts(conn, tables)


def _move_set_texts(conn: sa.Connection, tables: Tables) -> None:
    """Keep each identifier set's text once in `identifier_sets`, not on every event (earlier versions)."""
    events, sets = tables.events, tables.identifier_sets
    stored = sa.table(events.name, sa.column("set_hash"), sa.column("ids"), schema=events.schema)
    known = sa.select(sets.c.set_hash)
    texts = (
        sa.select(stored.c.set_hash, sa.func.min(stored.c.ids))
        .where(stored.c.set_hash.isnot(None), stored.c.set_hash.not_in(known))
        .group_by(stored.c.set_hash)
    )
    conn.execute(sa.insert(sets).from_select(["set_hash", "ids"], texts))
    preparer = conn.dialect.identifier_preparer
    target = f"{preparer.quote_schema(str(events.schema))}.{preparer.quote(events.name)}"
    conn.execute(sa.text(f"ALTER TABLE {target} DROP COLUMN ids"))


def _refresh_message_hashes(conn: sa.Connection, tables: Tables, *, fill: bool) -> None:
    """Compute the stored message hashes (again) when `fill`, or when the running DuckDB hashes differently."""
    state = tables.state
    probe = str(
        conn.execute(
            sa.text("SELECT " + MESSAGE_HASH_SQL.replace("message_id", ":text")), {"text": _PROBE_TEXT}
        ).scalar()
    )
    stored = conn.execute(sa.select(state.c.value).where(state.c.key == MESSAGE_HASH_PROBE)).scalar()
    if stored == probe and not fill:
        return
    events = tables.events
    conn.execute(sa.update(events).values(message_hash=sa.text(MESSAGE_HASH_SQL)))
    conn.execute(sa.delete(state).where(state.c.key == MESSAGE_HASH_PROBE))
    conn.execute(sa.insert(state).values(key=MESSAGE_HASH_PROBE, value=probe))
