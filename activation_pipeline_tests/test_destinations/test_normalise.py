"""Normalisation and hashing per platform: tricky inputs, pre-hashed values, the batch normaliser."""

import base64
import hashlib
import random

import pytest

from activation_pipeline.destinations.facebook_custom_audiences.rules import FACEBOOK, FACEBOOK_SCHEMA
from activation_pipeline.destinations.google_ads_remarketing_lists.rules import GOOGLE
from activation_pipeline.destinations.normalise import (
    Encoding,
    RecordNormaliser,
    hash_emails,
    meta_phone,
    normalise_email,
    normalise_email_google,
    person,
    prehashed,
    sha256_hex,
    to_e164,
)
from activation_pipeline.destinations.normalise import address as addr
from activation_pipeline.destinations.normalise.bulk import hash_emails_parallel


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------------------------------- email


@pytest.mark.parametrize(
    ("raw", "meta", "google"),
    [
        ("  John.Doe@Example.COM ", "john.doe@example.com", "john.doe@example.com"),
        ("John.Doe+promo@GMAIL.com", "john.doe+promo@gmail.com", "johndoe@gmail.com"),
        ("cloudy.san.francisco+shopping@googlemail.com", None, "cloudysanfrancisco@googlemail.com"),
        ("user.name+NYC@Example.com", "user.name+nyc@example.com", "user.name+nyc@example.com"),
        ("a.b.c@gmail.co.uk", "a.b.c@gmail.co.uk", "a.b.c@gmail.co.uk"),
        ("jo hn@example.com", None, "john@example.com"),
        ("\tANNA@EXAMPLE.ORG\n", "anna@example.org", "anna@example.org"),
    ],
)
def test_email_rules(raw: str, meta: str | None, google: str) -> None:
    if meta is not None:
        assert normalise_email(raw) == meta
    assert normalise_email_google(raw) == google


@pytest.mark.parametrize(
    "raw",
    ["no-at-sign", "a@b", "a@@b.com", "@example.com", "a@.com", "a@b..com", "a@b.com.", "x,y@z.com", ""],
)
def test_emails_that_are_not_emails(raw: str) -> None:
    assert normalise_email(raw) is None
    assert normalise_email_google(raw) is None


def test_gmail_with_only_a_tag_is_not_an_address() -> None:
    assert normalise_email_google("+promo@gmail.com") is None


# ------------------------------------------------------------------------------------------- phone


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("(201) 555-0123", "US", "+12015550123"),
        ("201.555.0123", "US", "+12015550123"),
        ("1-201-555-0123", "US", "+12015550123"),
        ("+1 (201) 555-0123", "GB", "+12015550123"),
        ("(800)555-0100", "US", "+18005550100"),
        ("020 7946 0123", "GB", "+442079460123"),
        ("0044 20 7946 0123", "US", "+442079460123"),
        ("00 44 (0)20 7946 0123", "US", "+442079460123"),
        ("011 44 20 7946 0123", "US", "+442079460123"),
        ("+44 7911 123456", "US", "+447911123456"),
        ("07911 123456", "GB", "+447911123456"),
        ("+1 201 555 0123 ext. 7", "US", "+12015550123"),
        ("442079460123", "US", "+442079460123"),
    ],
)
def test_phone_to_e164(raw: str, region: str, e164: str) -> None:
    assert to_e164(raw, region) == e164


@pytest.mark.parametrize("raw", ["555-0100", "12", "call me", "+", "000000", "+99 1234 5678"])
def test_phones_that_cannot_be_numbers(raw: str) -> None:
    assert to_e164(raw, "US") is None


def test_meta_phone_is_digits_with_country_code_and_no_plus() -> None:
    assert meta_phone("(201) 555-0123", "US") == "12015550123"
    assert meta_phone("020 7946 0123", "GB") == "442079460123"


def test_phone_validation_rejects_unallocated_ranges_unless_relaxed() -> None:
    assert to_e164("07700 900123", "GB") is None  # Ofcom drama range: possible length, not allocated
    assert to_e164("07700 900123", "GB", strict=False) == "+447700900123"


# ------------------------------------------------------------------------------------------- person and address


def test_meta_names_drop_punctuation_keep_accents() -> None:
    assert person.meta_name("  José-María O'Neil! ") == "josémaría oneil"
    assert person.meta_name("...") is None
    assert person.meta_first_initial("Élodie") == "é"


def test_google_names_drop_prefixes_and_suffixes() -> None:
    assert person.google_given_name(" Mrs. Jane ") == "jane"
    assert person.google_given_name("Dr Anne Marie") == "anne marie"
    assert person.google_family_name("Smith Jr.") == "smith"
    assert person.google_family_name("King III") == "king"
    assert person.google_family_name("Jr") == "jr"


@pytest.mark.parametrize(
    ("raw", "gen"), [("Female", "f"), ("F", "f"), ("woman", "f"), ("MALE", "m"), ("m", "m")]
)
def test_gender(raw: str, gen: str) -> None:
    assert person.meta_gender(raw) == gen


def test_gender_outside_meta_values_is_left_out() -> None:
    assert person.meta_gender("non-binary") is None


def test_birth_date_parts() -> None:
    assert person.meta_birth_year("1985-04-12") == "1985"
    assert person.meta_birth_month("1985-04-12") == "04"
    assert person.meta_birth_day("1985-04-12") == "12"
    assert person.meta_birth_month("April") == "04"
    assert person.meta_birth_month("sept.") == "09"
    assert person.meta_birth_day("7") == "07"
    assert person.meta_birth_year("1899") is None
    assert person.meta_birth_month("13") is None
    assert person.meta_birth_day("1985-02-30") is None


