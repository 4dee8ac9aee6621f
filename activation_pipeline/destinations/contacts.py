"""What an identify (or group) message says about one person, for the CRM and mailing-list destinations that
upsert a contact from it (HubSpot, Zendesk, Mailchimp, SendGrid).

An identify carries `traits` (identifiers under their ID Sync names, Trait Enrichment, and the audience's
`true`/`false` or the computed trait's value under its key); a group carries the identifiers in
`context.traits` and the account's value in `traits`. `context.personas` says which audience or trait it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from activation_pipeline.destinations.base import Operation, OutboundRecord
from activation_pipeline.destinations.normalise import normalise_email
from activation_pipeline.destinations.normalise.person import text_of


def email_of(message: Mapping[str, Any]) -> str | None:
    """The message's email as written: traits, context.traits, then context.externalIds."""
    for traits in (message.get("traits"), (message.get("context") or {}).get("traits")):
        if isinstance(traits, Mapping) and traits.get("email"):
            return str(traits["email"])
    for external in (message.get("context") or {}).get("externalIds") or []:
        if external.get("type") == "email" and external.get("id"):
            return str(external["id"])
    return None


@dataclass(frozen=True)
class ContactMessage:
    """One identify or group message read as a contact update."""

    record: OutboundRecord
    traits: Mapping[str, Any]
    """Every trait the message carries (identifiers, enrichment, the computation's own key)."""
    email: str | None
    """The normalised email (trimmed, lower-cased), None when absent or not an email."""
    user_id: str | None
    computation_key: str
    audience: bool
    """Whether the connection is an audience or a journey step (its key holds membership) or a computed trait."""

    @property
    def member(self) -> bool:
        """For an audience: whether the person is in it now (`true`) or left it (`false`)."""
        return bool(self.traits.get(self.computation_key))

    def properties(self, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
        """Traits to write on the contact: all but the email, the audience flag (lists carry membership) and
        `exclude`."""
        drop = {"email", *exclude}
        if self.audience:
            drop.add(self.computation_key)
        return {k: v for k, v in self.traits.items() if k not in drop}


def read_contact(record: OutboundRecord) -> ContactMessage | None:
    """The contact update of an identify or group record; None for any other operation."""
    if record.operation not in (Operation.IDENTIFY, Operation.GROUP):
        return None
    message = record.payload
    context = message.get("context") or {}
    traits = dict(message.get("traits") or {})
    if record.operation is Operation.GROUP:
        traits = {**(context.get("traits") or {}), **traits}
    personas = context.get("personas") or {}
    raw_email = text_of(traits.get("email"))
    return ContactMessage(
        record=record,
        traits=traits,
        email=normalise_email(raw_email) if raw_email else None,
        user_id=str(message["userId"]) if message.get("userId") else None,
        computation_key=str(personas.get("computation_key", "")),
        audience=personas.get("computation_class") in ("audience", "journey_step"),
    )
