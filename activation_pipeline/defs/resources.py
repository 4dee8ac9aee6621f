"""Dagster resources: the workspace configuration, loaded and validated once per run."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from activation_pipeline.config import Workspace, WorkspaceInvalidError, load_workspace, validate_text
from activation_pipeline.state.run_settings import pin_settings
from activation_pipeline.state.store import open_state

WORKSPACE_ENV = "ACTIVATION_WORKSPACE"
SAMPLE_WORKSPACE = Path(__file__).resolve().parents[2] / "data" / "sample" / "workspace.yml"
AS_OF_TAG = "activation/as_of"


def default_workspace_path() -> str:
    """The workspace file the UI and CLI use: $ACTIVATION_WORKSPACE, else the bundled sample."""
    return os.environ.get(WORKSPACE_ENV) or str(SAMPLE_WORKSPACE)


class WorkspaceResource(dg.ConfigurableResource):
    """The validated workspace configuration a run works on, pinned for the whole run."""

    path: str
    _run_id: str | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Remember which run this is, so every step of it reads the same settings."""
        self._run_id = context.run.run_id if context.run is not None else None

    @cached_property
    def workspace(self) -> Workspace:
        """The workspace, validated; within a run, as the file was when the run's first step read it."""
        current = load_workspace(self.path)
        if self._run_id is None:
            return current
        store = open_state(current.state_location())
        try:
            text = pin_settings(store, self._run_id, Path(self.path).read_text(encoding="utf-8"))
        finally:
            store.dispose()
        workspace, problems = validate_text(text, self.path, base_dir=Path(self.path).resolve().parent)
        if workspace is None:
            raise WorkspaceInvalidError(self.path, problems)
        return workspace


def as_of_from_context(context: dg.OpExecutionContext | dg.AssetExecutionContext) -> datetime:
    """The run's evaluation time: the `activation/as_of` run tag (ISO-8601), else when the run was created.

    Every step of a run gets the same time, so the stages of one run always agree."""
    tag = context.run.tags.get(AS_OF_TAG) if context.run else None
    if not tag:
        record = context.instance.get_run_record_by_id(context.run.run_id)
        created = record.create_timestamp if record is not None else datetime.now(UTC)
        return created.astimezone(UTC).replace(microsecond=0)
    moment = datetime.fromisoformat(tag.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
