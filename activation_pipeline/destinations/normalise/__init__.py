"""Per-platform normalisation and SHA-256 hashing of identifiers and traits for list destinations.

Modules: `email`, `phone`, `person` (names, gender, birth date), `address` (city, state, zip, country,
mobile and external ids), `hashing` (digests, encodings, pre-hashed detection), `platforms` (the shape of a
platform's field rules; Meta's and Google's live in their destination packages), `record` (batch normaliser for `OutboundRecord` payloads), `bulk` (fast email path),
`figures` (per-batch counts for Dagster metadata).

Each platform's own documentation is followed, not Segment's shortcuts:
- Google: gmail.com/googlemail.com lose *all* dots and the `+suffix` of the local part (Segment removes only
  the first dot and keeps `+tags`); given/family names are lowercased (Segment hashes them as typed) and lose
  prefixes/suffixes; phones are E.164 with `+`; region and postal code are not hashed.
- Meta: emails are trimmed and lowercased only (no gmail rule); phones get their country code from the
  record's country or the workspace's default region (Segment sends national digits without one), digits
  only, no `+`; names lose punctuation but keep accents; MADID is lowercase with hyphens, not hashed.
- A value that already is a SHA-256 digest (exactly 64 hex characters, or 44-character Base64) passes through
  once, re-encoded if needed; Segment's unanchored "contains 64 hex characters" test is not used.
- Values that cannot be normalised (not an email, not a possible phone number, gender other than m/f, an
  out-of-range date part, an unknown country) are left out and counted per kind, never sent malformed.
"""

from activation_pipeline.destinations.normalise.bulk import hash_emails
from activation_pipeline.destinations.normalise.email import normalise_email, normalise_email_google
from activation_pipeline.destinations.normalise.hashing import (
    Encoding,
    is_sha256_base64,
    is_sha256_hex,
    prehashed,
    sha256_hex,
    sha256_hex_many,
)
from activation_pipeline.destinations.normalise.phone import meta_phone, to_e164
from activation_pipeline.destinations.normalise.platforms import FieldRule, PlatformRules
from activation_pipeline.destinations.normalise.record import NormalisedRecord, RecordNormaliser

__all__ = [
    "Encoding",
    "FieldRule",
    "NormalisedRecord",
    "PlatformRules",
    "RecordNormaliser",
    "hash_emails",
    "is_sha256_base64",
    "is_sha256_hex",
    "meta_phone",
    "normalise_email",
    "normalise_email_google",
    "prehashed",
    "sha256_hex",
    "sha256_hex_many",
    "to_e164",
]
