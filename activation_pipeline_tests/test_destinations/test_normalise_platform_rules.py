"""Issue #11: phones, countries, states, genders, birth days and Meta names agree with the platforms' rules."""

from __future__ import annotations

import pytest

from activation_pipeline.destinations.facebook_custom_audiences.rules import FACEBOOK
from activation_pipeline.destinations.google_ads_remarketing_lists.rules import GOOGLE
from activation_pipeline.destinations.normalise import RecordNormaliser, meta_phone, sha256_hex, to_e164
from activation_pipeline.destinations.normalise.address import country_code, meta_country, meta_state
from activation_pipeline.destinations.normalise.countries import ALPHA2
from activation_pipeline.destinations.normalise.person import meta_birth_day, meta_gender, meta_name


def test_number_with_its_country_code_but_no_plus_does_not_get_the_code_twice() -> None:
    assert to_e164("4915123456789", "DE") == "+4915123456789"
    assert meta_phone("4915123456789", "DE") == "4915123456789"
    assert to_e164("015123456789", "DE") == "+4915123456789"
    assert to_e164("33612345678", "FR") == "+33612345678"


def test_foreign_national_numbers_without_a_country_are_not_made_plus_one() -> None:
    assert to_e164("06 12 34 56 78", "US") is None
    # Read as international (it is a valid German number), never as +1 493 012 3456.
    assert to_e164("4930123456", "US") == "+4930123456"
    assert to_e164("555 555 0100", "US") is None  # possible length, no allocated range


def test_record_with_an_invalid_phone_counts_it_and_sends_nothing_for_it() -> None:
    normaliser = RecordNormaliser(FACEBOOK, "US")
    rec = normaliser.normalise(
        {"identifiers": {"phone": ["06 12 34 56 78", "(212) 555-0100"], "email": ["a@example.com"]}}
    )
    assert rec.invalid == {"phone": 1}
    assert rec.values["PHONE"] == [sha256_hex("12125550100")]


def test_national_number_uses_the_records_country() -> None:
    normaliser = RecordNormaliser(GOOGLE, "US")
    rec = normaliser.normalise(
        {"identifiers": {"phone": ["06 12 34 56 78"]}, "traits": {"address.country": "France"}}
    )
    assert rec.values["phoneNumber"] == [sha256_hex("+33612345678")]


@pytest.mark.parametrize("code", ["AQ", "BV", "GS", "HM", "PN", "TF", "UM"])
def test_every_iso_3166_1_code_is_accepted(code: str) -> None:
    assert country_code(code) == code
    assert meta_country(code.lower()) == code.lower()


@pytest.mark.parametrize("code", ["AC", "TA", "XK", "EU", "ZZ"])
def test_codes_outside_iso_3166_1_are_refused(code: str) -> None:
    assert country_code(code) is None


def test_iso_table_is_complete() -> None:
    pycountry = pytest.importorskip("pycountry")
    assert {c.alpha_2 for c in pycountry.countries} == ALPHA2
    assert len(ALPHA2) == 249


@pytest.mark.parametrize(
    ("raw", "code"),
    [("G.B.", "GB"), ("U.K.", "GB"), ("U.S.A.", "US"), ("DEU", "DE"), ("España", "ES"), ("Germany", "DE")],
)
def test_country_names_and_dotted_codes(raw: str, code: str) -> None:
    assert country_code(raw) == code


@pytest.mark.parametrize("country", ["US", None])
def test_dotted_us_states_are_kept_with_or_without_a_country(country: str | None) -> None:
    assert meta_state("N.Y.", country) == "ny"
    assert meta_state("D.C.", country) == "dc"


def test_dotted_genders_and_birth_days() -> None:
    assert meta_gender("M.") == "m"
    assert meta_gender("F.") == "f"
    assert meta_birth_day("4.") == "04"


def test_meta_names_are_letters_only() -> None:
    assert meta_name("John3") == "john"
    assert meta_name("Zoë-Anne") == "zoëanne"
    assert meta_name("123") is None
