"""Per-platform normalisation and SHA-256 hashing of identifiers and traits for list destinations.

Modules: `email`, `phone`, `person` (names, gender, birth date), `address` (city, state, zip, country,
mobile and external ids), `hashing` (digests, encodings, pre-hashed detection), `platforms` (Meta's and
Google's field rules), `record` (batch normaliser for `OutboundRecord` payloads), `bulk` (fast email path).
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
from activation_pipeline.destinations.normalise.platforms import (
    FACEBOOK,
    FACEBOOK_SCHEMA,
    GOOGLE,
    FieldRule,
    PlatformRules,
)
from activation_pipeline.destinations.normalise.record import NormalisedRecord, RecordNormaliser

__all__ = [
    "FACEBOOK",
    "FACEBOOK_SCHEMA",
    "GOOGLE",
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
