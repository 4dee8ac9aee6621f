"""SendGrid Marketing Contacts: the destination's `settings` and the per-connection options it takes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation_pipeline.config.models import DestinationBase, Model
from activation_pipeline.config.secrets import Secret
from activation_pipeline.destinations.spec import HttpBase


class SendGridSettings(Model):
    """SendGrid v3 API access with an API key (Marketing scopes)."""

    base_url: HttpBase = "https://api.sendgrid.com"
    api_key: Secret
    confirm_jobs: bool = Field(
        default=True, description="wait for each upsert job to finish and record its counts"
    )
    job_wait_seconds: float = Field(default=120, gt=0, le=3600)


class SendGridConnection(Model):
    """The list one audience fills (its id, a UUID from SendGrid)."""

    list_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9-]+$")


class SendGridDestination(DestinationBase):
    """SendGrid Marketing Contacts (actions, events: contacts in lists)."""

    type: Literal["sendgrid"]
    settings: SendGridSettings
