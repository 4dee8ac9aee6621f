"""Dagster resources: the state store, the compute engine and delivery, shared by every workspace.

The defaults use what each workspace file configures. The sandbox and the tests swap them (another state
directory, fake servers' URLs, no rate limiter, no waiting) instead of rewriting files or the environment.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import dagster as dg
from pydantic import Field, PrivateAttr

from activation_pipeline.compute.pipeline import ComputePipeline
from activation_pipeline.config import Workspace
from activation_pipeline.config.models import DestinationBase
from activation_pipeline.delivery.rate_limit import SharedRateLimiter
from activation_pipeline.delivery.sync import rate_limit_for
from activation_pipeline.destinations.http import RetryPolicy
from activation_pipeline.sandbox.workspace import SandboxSession, sandbox_destination
from activation_pipeline.state.store import StateStore, open_state
from activation_pipeline.sync.compute_view import ResultsView, export_results, results_directory

SANDBOX_TAG = "activation/sandbox"
"""Run tag: `true` on every run whose resources send to the sandbox's fake servers."""
SANDBOX_ENV = "ACTIVATION_SANDBOX"
"""The sandbox wiring file (`activation-pipeline ui --sandbox` writes it): the code location's resources then
send to the fake servers and keep the sandbox's own state and compute results."""


class StateStoreResource(dg.ConfigurableResource):
    """Each workspace's state store (outbox, ledger, snapshots, settings history), opened once per run."""

    directory: str = Field(
        default="",
        description="When set, each workspace's store is `<directory>/<workspace>.db` instead of the one its "
        "file configures (the sandbox's own stores, a test's temporary ones).",
    )
    sandbox: bool = Field(
        default=False,
        description="Tag every run using these stores `activation/sandbox=true` (the sandbox's own stores).",
    )
    _stores: dict[str, StateStore] = PrivateAttr(default_factory=dict)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Tag the run as a sandbox run, whichever way it was launched (job, asset graph, sensor, schedule)."""
        run = context.run
        if (
            self.sandbox
            and run is not None
            and context.instance is not None
            and run.tags.get(SANDBOX_TAG) != "true"
        ):
            context.instance.add_run_tags(run.run_id, {SANDBOX_TAG: "true"})

    def location(self, workspace: Workspace) -> str:
        """Where the workspace's store is: a SQLite path or a SQLAlchemy URL."""
        if self.directory:
            return str(Path(self.directory) / f"{workspace.workspace}.db")
        return workspace.state_location()

    def open(self, workspace: Workspace) -> StateStore:
        """The workspace's store, opened (tables created) on first use and kept until the run ends."""
        location = self.location(workspace)
        if location not in self._stores:
            self._stores[location] = open_state(location)
        return self._stores[location]

    def close(self) -> None:
        """Close every store this resource opened."""
        for store in self._stores.values():
            store.dispose()
        self._stores.clear()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Close the stores when the run (or sensor tick) is done."""
        self.close()


class ComputeResource(dg.ConfigurableResource):
    """The compute engine of each workspace (DuckDB or PostgreSQL), and the results exported for syncs."""

    directory: str = Field(
        default="",
        description="When set, each workspace computes in `<directory>/<workspace>/` (DuckDB file, exported "
        "results, serving copies; PostgreSQL: schema `<schema>_sandbox`) instead of where its file says: "
        "the sandbox's own evaluation, never read by the real syncs.",
    )

    def workspace(self, workspace: Workspace) -> Workspace:
        """The workspace with its compute and serving locations moved into `directory` (the file is not touched)."""
        if not self.directory:
            return workspace
        root = Path(self.directory).resolve() / workspace.workspace
        compute = workspace.compute.model_copy(
            update={"path": str(root / "compute.duckdb")}
            if workspace.compute.engine == "duckdb"
            else {"schema_": f"{workspace.compute.schema_ or workspace.workspace.replace('-', '_')}_sandbox"}
        )
        serving = workspace.serving.model_copy(update={"path": str(root / "serving")})
        moved = workspace.model_copy(update={"compute": compute, "serving": serving})
        return moved.with_base_dir(workspace.base_dir)

    @contextmanager
    def pipeline(self, workspace: Workspace) -> Iterator[ComputePipeline]:
        """The workspace's compute pipeline, released afterwards (DuckDB has one writer: never hold it)."""
        pipeline = ComputePipeline(self.workspace(workspace))
        try:
            yield pipeline
        finally:
            pipeline.close()

    def results_directory(self, workspace: Workspace) -> Path:
        """Where the latest evaluation is exported for the syncs (beside the compute file, or in `directory`)."""
        if self.directory:
            return results_directory(Path(self.directory).resolve() / workspace.workspace)
        return results_directory(workspace.resolve_path(workspace.compute.path).parent)

    def export(self, workspace: Workspace, as_of: datetime) -> dict[str, int]:
        """Export the latest evaluation's results for the syncs; rows per exported table."""
        with self.pipeline(workspace) as pipeline:
            return export_results(pipeline, self.results_directory(workspace), as_of)

    def results(self, workspace: Workspace) -> ResultsView:
        """The exported results the syncs read (FileNotFoundError before the first evaluation)."""
        levels = {t.key: t.level for t in workspace.traits.sql}
        return ResultsView(self.results_directory(workspace), levels)


