"""A short, PII-free summary of a workspace: counts and a fingerprint of its settings."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from activation_pipeline.config.workspace import Workspace


@dataclass(frozen=True)
class WorkspaceSummary:
    """Counts of what a workspace configures, and a fingerprint that changes with any setting."""

    counts: dict[str, int]
    fingerprint: str


def summarise(workspace: Workspace) -> WorkspaceSummary:
    """Count a workspace's parts and fingerprint its settings (secret references hold names, not values)."""
    t = workspace.traits
    counts = {
        "identifiers": len(workspace.identity.identifiers),
        "custom_traits": len(t.custom) + len(t.account),
        "computed_traits": len(t.computed),
        "sql_traits": len(t.sql),
        "predictive_traits": len(t.predictive),
        "audiences": len(workspace.audiences),
        "destinations": len(workspace.destinations),
        "connections": len(workspace.connections),
    }
    dump = json.dumps(workspace.model_dump(mode="json", by_alias=True), sort_keys=True)
    return WorkspaceSummary(counts=counts, fingerprint=hashlib.sha256(dump.encode()).hexdigest()[:16])
