"""Per-platform field rules: which input names feed which platform key, how each is normalised and hashed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class FieldContext:
    """What a field's normaliser may need beyond the value: regions for phones, country for addresses."""

    phone_region: str
    country: str | None
    strict_phone: bool = True


Normalise = Callable[[str, FieldContext], "str | None"]


@dataclass(frozen=True)
class FieldRule:
    """One platform key: its metric kind, its normaliser and whether its value is SHA-256 hashed."""

    key: str
    kind: str
    normalise: Normalise
    hashed: bool
    contextual: bool = False
    """Whether the normaliser reads the record's context (phone region, country)."""


@dataclass(frozen=True)
class PlatformRules:
    """All field rules of one platform and the input names (destination names, identifier types) they take."""

    name: str
    fields: Mapping[str, FieldRule]
    aliases: Mapping[str, str]

    def resolve(self, name: str) -> FieldRule | None:
        """The rule for an input name (a destination name, identifier type or the platform key itself)."""
        key = self.aliases.get(name, name)
        return self.fields.get(key)


def simple(fn: Callable[[str], str | None]) -> Normalise:
    """A normaliser that needs only the value."""
    return lambda value, _ctx: fn(value)


def rules_by_key(*rules: FieldRule) -> Mapping[str, FieldRule]:
    """Field rules keyed by their platform key."""
    return MappingProxyType({r.key: r for r in rules})
