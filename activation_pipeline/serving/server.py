"""Run the Profile API for a workspace on uvicorn (`activation-pipeline serve PATH`)."""

from __future__ import annotations

import uvicorn

from activation_pipeline.config import Workspace
from activation_pipeline.serving.access import resolve_tokens
from activation_pipeline.serving.api import build_app, service_settings
from activation_pipeline.serving.store import open_reader


def server_for(workspace: Workspace, host: str | None = None, port: int | None = None) -> uvicorn.Server:
    """A uvicorn server of the workspace's Profile API; refuses (NoAccessTokenError) without its tokens.

    uvicorn's access log is off: its lines would carry identifiers (emails, phones) in request paths.
    """
    credentials = resolve_tokens(workspace.serving.tokens)
    app = build_app(open_reader(workspace), service_settings(workspace, credentials))
    config = uvicorn.Config(
        app,
        host=host or workspace.serving.host,
        port=workspace.serving.port if port is None else port,
        access_log=False,
        log_level="info",
        server_header=False,
    )
    return uvicorn.Server(config)
