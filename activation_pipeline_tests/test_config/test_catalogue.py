"""The destination catalogue follows DESIGN §5 and the seeds' rate-limit table."""

import pytest

from activation_pipeline.destinations.facebook_custom_audiences.settings import FACEBOOK_KEYS
from activation_pipeline.destinations.registry import CATALOGUE


def test_every_design_type_is_catalogued() -> None:
    """Each destination type of the first set has an entry."""
    assert set(CATALOGUE) == {
        "facebook_custom_audiences",
        "google_ads_remarketing_lists",
        "marketo_static_lists",
        "braze",
        "iterable",
        "function",
        "webhook",
        "salesforce_marketing_cloud",
        "salesforce_marketing_cloud_lists",
        "intercom",
        "customerio",
        "hubspot",
        "zendesk",
        "mailchimp",
        "sendgrid",
    }


@pytest.mark.parametrize(
    ("type_name", "kind", "framework", "enrichment", "rate", "cadence"),
    [
        ("facebook_custom_audiences", "list", "list", True, None, "hourly"),
        ("google_ads_remarketing_lists", "list", "list", True, None, "every 6 hours"),
        ("marketo_static_lists", "list", "list", True, 5, "hourly"),
        ("braze", "event", "actions", True, 100, "every 5 minutes"),
        ("iterable", "event", "actions", True, 500, "every 5 minutes"),
        ("function", "event", "function", True, 50, "every 5 minutes"),
        ("webhook", "event", "classic", False, 50, "every 5 minutes"),
        ("salesforce_marketing_cloud", "event", "actions", True, 20, "every 5 minutes"),
        ("salesforce_marketing_cloud_lists", "list", "list", True, 20, "hourly"),
        ("intercom", "event", "actions", True, 8, "every 5 minutes"),
        ("customerio", "event", "actions", True, 30, "every 5 minutes"),
        ("hubspot", "event", "actions", True, 5, "every 5 minutes"),  # 5 objects per second
        ("zendesk", "event", "classic", True, 50, "every 5 minutes"),
        ("mailchimp", "event", "classic", True, 10, "every 5 minutes"),
        ("sendgrid", "event", "actions", True, 100, "every 5 minutes"),
    ],
)
def test_entry(
    type_name: str, kind: str, framework: str, enrichment: bool, rate: float | None, cadence: str
) -> None:
    """Kind, framework, trait enrichment support, default rate and cadence per type."""
    spec = CATALOGUE[type_name]
    assert (spec.kind, spec.framework, spec.trait_enrichment, spec.defaults.rate_limit, spec.cadence) == (
        kind,
        framework,
        enrichment,
        rate,
        cadence,
    )
    assert spec.id_sync


def test_google_ads_is_six_hourly() -> None:
    """Google Ads lists are refreshed every six hours, as Google recommends."""
    assert CATALOGUE["google_ads_remarketing_lists"].default_schedule == "0 */6 * * *"


def test_facebook_keys_are_the_seed_list_each_mapped() -> None:
    """Facebook accepts exactly the seed's trait list (plus the external id), each mapped to a schema key."""
    seed = {
        "email",
        "context.device.advertisingId",
        "firstName",
        "lastName",
        "phone",
        "gender",
        "birthYear",
        "birthMonth",
        "birthday",
        "address.state",
        "address.city",
        "address.postalCode",
        "address.country",
    }
    assert set(FACEBOOK_KEYS) - {"externalId"} == seed
    assert set(FACEBOOK_KEYS.values()) <= {
        "EXTERN_ID",
        "EMAIL",
        "PHONE",
        "GEN",
        "DOBY",
        "DOBM",
        "DOBD",
        "LN",
        "FN",
        "FI",
        "CT",
        "ST",
        "ZIP",
        "MADID",
        "COUNTRY",
    }


def test_batch_limits() -> None:
    """Batch sizes follow the platforms' documented maxima."""
    assert CATALOGUE["facebook_custom_audiences"].defaults.max_batch == 10_000
    assert CATALOGUE["google_ads_remarketing_lists"].defaults.max_batch == 10_000
    assert CATALOGUE["marketo_static_lists"].defaults.max_batch == 300
    assert CATALOGUE["braze"].defaults.max_batch == 75
    assert CATALOGUE["salesforce_marketing_cloud"].defaults.records_per_request == 50  # rows a rowset call
    assert CATALOGUE["salesforce_marketing_cloud_lists"].defaults.records_per_request == 50
    assert CATALOGUE["customerio"].defaults.max_batch == 100  # cut further by the 500 KB request limit
    assert CATALOGUE["intercom"].defaults.records_per_request == 1  # no batch endpoint for contacts
    assert CATALOGUE["hubspot"].defaults.max_batch == 100  # batch upsert inputs
    assert CATALOGUE["hubspot"].defaults.rate_counts_records  # the seed counts objects, two calls each
    assert CATALOGUE["zendesk"].defaults.max_batch == 100  # create_or_update_many users
    assert CATALOGUE["mailchimp"].defaults.max_batch == 500
    assert CATALOGUE["sendgrid"].defaults.max_batch == 1000  # of SendGrid's 30,000 a request