def test_address_fields() -> None:
    assert addr.meta_city("New York") == "newyork"
    assert addr.meta_city("Zürich, ZH") == "zürichzh"
    assert addr.meta_state("California") == "ca"
    assert addr.meta_state("NY", "US") == "ny"
    assert addr.meta_state("Île-de-France", "FR") == "îledefrance"
    assert addr.meta_zip("94105-1234") == "94105"
    assert addr.meta_zip("SW1A 1AA", "GB") == "sw1a1"
    assert addr.meta_zip("K1A 0B1", "CA") == "k1a0b1"
    assert addr.meta_country("United Kingdom") == "gb"
    assert addr.meta_country(" USA ") == "us"
    assert addr.meta_country("Narnia") is None
    assert addr.google_region("uk") == "GB"
    assert addr.google_postal("94105-1234", "US") == "94105"
    assert addr.google_postal(" sw1a  1aa ", "GB") == "SW1A 1AA"


def test_mobile_ids() -> None:
    idfa = "AB1234CD-1234-4321-ABCD-1234567890AB"
    assert addr.mobile_id(f" {idfa} ") == idfa
    assert addr.meta_madid(idfa) == idfa.lower()
    assert addr.mobile_id("00000000-0000-0000-0000-000000000000") is None
    assert addr.mobile_id("not-an-id") is None


# ------------------------------------------------------------------------------------------- hashing


def test_prehashed_values_pass_through_once() -> None:
    digest = sha("jane@example.com")
    assert prehashed(digest.upper()) == digest
    b64 = base64.b64encode(bytes.fromhex(digest)).decode()
    assert prehashed(b64) == digest
    assert prehashed(digest, Encoding.BASE64) == b64
    assert prehashed("jane@example.com") is None
    assert sha256_hex("jane@example.com") == digest


def test_bulk_email_hashing_matches_the_per_value_rules() -> None:
    rng = random.Random(5)
    alphabet = 'aB.+@ _-,x1\t"éΣ\u00a0\u2003\x1c\x00'
    values = [sha("x@y.com").upper()]
    for _ in range(3000):
        values.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))))
        local = rng.choice(["Jo.hn", "a+b", ".x", "x.", "ab"])
        domain = rng.choice(["Gmail.com", "googlemail.com", "ex.co", "x..y", ".a.b", "a.b.", "ab", "b.c."])
        values.append(f" {local}@{domain} ")
    for google in (False, True):
        rule = normalise_email_google if google else normalise_email
        expected = [
            v.strip().lower() if len(v) == 64 else (sha(n) if (n := rule(v)) is not None else None)
            for v in values
        ]
        assert hash_emails(values, google=google) == expected
    assert hash_emails_parallel(values, processes=2, part=1000) == hash_emails(values)


# ------------------------------------------------------------------------------------------- records


def test_facebook_record_normalisation_counts_what_is_left_out() -> None:
    normaliser = RecordNormaliser(FACEBOOK, "US")
    record = normaliser.normalise(
        {
            "identifiers": {
                "email": ["  Jane.Doe@Example.COM ", "not-an-email", sha("pre@hashed.com").upper()],
                "phone": ["(201) 555-0123", "12"],
                "context.device.advertisingId": ["AB1234CD-1234-4321-ABCD-1234567890AB"],
                "user_id": ["u1"],
            },
            "traits": {
                "firstName": "Jane",
                "gender": "F",
                "birthday": "1985-04-12",
                "address.country": {"x": 1},
            },
        }
    )
    assert record.values["EMAIL"] == [sha("jane.doe@example.com"), sha("pre@hashed.com")]
    assert record.values["PHONE"] == [sha("12015550123")]
    assert record.values["MADID"] == ["ab1234cd-1234-4321-abcd-1234567890ab"]
    assert record.values["FN"] == [sha("jane")]
    assert record.values["GEN"] == [sha("f")]
    assert record.values["DOBD"] == [sha("12")]
    assert record.invalid == {"email": 1, "phone": 1, "country": 1}
    assert record.prehashed == {"email": 1}
    assert record.unmapped == 1
    assert set(record.values) <= set(FACEBOOK_SCHEMA)


def test_country_trait_sets_the_region_of_national_phones() -> None:
    normaliser = RecordNormaliser(FACEBOOK, "US")
    record = normaliser.normalise(
        {"identifiers": {"phone": ["020 7946 0123"]}, "traits": {"address.country": "UK"}}
    )
    assert record.values["PHONE"] == [sha("442079460123")]
    assert record.values["COUNTRY"] == [sha("gb")]
    default = normaliser.normalise({"identifiers": {"phone": ["020 7946 0123"]}})
    assert default.invalid == {"phone": 1}


def test_google_record_plain_address_fields_and_base64() -> None:
    normaliser = RecordNormaliser(GOOGLE, "US", encoding=Encoding.BASE64)
    record = normaliser.normalise(
        {
            "identifiers": {"email": ["J.Doe+x@gmail.com"], "phone": ["(800)555-0100"]},
            "traits": {"firstName": "Mr. John", "address.country": "us", "address.postalCode": "94045-1234"},
        }
    )
    b64 = base64.b64encode(hashlib.sha256(b"jdoe@gmail.com").digest()).decode()
    assert record.values["emailAddress"] == [b64]
    assert record.values["phoneNumber"] == [
        base64.b64encode(hashlib.sha256(b"+18005550100").digest()).decode()
    ]
    assert record.values["address.regionCode"] == ["US"]
    assert record.values["address.postalCode"] == ["94045"]
    assert record.values["address.givenName"] == [base64.b64encode(hashlib.sha256(b"john").digest()).decode()]
