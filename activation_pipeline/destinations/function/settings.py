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


class FunctionDestination(DestinationBase):
    """A destination function written in Python (events)."""

    type: Literal["function"]
    settings: FunctionSettings
