"""Settings pinned per run: every step of a run reads the workspace file as it was when the run began."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from activation_pipeline.state.schema import run_settings
from activation_pipeline.state.store import StateStore


def pin_settings(store: StateStore, run_id: str, current_text: str) -> str:
    """The workspace text of a run: the first caller's `current_text`, which every later caller gets back."""
    with store.write() as connection:
        connection.execute(
            store.insert(run_settings)
            .values(run_id=run_id, workspace_text=current_text, pinned_at=datetime.now(UTC))
            .on_conflict_do_nothing(index_elements=["run_id"])
        )
        return str(
            connection.execute(
                sa.select(run_settings.c.workspace_text).where(run_settings.c.run_id == run_id)
            ).scalar_one()
        )
