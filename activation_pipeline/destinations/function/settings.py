"""Destination functions: the destination's `settings` and the per-connection options it takes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation_pipeline.config.models import DestinationBase, Model
from activation_pipeline.config.secrets import Secret


class FunctionSettings(Model):
    """A user function: `module:function`, or a .py file with on_identify / on_track handlers."""

    handler: str = Field(pattern=r"^([A-Za-z_][\w.]*:[A-Za-z_]\w*|[^\s]+\.py)$")
    settings: dict[str, str | Secret] = Field(default_factory=dict, description="passed to the function")
    timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="per message; then retried next run"
    )
    memory_mb: int = Field(default=512, ge=64, le=16384, description="the function process's memory limit")
    max_answer_bytes: int = Field(
        default=65536, ge=1024, le=16 * 1024 * 1024, description="cap on a return value"
    )


class FunctionDestination(DestinationBase):
    """A destination function written in Python (events)."""

    type: Literal["function"]
    settings: FunctionSettings
