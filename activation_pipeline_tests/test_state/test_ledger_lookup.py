"""The ledger found by an identifier written any usual way: phones in any format, emails in any case, and
a clear answer when the identifier is unknown or simply had nothing sent yet."""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from activation_pipeline.activation.model import Change, ChangeKind
from activation_pipeline.activation.payloads import plan_changes
from activation_pipeline.cli import main
from activation_pipeline.delivery.engine import deliver, staged_records
from activation_pipeline.destinations.http import ClientOptions, RetryPolicy
from activation_pipeline.destinations.registry import build_client
from activation_pipeline.destinations.webhook.server import WebhookSandbox
from activation_pipeline.state import outbox as ob
from activation_pipeline.state.ledger import format_lookup, lookup_ledger, query_ledger
from activation_pipeline.state.store import StateStore
from activation_pipeline_tests.test_config.conftest import base
from activation_pipeline_tests.test_delivery.workload import (
    AS_OF,
    connection,
    profile,
    webhook_destination,
)

FAST = ClientOptions(sleep=lambda _s: None, retry=RetryPolicy(max_attempts=3))
US_PHONE = "+12015550123"
FR_PHONE = "+33612345678"


@pytest.fixture
def delivered(store: StateStore) -> Iterator[StateStore]:
    """Two profiles sent to a webhook, with phones stored in E.164."""
    people = [
        profile("p7", user_id="u7", emails=("ann@example.com",), phones=(US_PHONE,)),
        profile("p8", user_id="u8", emails=("bob@example.fr",), phones=(FR_PHONE,)),
    ]
    planned = plan_changes(
        [Change(ChangeKind.ENTERED, p, AS_OF) for p in people],
        connection(send_track=True),
        kind="event",
        space="acme",
    )
    with WebhookSandbox() as sandbox:
        client = build_client(webhook_destination(sandbox.hook_url, batch=True), FAST)
        report = deliver(store, client, destination_id="hook", planned=planned)
    assert report.sent == report.staged > 0 and report.failed == 0
    yield store


def _records(store: StateStore, identifier: str, region: str = "US") -> set[str]:
    rows = query_ledger(store, identifier, "hook", region=region)
    assert {r.profile_id for r in rows} <= {"p7"}, identifier
    return {r.record_id for r in rows}


@pytest.mark.parametrize(
    "written",
    [
        "(201) 555-0123",
        "+1 201-555-0123",
        "2015550123",
        "201.555.0123",
        "1 (201) 555-0123",
        " +12015550123 ",
        US_PHONE,
    ],
)
def test_ledger_found_by_a_phone_written_any_way(delivered: StateStore, written: str) -> None:
    by_user_id = _records(delivered, "u7")
    assert by_user_id
    assert _records(delivered, written) == by_user_id


def test_ledger_found_by_an_email_in_odd_case(delivered: StateStore) -> None:
    by_user_id = _records(delivered, "u7")
    for written in ("ANN@EXAMPLE.COM", "  Ann@Example.com\t", "ann@example.com"):
        assert _records(delivered, written) == by_user_id, written


def test_national_phone_forms_use_the_region(delivered: StateStore) -> None:
    """A French national number is found with the workspace region FR, and not read as a US number."""
    rows = query_ledger(delivered, "06 12 34 56 78", "hook", region="FR")
    assert {r.profile_id for r in rows} == {"p8"}
    assert len(rows) == len(query_ledger(delivered, "u8", "hook"))
    assert query_ledger(delivered, "06 12 34 56 78", "hook", region="US") == []
    # Written internationally, the region does not matter.
    assert {r.profile_id for r in query_ledger(delivered, "+33 6 12 34 56 78", "hook")} == {"p8"}


def test_unknown_identifier_says_so(delivered: StateStore) -> None:
    lookup = lookup_ledger(delivered, "(201) 555-9999", "hook")
    assert not lookup.known and lookup.rows == []
    text = format_lookup(lookup, "(201) 555-9999", "hook")
    assert text.startswith("unknown identifier for destination hook")
    assert "a phone number (region US)" in text and "email" not in text
    assert "555" not in text  # the value itself is not echoed back
    email = format_lookup(lookup_ledger(delivered, "nobody@example.com"), "nobody@example.com", None)
    assert email.startswith("unknown identifier:") and "an email" in email
    # Known elsewhere, unknown at a destination it was never staged for.
    assert not lookup_ledger(delivered, "ann@example.com", "braze").known


def test_known_identifier_with_nothing_sent_says_so(store: StateStore) -> None:
    """Staged but not yet delivered: the profile is known, its ledger is empty, and the message says which."""
    planned = plan_changes(
        [Change(ChangeKind.ENTERED, profile("p9", user_id="u9", phones=(US_PHONE,)), AS_OF)],
        connection(send_track=True),
        kind="event",
        space="acme",
    )
    with store.write() as db:
        ob.stage(store, db, "hook", "sync_test", staged_records(planned), datetime.now(UTC))
    lookup = lookup_ledger(store, "(201) 555-0123", "hook")
    assert lookup.known and lookup.profiles == ("p9",) and lookup.rows == []
    text = format_lookup(lookup, "(201) 555-0123", "hook")
    assert text.startswith("no deliveries recorded yet for destination hook for profile p9")
    assert lookup_ledger(store, "p9").known  # a profile id is an identifier too


def _workspace_file(tmp_path: Path, state_location: str, region: str) -> Path:
    config = base()
    config["normalisation"] = {"default_region": region}
    if "://" in state_location:
        config["state"] = {"url": state_location}
    else:
        config["state"] = {"path": state_location}
    path = tmp_path / "workspace.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_cli_ledger_by_phone_in_any_format(
    delivered: StateStore, state_location: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`activation-pipeline ledger` reads national phones with the workspace's region; unknown exits 1."""
    sent_to_p7 = len(query_ledger(delivered, "u7"))
    us = str(_workspace_file(tmp_path, state_location, "US"))
    for written in ("(201) 555-0123", "+1 201-555-0123", "2015550123"):
        assert main(["ledger", written, "--workspace", us, "--brief"]) == 0, written
        out = capsys.readouterr().out
        assert out.count("profile p7") == sent_to_p7 and "sent:" not in out
    assert main(["ledger", " ANN@example.com ", "--workspace", us, "--destination", "hook"]) == 0
    assert capsys.readouterr().out.count("profile p7") == sent_to_p7
    assert main(["ledger", "(201) 555-9999", "--workspace", us]) == 1
    assert capsys.readouterr().out.splitlines()[1].startswith("unknown identifier:")  # after the heading

    fr = str(_workspace_file(tmp_path, state_location, "FR"))
    assert main(["ledger", "06 12 34 56 78", "--workspace", fr, "--brief"]) == 0
    assert capsys.readouterr().out.count("profile p8") == len(query_ledger(delivered, "u8"))
