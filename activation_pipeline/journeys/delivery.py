"""Who a journey's send steps deliver: everyone who reached the step, with the entry that reached it.

A send step is delivered like a connection whose members are the people who reached the step. The value held
per person is the number of the entry that reached it, so a person who re-enters the journey and reaches the
step again is sent again (a new entry is a new value), while a repeated run, a merge or a resync of the same
entry sends nothing new. People reaching a step are never removed from it (as Segment's journey lists).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from activation_pipeline.config.workspace import Workspace
from activation_pipeline.journeys.schema import journey_tables

STEP_MEMBERS_FILE = "journey_steps"
"""The exported result file of send step members (journey_key, step_key, profile_id, entry)."""


def step_members_query(schema: str | None, workspace: Workspace) -> sa.Select[Any]:
    """(journey_key, step_key, profile_id, entry): the latest entry of each person at each send step."""
    t = journey_tables(schema).transitions
    send_steps = [(j.key, s.key) for j in workspace.journeys for s in j.send_steps()]
    wanted = sa.or_(*[sa.and_(t.c.journey_key == j, t.c.step_key == s) for j, s in send_steps])
    return (
        sa.select(t.c.journey_key, t.c.step_key, t.c.profile_id, sa.func.max(t.c.entry).label("entry"))
        .where(t.c.kind == "arrived", wanted if send_steps else sa.false())
        .group_by(t.c.journey_key, t.c.step_key, t.c.profile_id)
    )
