"""The sandbox serves the sample's HubSpot, Zendesk, Mailchimp and SendGrid destinations from their fake
servers, and their clients (with the sandbox's placeholder secrets) deliver to them."""

import shutil
from pathlib import Path

import pytest

from activation_pipeline.config import load_workspace
from activation_pipeline.destinations.base import BatchContext, Outcome
from activation_pipeline.destinations.http import ClientOptions
from activation_pipeline.destinations.hubspot.server import HubSpotSandbox
from activation_pipeline.destinations.mailchimp.server import MailchimpSandbox
from activation_pipeline.destinations.registry import build_client
from activation_pipeline.destinations.sendgrid.server import SendGridSandbox
from activation_pipeline.destinations.zendesk.server import ZendeskSandbox
from activation_pipeline.sandbox.workspace import sandbox_destination, sandboxed
from activation_pipeline_tests.test_destinations.contact_messages import identify

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
FAKES = {
    "hubspot": HubSpotSandbox,
    "zendesk": ZendeskSandbox,
    "mailchimp": MailchimpSandbox,
    "sendgrid": SendGridSandbox,
}


@pytest.fixture
def sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("HUBSPOT_ACCESS_TOKEN", "ZENDESK_API_TOKEN", "MAILCHIMP_API_KEY", "SENDGRID_API_KEY"):
        monkeypatch.delenv(name, raising=False)  # the sandbox's placeholders stand in
    shutil.copytree(SAMPLE, tmp_path / "sample", ignore=shutil.ignore_patterns("events", "state"))
    return tmp_path / "sample" / "workspace.yml"


def test_sample_destinations_are_served_and_delivered_to(sample: Path) -> None:
    """Each of the four gets its fake server; a client pointed there by the sandbox is acknowledged."""
    with sandboxed(sample) as session:
        assert {d: type(session.servers[d]) for d in FAKES} == FAKES
        workspace = load_workspace(sample)
        for destination_id in FAKES:
            configured = next(d for d in workspace.destinations if d.id == destination_id)
            connection = next(c for c in workspace.connections if c.destination == destination_id)
            destination = sandbox_destination(configured, session.urls[destination_id])
            client = build_client(destination, ClientOptions())
            try:
                context = BatchContext(connection.connection_id, "s", connection_settings=connection.settings)
                result = client.send([identify(1, key=connection.source_key, firstname="Ann")], context)
            finally:
                client.close()
            assert [r.outcome for r in result.results] == [Outcome.ACKNOWLEDGED], (destination_id, result)
            assert session.servers[destination_id].successful(), destination_id
