"""Settings history: every change of a connection's (or journey send step's) event settings, trait enrichment or
ID sync, and of each journey's definition (`journey.<key>`), as a diff."""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from activation_pipeline.config.journeys import Journey
from activation_pipeline.config.models import Connection
from activation_pipeline.config.workspace import Workspace
from activation_pipeline.state.schema import settings_history
from activation_pipeline.state.store import StateStore

# The settings a run pins and this history tracks (the destination's credentials are not among them).
TRACKED = (
    "setup",
    "send_identify",
    "send_track",
    "send_mobile_ids",
    "trait_enrichment",
    "id_sync",
    "settings",
)


@dataclass(frozen=True)
class Difference:
    """One changed value: its path in the connection's settings, before and after (None: absent)."""

    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class SettingsVersion:
    """One recorded version of a connection's settings."""

    id: int
    connection_id: str
    recorded_at: datetime
    fingerprint: str
    settings: dict[str, Any] | None
    """None when the connection was removed from the workspace."""
    diff: list[Difference]


def tracked_settings(connection: Connection) -> dict[str, Any]:
    """The connection's event settings, trait enrichment and ID sync as plain JSON values."""
    dump = connection.model_dump(mode="json", by_alias=True)
    return {key: dump[key] for key in TRACKED}


def journey_settings(journey: Journey) -> dict[str, Any]:
    """A journey's definition as plain JSON values (what its settings history records)."""
    return journey.model_dump(mode="json", by_alias=True, exclude_none=True)


def fingerprint(settings: dict[str, Any] | None) -> str:
    """A stable hash of a settings dict (None for a removed connection)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def diff(before: Any, after: Any, path: str = "") -> list[Difference]:
    """The leaf-level differences between two JSON values, with `a.b[2].c` paths (absent containers are empty)."""
    if before is None and isinstance(after, dict | list):
        before = type(after)()
    if after is None and isinstance(before, dict | list):
        after = type(before)()
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[Difference] = []
        for key in sorted(set(before) | set(after)):
            sub = f"{path}.{key}" if path else key
            found += diff(before.get(key), after.get(key), sub)
        return found
    if isinstance(before, list) and isinstance(after, list):
        found = []
        for i in range(max(len(before), len(after))):
            found += diff(
                before[i] if i < len(before) else None, after[i] if i < len(after) else None, f"{path}[{i}]"
            )
        return found
    return [] if before == after else [Difference(path, before, after)]


def _latest(connection: sa.Connection, workspace: str) -> dict[str, sa.Row[Any]]:
    t = settings_history
    newest = (
        sa.select(t.c.connection_id, sa.func.max(t.c.id).label("id"))
        .where(t.c.workspace == workspace)
        .group_by(t.c.connection_id)
        .subquery()
    )
    rows = connection.execute(sa.select(t).join(newest, t.c.id == newest.c.id))
    return {row.connection_id: row for row in rows}


def record_settings(
    store: StateStore, workspace: Workspace, now: datetime | None = None
) -> list[SettingsVersion]:
    """Record a new version for every connection whose tracked settings changed (or appeared, or went away)."""
    now = now or datetime.now(UTC)
    recorded: list[SettingsVersion] = []
    with store.write() as connection:
        if store.dialect == "postgresql":  # two runs starting together must not both record the same change
            lock = zlib.crc32(f"settings_history:{workspace.workspace}".encode())
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(lock)))
        latest = _latest(connection, workspace.workspace)
        current: dict[str, dict[str, Any] | None] = {
            c.connection_id: tracked_settings(c) for c in workspace.delivery_connections()
        }
        # A journey's whole definition (steps, conditions, entry and exit rules) is tracked as `journey.<key>`.
        current.update({f"journey.{j.key}": journey_settings(j) for j in workspace.journeys})
        for connection_id, last in latest.items():
            if connection_id not in current and last.settings is not None:
                current[connection_id] = None
        for connection_id, settings in sorted(current.items()):
            previous = latest.get(connection_id)
            new_fingerprint = fingerprint(settings)
            if previous is not None and previous.fingerprint == new_fingerprint:
                continue
            before = json.loads(previous.settings) if previous is not None and previous.settings else {}
            changes = diff(before, settings or {})
            values = {
                "workspace": workspace.workspace,
                "connection_id": connection_id,
                "recorded_at": now,
                "fingerprint": new_fingerprint,
                "settings": None if settings is None else json.dumps(settings, sort_keys=True),
                "diff": json.dumps([c.__dict__ for c in changes]),
            }
            new_id = connection.execute(sa.insert(settings_history).values(**values)).inserted_primary_key
            recorded.append(
                SettingsVersion(
                    int(new_id[0]) if new_id else 0,
                    connection_id,
                    now,
                    new_fingerprint,
                    settings,
                    changes,
                )
            )
    return recorded


def history(store: StateStore, workspace: str, connection_id: str) -> list[SettingsVersion]:
    """Every recorded version of one connection's settings, oldest first."""
    t = settings_history
    with store.read() as connection:
        rows = connection.execute(
            sa.select(t)
            .where(t.c.workspace == workspace, t.c.connection_id == connection_id)
            .order_by(t.c.id)
        ).all()
    return [
        SettingsVersion(
            id=row.id,
            connection_id=row.connection_id,
            recorded_at=row.recorded_at if row.recorded_at.tzinfo else row.recorded_at.replace(tzinfo=UTC),
            fingerprint=row.fingerprint,
            settings=json.loads(row.settings) if row.settings else None,
            diff=[Difference(**d) for d in json.loads(row.diff)],
        )
        for row in rows
    ]


def format_history(versions: list[SettingsVersion]) -> str:
    """A readable listing: one block per version with its changed values."""
    lines: list[str] = []
    for number, version in enumerate(versions):
        state = "removed" if version.settings is None else f"version {version.fingerprint[:12]}"
        if number == 0 and version.settings is not None:
            state = f"first recorded ({state}): every setting as it was then"
        lines.append(f"{version.recorded_at.isoformat()}  {state}")
        for change in version.diff:
            before = json.dumps(change.before) if change.before is not None else "(none)"
            after = json.dumps(change.after) if change.after is not None else "(none)"
            lines.append(f"    {change.path}: {before} -> {after}")
    return "\n".join(lines)
