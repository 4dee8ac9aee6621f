"""Run the Profile API for a workspace on uvicorn (`activation-pipeline serve PATH`), in one process or several.

uvicorn's access log is off: its lines would carry identifiers (emails, phones) in request paths.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from activation_pipeline.config import Workspace, load_workspace
from activation_pipeline.serving.access import resolve_tokens
from activation_pipeline.serving.api import build_app, service_settings
from activation_pipeline.serving.store import open_reader

WORKSPACE_ENV = "ACTIVATION_SERVING_WORKSPACE"
LIMITS_ENV = "ACTIVATION_SERVING_LIMITS"
"""How `serve` tells its worker processes the workspace file and the shared rate-limit file."""


def build_service(workspace: Workspace, limits: Path) -> Starlette:
    """The Profile API application of a workspace; refuses (NoAccessTokenError) without its tokens."""
    credentials = resolve_tokens(workspace.serving.tokens)
    return build_app(open_reader(workspace), service_settings(workspace, credentials), limits)


def configure_logging() -> None:
    """One line per request on stderr (the service's logger is set up in each worker process)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(message)s")


def app_from_environment() -> Starlette:
    """The application a worker process builds, from what `serve` put in its environment."""
    configure_logging()
    return build_service(load_workspace(os.environ[WORKSPACE_ENV]), Path(os.environ[LIMITS_ENV]))


@contextmanager
def limits_file() -> Iterator[Path]:
    """A fresh, private file for the rate limits of one run of the service; removed afterwards."""
    handle, name = tempfile.mkstemp(prefix="profile-api-limits-")
    os.close(handle)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def server_for(
    workspace: Workspace, limits: Path, host: str | None = None, port: int | None = None
) -> uvicorn.Server:
    """A one-process uvicorn server of the workspace's Profile API; refuses without its tokens."""
    config = uvicorn.Config(
        build_service(workspace, limits),
        host=host or workspace.serving.host,
        port=workspace.serving.port if port is None else port,
        access_log=False,
        log_level="info",
        server_header=False,
    )
    return uvicorn.Server(config)


def serve(path: str, host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the workspace file's Profile API until interrupted, in `workers` processes (default
    `serving.workers`) sharing one rate limit per token; refuses to start without its tokens."""
    workspace = load_workspace(path)
    resolve_tokens(workspace.serving.tokens)
    configure_logging()
    count = workers or workspace.serving.workers
    with limits_file() as limits:
        if count == 1:
            server_for(workspace, limits, host, port).run()
            return
        os.environ[WORKSPACE_ENV], os.environ[LIMITS_ENV] = str(Path(path).resolve()), str(limits)
        uvicorn.run(
            f"{__name__}:app_from_environment",
            factory=True,
            workers=count,
            host=host or workspace.serving.host,
            port=workspace.serving.port if port is None else port,
            access_log=False,
            log_level="info",
            server_header=False,
        )
