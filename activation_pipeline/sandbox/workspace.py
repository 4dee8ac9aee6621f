"""Run a workspace against local fake servers: one sandbox per destination, the file rewritten to use them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from activation_pipeline.config import load_workspace
from activation_pipeline.config.secrets import SecretRef
from activation_pipeline.destinations.registry import CATALOGUE
from activation_pipeline.sandbox.base import SandboxServer

SANDBOX_STATE = "state/sandbox_state.db"


@dataclass
class SandboxSession:
    """A running sandbox: the rewritten workspace file and the fake server of each destination."""

    workspace_path: Path
    servers: dict[str, SandboxServer] = field(default_factory=dict)

    def delivered(self) -> dict[str, int]:
        """Requests each destination's fake server received."""
        return {destination: len(server.requests) for destination, server in self.servers.items()}


def _secret(settings: Any, name: str, env: dict[str, str]) -> str:
    ref = getattr(settings, name, None)
    return env[ref.env] if isinstance(ref, SecretRef) else ""


def _server_for(destination: Any, env: dict[str, str]) -> tuple[SandboxServer | None, str, str]:
    """The fake server of a destination, and the setting (and value) that points the destination at it."""
    start = CATALOGUE[destination.type].fake
    if start is None:
        return None, "", ""  # functions run the user's code locally
    server, url = start(destination.settings, lambda name: _secret(destination.settings, name, env))
    return server, "url" if "url" in type(destination.settings).model_fields else "base_url", url


def _secret_names(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if set(value) == {"env"} and isinstance(value["env"], str):
            yield value["env"]
        for item in value.values():
            yield from _secret_names(item)
    elif isinstance(value, list):
        for item in value:
            yield from _secret_names(item)


@contextmanager
def sandboxed(workspace_path: str | Path) -> Iterator[SandboxSession]:
    """Start a fake server per destination and yield a rewritten workspace file that sends to them.

    Secrets that are not set get placeholder values for the duration (the fakes accept what they are given);
    the sandbox keeps its own state store, so sandbox syncs never mix with real ones.
    """
    source = Path(workspace_path).resolve()
    raw = yaml.safe_load(source.read_text())
    placeholders = {
        name: f"sandbox-{name.lower()}" for name in _secret_names(raw) if not os.environ.get(name)
    }
    saved = {name: os.environ.get(name) for name in placeholders}
    os.environ.update(placeholders)
    env = {name: os.environ[name] for name in _secret_names(raw)}
    workspace = load_workspace(source)
    session = SandboxSession(source.with_name(f".sandbox-{source.name}"))
    try:
        for position, destination in enumerate(workspace.destinations):
            server, setting, value = _server_for(destination, env)
            if server is None:
                continue
            session.servers[destination.id] = server
            raw["destinations"][position]["settings"][setting] = value
        raw["state"] = {"path": SANDBOX_STATE}
        session.workspace_path.write_text(yaml.safe_dump(raw, sort_keys=False))
        yield session
    finally:
        for server in session.servers.values():
            server.stop()
        session.workspace_path.unlink(missing_ok=True)
        for name, previous in saved.items():
            if previous is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = previous
