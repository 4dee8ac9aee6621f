"""Workspace configuration: typed models, loading and validation.

Names are imported on first use, so that `config.models` can be imported by destination packages (whose
types the `Workspace` model is built from) without loading the whole package first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from activation_pipeline.config.loader import (
        load_workspace,
        missing_environment,
        validate_file,
        validate_text,
    )
    from activation_pipeline.config.problems import Problem, WorkspaceInvalidError
    from activation_pipeline.config.secrets import MissingSecretError, SecretRef
    from activation_pipeline.config.workspace import Workspace

_HOMES = {
    "load_workspace": "loader",
    "missing_environment": "loader",
    "validate_file": "loader",
    "validate_text": "loader",
    "Problem": "problems",
    "WorkspaceInvalidError": "problems",
    "MissingSecretError": "secrets",
    "SecretRef": "secrets",
    "Workspace": "workspace",
}

__all__ = [
    "MissingSecretError",
    "Problem",
    "SecretRef",
    "Workspace",
    "WorkspaceInvalidError",
    "load_workspace",
    "missing_environment",
    "validate_file",
    "validate_text",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
