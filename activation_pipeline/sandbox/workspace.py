"""Run a workspace against local fake servers: one sandbox per destination, reached through delivery settings.

Nothing is rewritten: the session says where each destination's fake server listens, and the delivery layer
points the destination there (`sandbox_destination`); unset secrets get placeholder values in memory only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from activation_pipeline.config import load_workspace
from activation_pipeline.config.models import DestinationBase
from activation_pipeline.config.secrets import SecretRef
from activation_pipeline.destinations.registry import CATALOGUE
from activation_pipeline.sandbox.base import SandboxServer

SANDBOX_STATE_DIR = "state/sandbox"
"""The sandbox's own state stores, beside the workspace file, so sandbox syncs never mix with real ones."""


def secret_value(name: str) -> str:
    """A secret for a fake server: the environment's value if set, else a placeholder."""
    return os.environ.get(name) or f"sandbox-{name.lower()}"


class PlaceholderSecret(SecretRef):
    """A secret reference that resolves to a placeholder when its variable is unset (fake servers only)."""

    def resolve(self, where: str = "") -> str:
        """The variable's value, else `sandbox-<name>`."""
        return secret_value(self.env)


def _placeholders(value: Any) -> Any:
    if isinstance(value, SecretRef):
        return PlaceholderSecret(env=value.env)
    if isinstance(value, dict):
        return {key: _placeholders(item) for key, item in value.items()}
    return value


def sandbox_destination(
    destination: DestinationBase, url: str | None, *, placeholders: bool = True
) -> DestinationBase:
    """The destination pointed at a fake server's `url` (when given), with placeholder secrets."""
    settings = getattr(destination, "settings", None)
    if not isinstance(settings, BaseModel):
        return destination
    update: dict[str, Any] = {}
    if placeholders:
        update = {name: _placeholders(getattr(settings, name)) for name in type(settings).model_fields}
    if url is not None:
        update["url" if "url" in type(settings).model_fields else "base_url"] = url
    return destination.model_copy(update={"settings": settings.model_copy(update=update)})


@dataclass
class SandboxSession:
    """Running fake servers, one per destination that speaks HTTP, and where each listens."""

    workspace_path: Path
    workspace: str
    servers: dict[str, SandboxServer] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)

    @property
    def state_directory(self) -> Path:
        """Where the sandbox keeps its own state stores."""
        return self.workspace_path.parent / SANDBOX_STATE_DIR

    def delivered(self) -> dict[str, int]:
        """Requests each destination's fake server received."""
        return {destination: len(server.requests) for destination, server in self.servers.items()}


def _secret(settings: Any, name: str) -> str:
    ref = getattr(settings, name, None)
    return secret_value(ref.env) if isinstance(ref, SecretRef) else ""


def _server_for(destination: Any) -> tuple[SandboxServer | None, str]:
    """The fake server of a destination (started), and the URL the destination is to use."""
    start = CATALOGUE[destination.type].fake
    if start is None:
        return None, ""  # functions run the user's code locally
    return start(destination.settings, lambda name: _secret(destination.settings, name))


@contextmanager
def sandboxed(workspace_path: str | Path) -> Iterator[SandboxSession]:
    """Start a fake server per destination of the workspace; stop them afterwards.

    The fake servers start empty, so the workspace's sandbox state store (`<state_directory>/<workspace>.db`)
    starts empty too: otherwise its snapshots would say the fakes hold what an earlier session sent."""
    source = Path(workspace_path).resolve()
    workspace = load_workspace(source)
    session = SandboxSession(source, workspace.workspace)
    for leftover in session.state_directory.glob(f"{workspace.workspace}.db*"):
        leftover.unlink()
    try:
        for destination in workspace.destinations:
            server, url = _server_for(destination)
            if server is not None:
                session.servers[destination.id] = server
                session.urls[destination.id] = url
        yield session
    finally:
        for server in session.servers.values():
            server.stop()
