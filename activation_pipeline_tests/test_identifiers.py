"""The canonical identifier form shared by ingest, identity's blocked values and the ledger lookup."""

from pathlib import Path

import pytest
import yaml

from activation_pipeline.compute.identity import Resolver
from activation_pipeline.config import Workspace, load_workspace
from activation_pipeline.identifiers import (
    canonical_email,
    canonical_identifier,
    canonical_phone,
    lookup_candidates,
)
from activation_pipeline_tests.test_config.conftest import base

# What ingest stored before the normaliser moved here: already-landed data must keep matching.
STORED_BEFORE = [
    ("(201) 555-0123", "US", "+12015550123"),
    ("+1 201-555-0123", "US", "+12015550123"),
    ("2015550123", "US", "+12015550123"),
    ("201.555.0123", "US", "+12015550123"),
    ("1-201-555-0123", "US", "+12015550123"),
    ("(201) 555-0123", "FR", "2015550123"),
    ("06 12 34 56 78", "FR", "+33612345678"),
    ("06 12 34 56 78", "US", "+10612345678"),
    ("+33 6 12 34 56 78", "US", "+33612345678"),
    ("0044 20 7946 0958", "US", "00442079460958"),
    ("0044 20 7946 0958", "FR", "+442079460958"),
    ("12345", "US", "12345"),
    ("1+2", "US", "1+2"),
    ("n/a", "US", "n/a"),
    (" +12015550123 ", "US", "+12015550123"),
]


@pytest.mark.parametrize(("raw", "region", "stored"), STORED_BEFORE)
def test_canonical_phone_keeps_what_ingest_stored(raw: str, region: str, stored: str) -> None:
    assert canonical_phone(raw, region) == stored


def test_canonical_identifier_per_type() -> None:
    assert canonical_identifier("email", "  Ann.Lee@Example.COM ", "US") == "ann.lee@example.com"
    assert canonical_identifier("phone", " (201) 555-0123 ", "US") == "+12015550123"
    assert canonical_identifier("phone", "06 12 34 56 78", "FR") == "+33612345678"
    assert canonical_identifier("user_id", "  U-42 ", "US") == "U-42"
    assert canonical_identifier("anonymous_id", "Anon-1", "US") == "Anon-1"
    # Advertising ids keep their case: landed data holds them as sent (ledger search ignores case anyway).
    idfa = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
    assert canonical_identifier("ios.idfa", f" {idfa}\n", "US") == idfa
    assert canonical_identifier("crm_id", 1234, "US") == "1234"
    for empty in ("", "   ", None, True, ["x"], {"a": 1}):
        assert canonical_identifier("email", empty, "US") is None
        assert canonical_identifier("user_id", empty, "US") is None
    assert canonical_email(" X@Y.io ") == "x@y.io"


@pytest.mark.parametrize(
    ("written", "region", "phone"),
    [
        ("(201) 555-0123", "US", "+12015550123"),
        ("+1 201-555-0123", "US", "+12015550123"),
        ("2015550123", "US", "+12015550123"),
        ("201.555.0123", "US", "+12015550123"),
        ("+1 201-555-0123", "FR", "+12015550123"),
        ("06 12 34 56 78", "FR", "+33612345678"),
    ],
)
def test_lookup_candidates_of_a_phone(written: str, region: str, phone: str) -> None:
    found = lookup_candidates(written, region)
    assert ("phone", phone) in found
    assert ("id", written.strip()) in found
    assert not any(kind == "email" for kind, _ in found)


def test_lookup_candidates_international_without_plus() -> None:
    """Digits that are no national number of the region are also tried as international."""
    assert ("phone", "+442079460958") in lookup_candidates("0044 20 7946 0958", "US")
    assert ("phone", "+33612345678") in lookup_candidates("33612345678", "US")


def test_lookup_candidates_of_emails_and_ids() -> None:
    assert lookup_candidates("  Ann@Example.COM ", "US") == [
        ("email", "ann@example.com"),
        ("id", "Ann@Example.COM"),
    ]
    assert lookup_candidates("u42", "US") == [("id", "u42")]
    assert lookup_candidates("6D92078A-8246-4BA4-AE5B-76104861E7DC", "US") == [
        ("id", "6D92078A-8246-4BA4-AE5B-76104861E7DC")
    ]
    assert lookup_candidates("   ", "US") == []


def _workspace(tmp_path: Path, identity_extra: dict[str, object], region: str = "US") -> Workspace:
    config = base()
    config["normalisation"] = {"default_region": region}
    config["identity"].update(identity_extra)
    path = tmp_path / "workspace.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return load_workspace(path)


def test_blocked_values_are_canonical(tmp_path: Path) -> None:
    """A blocked phone or email written any way blocks its canonical form, the form ingest stores."""
    workspace = _workspace(
        tmp_path,
        {"blocked_values": ["(201) 555-0123", " Test@Example.com "]},
    )
    blocked = Resolver.for_workspace(workspace).blocked
    assert canonical_identifier("phone", "+1 201 555 0123", "US") in blocked["phone"]
    assert canonical_identifier("email", "TEST@example.com", "US") in blocked["email"]
    assert "Test@Example.com" in blocked["user_id"]  # ids keep their case
    assert "test@example.com" not in blocked["user_id"]


def test_blocked_values_use_the_workspace_region(tmp_path: Path) -> None:
    workspace = _workspace(tmp_path, {"blocked_values": ["06 12 34 56 78"]}, region="FR")
    assert "+33612345678" in Resolver.for_workspace(workspace).blocked["phone"]