class DeliveryResource(dg.ConfigurableResource):
    """How syncs reach destinations: base URLs, rate limiting, retry policy and clock."""

    base_urls: dict[str, str] = Field(
        default={},
        description="`<workspace>/<destination>` -> the URL a destination is reached at instead of its "
        "configured one (the sandbox's fake servers).",
    )
    placeholder_secrets: bool = Field(
        default=False, description="Unset secrets get placeholder values (only for fake servers)."
    )
    rate_limited: bool = Field(
        default=True, description="Pace requests by each destination's rate limit, shared through the store."
    )
    max_attempts: int = Field(default=RetryPolicy.max_attempts, description="Attempts per request.")
    base_delay: float = Field(default=RetryPolicy.base_delay, description="First backoff ceiling, seconds.")
    max_delay: float = Field(default=RetryPolicy.max_delay, description="Largest backoff ceiling, seconds.")
    max_total_wait: float = Field(
        default=RetryPolicy.max_total_wait, description="Give up on a request after waiting this long."
    )

    def now(self) -> float:
        """The clock rate limiting reads (seconds since the epoch)."""
        return time.time()

    def sleep(self, seconds: float) -> None:
        """Wait between retries and for rate-limit slots."""
        time.sleep(seconds)

    def retry_policy(self) -> RetryPolicy:
        """The retry policy every request follows."""
        return RetryPolicy(
            max_attempts=self.max_attempts,
            base_delay=self.base_delay,
            max_delay=self.max_delay,
            max_total_wait=self.max_total_wait,
        )

    def limiter(self, store: StateStore, destination: DestinationBase) -> SharedRateLimiter | None:
        """The destination's limiter, shared through the state store with every run writing to it."""
        rate = rate_limit_for(destination) if self.rate_limited else None
        if not rate:
            return None
        return SharedRateLimiter(
            store, f"destination:{destination.id}", rate, clock=self.now, sleep=self.sleep
        )

    def workspace(self, workspace: Workspace) -> Workspace:
        """The workspace with its destinations pointed where this resource sends (the file is not touched)."""
        if not self.base_urls and not self.placeholder_secrets:
            return workspace
        destinations = [
            sandbox_destination(
                d,
                self.base_urls.get(f"{workspace.workspace}/{d.id}"),
                placeholders=self.placeholder_secrets,
            )
            for d in workspace.destinations
        ]
        moved = workspace.model_copy(update={"destinations": destinations})
        return moved.with_base_dir(workspace.base_dir)


def sandbox_resources(*sessions: SandboxSession, state_directory: Path | None = None) -> dict[str, object]:
    """Resources sending the sessions' workspaces to their fake servers, with the sandbox's own state stores
    and compute results (in the first session's sandbox directory unless given), tagging their runs."""
    directory = state_directory or sessions[0].state_directory
    urls = {f"{s.workspace}/{d}": url for s in sessions for d, url in s.urls.items()}
    return sandbox_wiring(str(directory), urls)


def sandbox_wiring(directory: str, base_urls: dict[str, str]) -> dict[str, object]:
    """The sandbox's resources: stores and compute results in `directory`, destinations at `base_urls`."""
    return {
        "state": StateStoreResource(directory=directory, sandbox=True),
        "compute": ComputeResource(directory=directory),
        "delivery": DeliveryResource(base_urls=base_urls, placeholder_secrets=True),
    }


def write_sandbox_wiring(path: Path, *sessions: SandboxSession) -> Path:
    """Write where the sessions' fake servers listen and where the sandbox keeps its state (for `SANDBOX_ENV`)."""
    directory = sessions[0].state_directory
    urls = {f"{s.workspace}/{d}": url for s in sessions for d, url in s.urls.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"directory": str(directory), "base_urls": urls}, indent=2), encoding="utf-8")
    return path


def read_sandbox_wiring(path: str | Path) -> dict[str, object]:
    """The sandbox's resources from a wiring file written by `write_sandbox_wiring`."""
    wiring = json.loads(Path(path).read_text(encoding="utf-8"))
    return sandbox_wiring(str(wiring["directory"]), dict(wiring["base_urls"]))
