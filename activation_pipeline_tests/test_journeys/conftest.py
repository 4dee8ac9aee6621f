"""Journey test helpers: a workspace with a cart journey, and runs that evaluate audiences then journeys."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.config import Workspace
from activation_pipeline.journeys.evaluate import JourneysSummary, evaluate_journeys
from activation_pipeline.journeys.schema import journey_tables

from ..test_compute.conftest import Messages, at, compute_engine, make_workspace, messages, run

__all__ = ["compute_engine", "messages"]

DESTINATIONS = """
destinations:
  - {id: braze, type: braze, settings: {base_url: "http://127.0.0.1:1", api_key: {env: BZ_KEY}}}
  - {id: hook, type: webhook, settings: {url: "http://127.0.0.1:1/hook"}}
"""

CART = (
    """
traits:
  custom: [plan, first_name, email]
audiences:
  - key: cart_abandoners
    where:
      all:
        - {event: Product Added, within: 7d}
        - {event: Order Completed, within: 7d, at_most: 0}
"""
    + DESTINATIONS
)


def cart_journey(extra: str = "", steps: str | None = None) -> str:
    """The cart journey YAML (wait 1d, split on ordered since entry, send to the webhook), with extra keys."""
    body = (
        steps
        or """
      - {key: wait_a_day, type: wait, duration: 1d, next: ordered}
      - {key: ordered, type: split, condition: {event: Order Completed, since: entry}, else: remind}
      - {key: remind, type: send, destinations: [{destination: hook, send_track: true}]}
"""
    )
    return f"""
journeys:
  - key: cart
    entry: {{audience: cart_abandoners}}
{extra}
    steps:{body}"""


def workspace_with(tmp_path: Path, journey_yaml: str, base_extra: str = CART) -> Workspace:
    """A validated workspace with the cart audience, two destinations and the journey given."""
    return make_workspace(tmp_path, base_extra + journey_yaml)


def step_run(workspace: Workspace, engine: ComputeEngine, messages: Messages, as_of: str) -> JourneysSummary:
    """Land, evaluate audiences and then the journeys at `as_of`."""
    run(workspace, engine, messages, as_of)
    return evaluate_journeys(engine, workspace, at(as_of))


def positions(engine: ComputeEngine, key: str = "cart") -> dict[int, dict[str, Any]]:
    """Each profile's position in a journey."""
    p = journey_tables(engine.schema).positions
    with engine.begin() as conn:
        rows = conn.execute(sa.select(p).where(p.c.journey_key == key)).mappings().all()
    return {int(r["profile_id"]): dict(r) for r in rows}


def transitions(engine: ComputeEngine, key: str = "cart") -> list[tuple[int, int, str, str | None, datetime]]:
    """Every move in a journey: (profile, entry, kind, step, at), in time order."""
    t = journey_tables(engine.schema).transitions
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(t.c.profile_id, t.c.entry, t.c.kind, t.c.step_key, t.c.moved_at).where(
                t.c.journey_key == key
            )
        ).all()
    return sorted((int(r[0]), int(r[1]), r[2], r[3], r[4]) for r in rows)
