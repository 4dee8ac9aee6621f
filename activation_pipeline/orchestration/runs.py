"""What every step of a run agrees on: the workspace settings it started with, and its evaluation time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from activation_pipeline.config import Workspace, WorkspaceInvalidError, validate_text
from activation_pipeline.orchestration.resources import StateStoreResource
from activation_pipeline.orchestration.scope import AS_OF_TAG, FULL_TAG
from activation_pipeline.state.run_settings import pin_settings

StepContext = dg.OpExecutionContext | dg.AssetExecutionContext


def workspace_for_run(context: StepContext, path: str, state: StateStoreResource) -> Workspace:
    """The workspace, validated, as the file was when the run's first step read it (a later edit applies
    to the next run)."""
    current_text = Path(path).read_text(encoding="utf-8")
    current = _validated(current_text, path)
    pinned_text = pin_settings(state.open(current), context.run.run_id, current_text)
    return current if pinned_text == current_text else _validated(pinned_text, path)


def _validated(text: str, path: str) -> Workspace:
    workspace, problems = validate_text(text, path, base_dir=Path(path).resolve().parent)
    if workspace is None:
        raise WorkspaceInvalidError(path, problems)
    return workspace


def as_of_from_context(context: StepContext) -> datetime:
    """The run's evaluation time: the `activation/as_of` run tag (ISO-8601), else when the run was created.

    Every step of a run gets the same time, so the stages of one run always agree."""
    tag = context.run.tags.get(AS_OF_TAG)
    if not tag:
        record = context.instance.get_run_record_by_id(context.run.run_id)
        created = record.create_timestamp if record is not None else datetime.now(UTC)
        return created.astimezone(UTC).replace(microsecond=0)
    moment = datetime.fromisoformat(tag.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def full_rebuild_requested(context: StepContext) -> bool:
    """Whether the run carries `activation/full=true`."""
    return context.run.tags.get(FULL_TAG) == "true"
