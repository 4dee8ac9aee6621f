"""Normalise and hash the identifiers and traits of list-destination records, a batch at a time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from activation_pipeline.destinations.normalise.address import country_code
from activation_pipeline.destinations.normalise.hashing import (
    Encoding,
    hex_to_base64,
    prehashed,
    sha256_hex_many,
)
from activation_pipeline.destinations.normalise.person import text_of
from activation_pipeline.destinations.normalise.platforms import FieldContext, FieldRule, PlatformRules


@dataclass(slots=True)
class NormalisedRecord:
    """One record's wire values per platform key, and what was left out (counted, never the values)."""

    values: dict[str, list[str]] = field(default_factory=dict)
    """Platform key -> distinct wire values in input order (hashed and encoded where the platform hashes)."""
    invalid: dict[str, int] = field(default_factory=dict)
    """Metric kind (email, phone, mobile_id, ...) -> values that could not be normalised."""
    prehashed: dict[str, int] = field(default_factory=dict)
    """Metric kind -> values passed through because they already were SHA-256 digests."""
    unmapped: int = 0
    """Input names this platform has no key for (their values are not sent)."""

    def kinds(self, rules: PlatformRules) -> set[str]:
        """The metric kinds this record has at least one value for."""
        return {rules.fields[k].kind for k, v in self.values.items() if v}


_SEQUENCES = (list, tuple)


def _pairs(
    payload: Mapping[str, Any], resolve: Mapping[str, FieldRule]
) -> tuple[list[tuple[FieldRule, Any]], int]:
    """(rule, raw value) for every value of the payload a platform key takes, and how many it does not."""
    pairs: list[tuple[FieldRule, Any]] = []
    unmapped = 0
    for section in ("identifiers", "traits"):
        part = payload.get(section)
        if not part or not (type(part) is dict or isinstance(part, Mapping)):
            continue
        for name, raw in part.items():
            rule = resolve.get(name)
            many = isinstance(raw, _SEQUENCES)
            if rule is None:
                unmapped += len(raw) if many else 1
            elif many:
                pairs.extend((rule, one) for one in raw)
            else:
                pairs.append((rule, raw))
    return pairs, unmapped


class RecordNormaliser:
    """Turns `{"identifiers": {...}, "traits": {...}}` payloads into a platform's wire values.

    Values already SHA-256 digests (64 hex or 44 Base64 characters) pass through, re-encoded only if the
    wire encoding differs. Hashing is done for the whole batch in one tight loop. A payload may carry an
    optional `"region"` (ISO alpha-2) for national phone numbers; else the record's country, else the
    workspace's default region is used.
    """

    def __init__(
        self,
        rules: PlatformRules,
        default_region: str = "US",
        encoding: Encoding = Encoding.HEX,
        strict_phone: bool = True,
    ) -> None:
        """Bind to a platform's rules, the workspace's default phone region and the wire encoding."""
        self.rules = rules
        self.default_region = (default_region or "US").upper()
        self.encoding = encoding
        self.strict_phone = strict_phone
        self._resolve: dict[str, FieldRule] = dict(rules.fields)
        for name, key in rules.aliases.items():
            if key in rules.fields:
                self._resolve[name] = rules.fields[key]

    def _context(self, payload: Mapping[str, Any], pairs: list[tuple[FieldRule, Any]]) -> FieldContext:
        country: str | None = None
        for rule, raw in pairs:
            if rule.kind == "country":
                text = text_of(raw)
                country = country_code(text) if text else None
                if country:
                    break
        hint = payload.get("region")
        region = country_code(hint) if isinstance(hint, str) else None
        return FieldContext(
            phone_region=region or country or self.default_region,
            country=country,
            strict_phone=self.strict_phone,
        )

    def normalise_many(self, payloads: Sequence[Mapping[str, Any]]) -> list[NormalisedRecord]:
        """Normalise a batch of payloads; one result per payload, in order."""
        out: list[NormalisedRecord] = []
        to_hash: list[str] = []
        slots: list[tuple[list[str], int]] = []
        encoding = self.encoding
        resolve = self._resolve
        plain = FieldContext(self.default_region, None, self.strict_phone)
        for payload in payloads:
            pairs, unmapped = _pairs(payload, resolve)
            rec = NormalisedRecord(unmapped=unmapped)
            values = rec.values
            invalid = rec.invalid
            ctx: FieldContext | None = None
            seen: set[tuple[str, str]] = set()
            for rule, raw in pairs:
                text = raw.strip() if type(raw) is str else text_of(raw)
                if text is None:
                    if raw is not None:
                        invalid[rule.kind] = invalid.get(rule.kind, 0) + 1
                    continue
                if not text:
                    continue
                key = rule.key
                if rule.hashed and (len(text) == 64 or len(text) == 44):
                    passed = prehashed(text, encoding)
                    if passed is not None:
                        rec.prehashed[rule.kind] = rec.prehashed.get(rule.kind, 0) + 1
                        if (key, passed) not in seen:
                            seen.add((key, passed))
                            values.setdefault(key, []).append(passed)
                        continue
                if not rule.contextual:
                    value = rule.normalise(text, plain)
                else:
                    if ctx is None:
                        ctx = self._context(payload, pairs)
                    value = rule.normalise(text, ctx)
                if value is None:
                    invalid[rule.kind] = invalid.get(rule.kind, 0) + 1
                    continue
                if (key, value) in seen:
                    continue
                seen.add((key, value))
                bucket = values.setdefault(key, [])
                if rule.hashed:
                    slots.append((bucket, len(bucket)))
                    to_hash.append(value)
                bucket.append(value)
            out.append(rec)
        digests = sha256_hex_many(to_hash)
        if encoding is Encoding.BASE64:
            digests = [hex_to_base64(d) for d in digests]
        for (bucket, i), digest in zip(slots, digests, strict=True):
            bucket[i] = digest
        for rec in out:
            for key, vals in rec.values.items():
                if len(vals) > 1 and self.rules.fields[key].hashed:
                    rec.values[key] = list(dict.fromkeys(vals))
        return out

    def normalise(self, payload: Mapping[str, Any]) -> NormalisedRecord:
        """Normalise one payload (see `normalise_many`)."""
        return self.normalise_many([payload])[0]
