"""Zendesk: the destination's `settings` and the per-connection options it takes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation_pipeline.config.models import DestinationBase, Model
from activation_pipeline.config.secrets import Secret
from activation_pipeline.destinations.spec import HttpBase


class ZendeskSettings(Model):
    """Zendesk Support API access: an agent's email and an API token (HTTP Basic `email/token:token`)."""

    base_url: HttpBase = Field(description="https://<subdomain>.zendesk.com")
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", description="the agent the API token belongs to")
    api_token: Secret
    name_fallback: Literal["email", "user_id", "none"] = Field(
        default="email",
        description="a user's name when no trait is mapped as `name`: the email (else the user id), the user "
        "id (else the email), or none (then a `name` mapping is required)",
    )
    job_wait_seconds: float = Field(default=120, gt=0, le=3600)


class ZendeskConnection(Model):
    """How an audience shows on the user: a tag (added and removed) or a checkbox user field."""

    audience_as: Literal["tag", "user_field"] = "tag"
    tag: str | None = Field(default=None, pattern=r"^[^\s,]+$", description="default: the audience key")
    user_field: str | None = Field(
        default=None, pattern=r"^[a-z0-9_]+$", description="default: the audience or trait key"
    )


class ZendeskDestination(DestinationBase):
    """Zendesk (classic, events: users, tags and user fields)."""

    type: Literal["zendesk"]
    settings: ZendeskSettings
