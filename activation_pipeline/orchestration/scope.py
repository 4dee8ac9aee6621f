"""Names of one workspace's Dagster objects: asset keys under the workspace name, prefixed jobs and groups.

Several workspaces share one code location and one instance, so every key, group, job, schedule, sensor and
partition set of a workspace carries its name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import dagster as dg

AS_OF_TAG = "activation/as_of"
"""Run tag: the evaluation time (ISO-8601); without it, the time the run was created."""
FULL_TAG = "activation/full"
"""Run tag: `true` rebuilds profiles and recomputes every trait and audience instead of an incremental run."""
WORKSPACE_TAG = "activation/workspace"
SYNC_MODE_TAG = "activation/sync_mode"
DESTINATION_TAG = "activation/destination"
RESYNC_WORKSPACE_TAG = "activation/resync_workspace"
RESYNC_REQUEST_TAG = "activation/resync_request"

CONFIG, INGEST, IDENTITY, TRAITS, AUDIENCES, SYNC = (
    "config",
    "ingest",
    "identity",
    "traits",
    "audiences",
    "sync",
)


@dataclass(frozen=True)
class Scope:
    """One workspace's namespace in a code location: its asset key prefix and its name prefix."""

    workspace: str
    """The workspace name (`a-z`, digits, `_`, `-`): the first part of every asset key."""

    @property
    def ident(self) -> str:
        """The name as a Dagster identifier (`-` becomes `_`): the prefix of jobs, groups and sensors."""
        return re.sub(r"[^A-Za-z0-9_]", "_", self.workspace)

    def key(self, *path: str) -> dg.AssetKey:
        """An asset key under the workspace name, e.g. `acme-shop/audiences/high_value_recent`."""
        return dg.AssetKey([self.workspace, *path])

    def group(self, stage: str) -> str:
        """The asset group of a stage, e.g. `acme_shop/audiences`."""
        return f"{self.ident}/{stage}"

    def name(self, base: str) -> str:
        """A job, schedule or sensor name, e.g. `acme_shop__activation_job`."""
        return f"{self.ident}__{base}"

    def partitions(self, destination_id: str) -> dg.DynamicPartitionsDefinition:
        """The connection partitions of one destination (partitions live in the shared instance)."""
        return dg.DynamicPartitionsDefinition(name=f"connections_{self.workspace}_{destination_id}")
