"""Consent per member for list destinations: which profile trait says a member may be sent, and what it says.

A connection to a list destination may name consent traits in its `settings`:
- Google Ads (Data Manager takes consent per audience member): `consent: {ad_user_data: {trait: ...},
  ad_personalization: {trait: ...}}`. A member is added only when its `ad_user_data` trait grants consent
  (Google may not receive the data otherwise); `ad_personalization` is sent with the member as granted or
  denied (denied, too, when the trait has no value).
- Meta, Marketo and other list destinations: `eligible_when: {trait: ...}`, one condition.
A member without consent is never added, a held member whose consent is revoked is removed, and members left
out are counted (`consent_left_out`). Values that grant consent: true, 1, or (any case) `granted`, `true`,
`yes`, `y`, `1`, `opt_in`, `opted_in`, `opt-in`, `accepted`, `allowed` — or the condition's own `granted`
list. Anything else, and no value, does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from activation_pipeline.activation.model import ProfileView
from activation_pipeline.activation.payloads import trait_value
from activation_pipeline.config.models import Model

GRANTED = frozenset(
    ("granted", "true", "yes", "y", "1", "opt_in", "opted_in", "opt-in", "opted-in", "accepted", "allowed")
)


class ConsentTrait(Model):
    """A profile trait holding a member's consent, and (optionally) the values that grant it."""

    trait: str = Field(min_length=1, description="profile trait (dotted paths reach into objects)")
    granted: list[str | int | bool] | None = Field(
        default=None, description="values that grant consent (default: true, 'granted', 'yes', 'opt_in', ...)"
    )

    def grants(self, profile: ProfileView) -> bool:
        """Whether the profile's trait value grants consent."""
        found, value = trait_value(profile.traits, self.trait)
        if not found or value is None:
            return False
        if self.granted is not None:
            return any(_same(value, g) for g in self.granted)
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            return value == 1
        return isinstance(value, str) and value.strip().lower() in GRANTED


def _same(value: Any, granted: str | int | bool) -> bool:
    if isinstance(granted, bool) or isinstance(value, bool):
        return value is granted
    if isinstance(granted, str) and isinstance(value, str):
        return value.strip().lower() == granted.strip().lower()
    return bool(value == granted)


class GoogleConsentTraits(Model):
    """Google's two consent purposes, each read from a profile trait."""

    ad_user_data: ConsentTrait
    ad_personalization: ConsentTrait


@dataclass(frozen=True)
class Eligibility:
    """A connection's consent rule: who may be sent, and the consent each member carries."""

    condition: ConsentTrait
    """What gates sending (Google: ad_user_data)."""
    forwarded: Mapping[str, ConsentTrait]
    """Purposes sent with each member as granted/denied (Google: ad_user_data and ad_personalization)."""

    def eligible(self, profile: ProfileView) -> bool:
        """Whether the member may be added (or kept)."""
        return self.condition.grants(profile)

    def member_consent(self, profile: ProfileView) -> dict[str, str]:
        """Purpose -> `granted` / `denied`, sent with the member (empty when the platform takes none)."""
        return {p: "granted" if t.grants(profile) else "denied" for p, t in self.forwarded.items()}


def consent_traits(settings: Any) -> list[tuple[tuple[str, ...], str]]:
    """(where in the connection's settings, trait) of every consent trait a connection reads."""
    consent = getattr(settings, "consent", None)
    if isinstance(consent, GoogleConsentTraits):
        return [
            (("consent", "ad_user_data"), consent.ad_user_data.trait),
            (("consent", "ad_personalization"), consent.ad_personalization.trait),
        ]
    condition = getattr(settings, "eligible_when", None)
    return [(("eligible_when",), condition.trait)] if isinstance(condition, ConsentTrait) else []


def eligibility_of(settings: Any) -> Eligibility | None:
    """The consent rule of a connection's validated settings (None: every member is eligible)."""
    consent = getattr(settings, "consent", None)
    if isinstance(consent, GoogleConsentTraits):
        return Eligibility(
            consent.ad_user_data,
            {"ad_user_data": consent.ad_user_data, "ad_personalization": consent.ad_personalization},
        )
    condition = getattr(settings, "eligible_when", None)
    if isinstance(condition, ConsentTrait):
        return Eligibility(condition, {})
    return None
