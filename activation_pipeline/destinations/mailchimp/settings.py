"""Mailchimp: the destination's `settings` and the per-connection options it takes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation_pipeline.config.models import DestinationBase, Model
from activation_pipeline.config.secrets import Secret

MERGE_TAG = r"^[A-Z][A-Z0-9_]{0,9}$"


class MailchimpSettings(Model):
    """Mailchimp Marketing API access and the audience (list) the members go to."""

    api_key: Secret
    list_id: str = Field(pattern=r"^[A-Za-z0-9]+$", description="the audience id (Audience > Settings)")
    base_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+(:\d+)?(/[^\s]*)?$",
        description="default: https://<dc>.api.mailchimp.com, the data centre from the key's -<dc> suffix",
    )
    status_if_new: Literal["subscribed", "pending", "transactional", "unsubscribed"] = "subscribed"
    batch_operations: bool = Field(
        default=True, description="send each batch as one POST /3.0/batches (else one call per operation)"
    )
    batch_wait_seconds: float = Field(default=300, gt=0, le=3600)


class MailchimpConnection(Model):
    """The tag an audience is kept as (default: the audience key), or the merge field a trait fills."""

    tag: str | None = Field(default=None, min_length=1, max_length=100)
    merge_field: str | None = Field(default=None, pattern=MERGE_TAG)


class MailchimpDestination(DestinationBase):
    """Mailchimp (classic, events: audience members and tags)."""

    type: Literal["mailchimp"]
    settings: MailchimpSettings
