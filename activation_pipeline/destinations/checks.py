"""Connection rules shared by the contact destinations (HubSpot, Zendesk, Mailchimp, SendGrid): what they
receive and which mappings they cannot do without. Each yields `(where, why)` relative to the connection."""

from __future__ import annotations

from collections.abc import Iterator

from activation_pipeline.config.models import Connection
from activation_pipeline.destinations.spec import Finding


def identify_only(connection: Connection, title: str) -> Iterator[Finding]:
    """These platforms take contact updates (identify), not track events."""
    if connection.send_track:
        yield ("send_track",), f"{title} receives identify calls only (contacts); set send_track: false"
    if not connection.send_identify:
        yield ("send_identify",), f"{title} receives identify calls only; send_identify must stay true"


def maps_as(connection: Connection, name: str) -> bool:
    """Whether a customized connection's ID Sync or Trait Enrichment sends something under `name`."""
    return any(s.as_ == name for s in connection.id_sync) or any(
        m.as_ == name for m in connection.trait_enrichment
    )


def require_email(connection: Connection, why: str) -> Iterator[Finding]:
    """A customized ID Sync must send an identifier as `email` (the default setup sends every email)."""
    if connection.setup == "customized" and connection.id_sync and not maps_as(connection, "email"):
        yield ("id_sync",), f"{why}: map an identifier as 'email' in id_sync"
