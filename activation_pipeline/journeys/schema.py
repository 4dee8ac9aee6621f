"""The journey state tables of the compute engine, under their own metadata in the compute schema.

Times are naive UTC like every compute table. A profile has one row in `journey_positions` per journey (its
latest entry); `journey_transitions` keeps every move (entered, arrived at a step, exited, completed), which is
where the send steps' members and the figures come from.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa


@dataclass(frozen=True)
class JourneyTables:
    """The journey tables of one compute schema."""

    metadata: sa.MetaData
    positions: sa.Table
    transitions: sa.Table
    matches: sa.Table
    versions: sa.Table
    runs: sa.Table
    step_counts: sa.Table


def journey_tables(schema: str | None) -> JourneyTables:
    """Define the journey tables in `schema`."""
    md = sa.MetaData(schema=schema)
    positions = sa.Table(
        "journey_positions",
        md,
        sa.Column("journey_key", sa.Text, nullable=False),
        sa.Column("profile_id", sa.BigInteger, nullable=False),
        sa.Column("entry", sa.Integer, nullable=False),
        sa.Column("version", sa.Text, nullable=False),
        sa.Column("step_key", sa.Text, nullable=False),
        sa.Column("since", sa.DateTime, nullable=False),
        sa.Column("entered_at", sa.DateTime, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("ended_at", sa.DateTime),
        sa.Index("journey_positions_key", "journey_key", "profile_id").ddl_if(dialect="postgresql"),
    )
    transitions = sa.Table(
        "journey_transitions",
        md,
        sa.Column("journey_key", sa.Text, nullable=False),
        sa.Column("profile_id", sa.BigInteger, nullable=False),
        sa.Column("entry", sa.Integer, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("step_key", sa.Text),
        sa.Column("moved_at", sa.DateTime, nullable=False),
        sa.Column("run_as_of", sa.DateTime, nullable=False),
        sa.Index("journey_transitions_key", "journey_key", "step_key").ddl_if(dialect="postgresql"),
    )
    matches = sa.Table(
        "journey_entry_matches",
        md,
        sa.Column("journey_key", sa.Text, nullable=False),
        sa.Column("profile_id", sa.BigInteger, nullable=False),
    )
    versions = sa.Table(
        "journey_versions",
        md,
        sa.Column("journey_key", sa.Text, nullable=False),
        sa.Column("version", sa.Text, nullable=False),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("first_as_of", sa.DateTime, nullable=False),
    )
    runs = sa.Table(
        "journey_runs",
        md,
        sa.Column("journey_key", sa.Text, nullable=False),
        sa.Column("as_of", sa.DateTime, nullable=False),
        sa.Column("version", sa.Text, nullable=False),
        sa.Column("entered", sa.BigInteger, nullable=False),
        sa.Column("exited", sa.BigInteger, nullable=False),
        sa.Column("completed", sa.BigInteger, nullable=False),
        sa.Column("active", sa.BigInteger, nullable=False),
    )
    step_counts = sa.Table(
        "journey_run_steps",
        md,
        sa.Column("journey_key", sa.Text, nullable=False),
        sa.Column("as_of", sa.DateTime, nullable=False),
        sa.Column("step_key", sa.Text, nullable=False),
        sa.Column("in_step", sa.BigInteger, nullable=False),
        sa.Column("arrived", sa.BigInteger, nullable=False),
    )
    return JourneyTables(md, positions, transitions, matches, versions, runs, step_counts)
