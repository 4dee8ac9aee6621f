"""Workspace configuration: typed models, the destination catalogue and validation."""

from activation_pipeline.config.catalogue import CATALOGUE, DestinationSpec
from activation_pipeline.config.loader import (
    load_workspace,
    missing_environment,
    validate_file,
    validate_text,
)
from activation_pipeline.config.problems import Problem, WorkspaceInvalidError
from activation_pipeline.config.secrets import MissingSecretError, SecretRef
from activation_pipeline.config.workspace import Workspace

__all__ = [
    "CATALOGUE",
    "DestinationSpec",
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
