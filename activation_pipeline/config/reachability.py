"""Can a workspace reach the databases it names? Checked before a run (`validate --check-env`), one line each.

Each database URL the workspace configures (compute on PostgreSQL, the state store, the events warehouse and
the SQL traits warehouse) is opened once with a short timeout. A failure is one line naming the setting, the
database (password hidden) and the driver's first line of explanation.
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa

from activation_pipeline.config.models import WarehouseEventsSource
from activation_pipeline.config.problems import Problem
from activation_pipeline.config.secrets import MissingSecretError, SecretRef
from activation_pipeline.config.workspace import Workspace

CONNECT_TIMEOUT_SECONDS = 5


def _urls(workspace: Workspace) -> Iterator[tuple[str, str | SecretRef]]:
    if workspace.compute.engine != "duckdb" and workspace.compute.url is not None:
        yield "compute.url", workspace.compute.url
    if workspace.state.url is not None:
        yield "state.url", workspace.state.url
    if isinstance(workspace.sources.events, WarehouseEventsSource):
        yield "sources.events.url", workspace.sources.events.url
    if workspace.sources.warehouse is not None:
        yield "sources.warehouse.url", workspace.sources.warehouse.url


def _first_line(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return lines[0] if lines else type(cause).__name__


def unreachable(workspace: Workspace) -> list[Problem]:
    """One problem per configured database that cannot be opened (none when all answer)."""
    problems = []
    for where, value in _urls(workspace):
        try:
            url = sa.engine.make_url(value.resolve(where) if isinstance(value, SecretRef) else value)
        except MissingSecretError:
            continue  # reported by the environment check
        except sa.exc.ArgumentError as error:
            problems.append(Problem(where, f"not a database URL: {error}"))
            continue
        shown = url.render_as_string(hide_password=True)
        args = {"connect_timeout": CONNECT_TIMEOUT_SECONDS} if url.get_backend_name() == "postgresql" else {}
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args=args)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as error:
            problems.append(Problem(where, f"cannot connect to {shown}: {_first_line(error)}"))
        finally:
            engine.dispose()
    return problems
