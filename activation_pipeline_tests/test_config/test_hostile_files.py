"""Hostile and broken workspace files: each gives clear problems quickly, never a traceback or a blow-up."""

import resource
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from activation_pipeline.config import validate_text
from activation_pipeline.config.loader import validate_file

from .conftest import base, problems_of


def _messages(config: dict[str, Any] | str) -> list[str]:
    return [str(p) for p in problems_of(config)]


def _alias_bomb(levels: int) -> str:
    lines = ["workspace: shop", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_fast_and_small() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    _, problems = validate_text(_alias_bomb(9))  # 10^9 values once expanded
    assert time.perf_counter() - started < 2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KiB
    assert [str(p) for p in problems] == ["holds more than 200,000 values once its YAML aliases are expanded"]


def test_ordinary_anchors_are_fine() -> None:
    config = yaml.safe_dump(base()).replace(
        "settings: {url: https://hooks.example.com/x}", "settings: {url: x}"
    )
    text = "common: &limits {requests_per_second: 10}\n" + config
    assert _messages(text) == ["line 1: common: unknown key (check its spelling and indentation)"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("workspace: caf\xe9\n".encode("latin-1"), "line 1: not UTF-8 text (byte 0xe9); save the file as UTF-8"),
        (bytes(range(128, 256)), "line 1: not UTF-8 text (byte 0x80); save the file as UTF-8"),
        (b"workspace: shop\nsources: \x00\n", "line 2: contains a NUL character: a workspace file is text (is this a binary file?)"),
        (b"workspace: shop\nx: " + b"[" * 5000 + b"]" * 5000, "nested more than 64 levels deep"),
        (b"workspace: shop\nx: " + b"{a: " * 900 + b"1" + b"}" * 900, "nested more than 64 levels deep"),
        (b"x" * (5 * 1024 * 1024), "larger than 4 MB: not a workspace file"),
    ],
)  # fmt: skip
def test_unreadable_files_are_one_clear_problem(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "workspace.yml"
    path.write_bytes(content)
    started = time.perf_counter()
    workspace, problems = validate_file(path)
    assert time.perf_counter() - started < 2
    assert workspace is None and [str(p) for p in problems] == [message]


def test_a_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "workspace.yml"
    path.write_bytes(b"\xef\xbb\xbf" + yaml.safe_dump(base()).encode())
    assert validate_file(path)[1] == []


def test_an_enormous_window_is_a_problem_not_an_overflow() -> None:
    config = base()
    config["traits"]["computed"][0]["window"] = "99999999999999999d"
    assert _messages(config) == [
        "line 32: traits.computed[0].window: '99999999999999999d': a time window may be at most 3650d (ten years)"
    ]


def test_a_cycle_through_thousands_of_audiences_is_reported() -> None:
    config = base()
    count = 2001
    config["audiences"] = [
        {"key": f"a{i}", "where": {"audience": f"a{(i + 1) % count}"}} for i in range(count)
    ]
    config["connections"] = []
    messages = _messages(config)
    assert len(messages) == 1 and "audiences refer to each other in a circle: a0 -> a1 -> a2" in messages[0]


def test_a_bad_name_and_unknown_keys_do_not_hide_other_problems() -> None:
    config = base()
    config["workspace"] = "Bad Name!"
    config["extra"] = 1
    config["audiences"][1]["where"]["all"][1]["not"]["audience"] = "buyerz"
    assert _messages(config) == [
        "line 1: workspace: must be a lowercase name of letters, digits, _ or - (at most 63 characters)",
        "line 54: audiences[1].where.all[1].not.audience: unknown audience 'buyerz'",
        "line 138: extra: unknown key (check its spelling and indentation)",
    ]


def test_inline_secrets_and_clear_text_tokens_are_flagged() -> None:
    config = base()
    hook = config["destinations"][4]["settings"]
    hook["headers"] = {"Authorization": "Bearer hunter2", "X-Team": "crm"}
    config["destinations"][3]["settings"]["base_url"] = "http://rest.example.com"
    config["destinations"].append(
        {
            "id": "fn",
            "type": "function",
            "settings": {"handler": "f.py", "settings": {"loyalty_api_key": "k-123"}},
        }
    )
    config["sources"] = {"events": {"url": "postgresql://admin:hunter2@db.example.com/events"}}
    found = {p.path: p.message for p in problems_of(config)}
    advice = "reference an environment variable instead ({env: NAME})"
    assert (
        found["destinations[4].settings.headers.Authorization"]
        == f"a credential written in the file; {advice}"
    )
    assert (
        found["destinations[5].settings.settings.loyalty_api_key"]
        == f"a credential written in the file; {advice}"
    )
    assert found["sources.events.url"] == f"a URL with a password in it; {advice}"
    assert found["destinations[3].settings.base_url"].startswith(
        "this destination sends a secret: use https://"
    )
    assert "destinations[4].settings.headers.X-Team" not in found


def test_plain_http_to_this_machine_is_fine() -> None:
    config = base()
    config["destinations"][3]["settings"]["base_url"] = "http://127.0.0.1:8080"
    assert _messages(config) == []


def test_one_file_broken_twenty_ways_gives_twenty_problems_in_one_pass() -> None:
    """Structural and cross-reference problems together, each at the file's own path and line."""
    c = base()
    c["workspace"] = "Shop Two"
    c["extras"] = 1
    c["identity"]["identifiers"]["email"]["limit"] = 0
    c["traits"]["computed"][0]["window"] = "ninety days"
    c["traits"]["computed"].append(
        {"key": "orders", "type": "counter", "event": "Order Completed", "colour": "red"}
    )
    c["traits"]["sql"][0]["identifier"] = "shoe_size"
    c["audiences"][0]["where"]["op"] = "about"
    c["audiences"][1]["where"]["all"][0]["within"] = "7 days"
    c["audiences"].append({"key": "buyers", "where": {"trait": "views_30d", "op": ">", "value": 1}})
    c["audiences"].append({"key": "fans", "where": {"trait": "favourite_colour", "op": "=", "value": "red"}})
    c["audiences"].append({"key": "fans2", "where": {"audience": "big_spender"}})
    c["destinations"][0]["settings"]["colour"] = "blue"
    c["destinations"][1]["settings"]["terms_of_service_accepted"] = False
    c["destinations"].append(
        {
            "id": "hook2",
            "type": "webhook",
            "settings": {"url": "https://h.example", "headers": {"Authorization": "x"}},
        }
    )
    c["connections"][0]["send_mobile_ids"] = "yes please"
    c["connections"][1]["id_sync"] = [{"identifier": "phone", "as": "phone", "strategy": "first_added"}]
    c["connections"][2]["source"] = "audience:big_spender"  # after a bad connections[0]: still [2]
    c["connections"][4]["trait_enrichment"] = [{"trait": "plan", "as": "plan"}]
    c["connections"].append({"source": "audience:fans", "destination": "nowhere"})
    c["connections"].append({"source": "audience:buyers", "destination": "meta", "setup": "sideways"})
    found = [(p.line, p.path) for p in problems_of(c)]
    assert found == [
        (1, "workspace"),
        (10, "identity.identifiers.email.limit"),
        (32, "traits.computed[0].window"),
        (40, "traits.computed[2].colour"),
        (44, "traits.sql[0].identifier"),
        (49, "audiences[0].where.op"),
        (55, "audiences[1].where.all[0].within"),
        (65, "audiences[3].key"),
        (72, "audiences[4].where.trait"),
        (77, "audiences[5].where.audience"),
        (85, "destinations[0].settings.colour"),
        (92, "destinations[1].settings.terms_of_service_accepted"),
        (116, "destinations[5].settings.headers.Authorization"),
        (121, "connections[0].send_mobile_ids"),
        (137, "connections[1].id_sync"),
        (141, "connections[2].source"),
        (159, "connections[4].trait_enrichment"),
        (163, "connections[5].destination"),
        (166, "connections[6].setup"),
        (167, "extras"),
    ]
