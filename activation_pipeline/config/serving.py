"""The `serving` section: the Profile API's serving copy, access tokens, rate limit and listening address."""

from __future__ import annotations

from pydantic import Field, model_validator

from activation_pipeline.config.models import Model
from activation_pipeline.config.secrets import Secret, SecretRef

DEFAULT_TOKEN_ENV = "PROFILE_API_TOKEN"  # noqa: S105 (the variable's name, not a token)
SEGMENT_REQUESTS_PER_SECOND = 100.0
"""Segment's documented Profile API limit per space; here it applies per access token."""


class AccessToken(Model):
    """One Profile API access token: a name for logs and its value from an environment variable."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9_./-]{1,64}$", description="shown in logs, e.g. marketing_site/production"
    )
    token: Secret


def _default_tokens() -> list[AccessToken]:
    return [AccessToken(name="default", token=SecretRef(env=DEFAULT_TOKEN_ENV))]


class Serving(Model):
    """Where evaluations publish the serving copy, and how `serve` answers the Profile API."""

    path: str = Field(
        default="state/serving",
        description="directory of the DuckDB serving copies (compute engine duckdb), relative to the file",
    )
    events_days: int = Field(
        default=14, ge=0, le=3650, description="days of events before the evaluation time kept for /events"
    )
    tokens: list[AccessToken] = Field(default_factory=_default_tokens, min_length=1)
    requests_per_second: float = Field(
        default=SEGMENT_REQUESTS_PER_SECOND, gt=0, le=100_000, description="rate limit per access token"
    )
    workers: int = Field(default=1, ge=1, le=64, description="service processes; the rate limit is shared")
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8790, ge=0, le=65535)

    @model_validator(mode="after")
    def _unique_names(self) -> Serving:
        names = [t.name for t in self.tokens]
        if len(set(names)) != len(names):
            raise ValueError("access token names must be unique")
        return self
