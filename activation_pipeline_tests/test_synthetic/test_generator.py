"""Tests for the synthetic Segment event generator."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from activation_pipeline.synthetic.generator import (
    GenerationSummary,
    GeneratorSpec,
    generate_lines,
    write_events,
)
from activation_pipeline.synthetic.identity import SHARED_EMAIL_FORMS, ZERO_IDFA
from activation_pipeline.synthetic.malformed import MALFORMED_KINDS

# A seed whose 300 profiles show every phone format the generator writes (planting the predictive signal
# shifted the random stream; seed 11 no longer drew a GB mobile written internationally).
SPEC = GeneratorSpec(profiles=300, events=20_000, seed=12)
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
TYPES = {"identify", "track", "page", "screen", "group", "alias"}
UPPER_UUID = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")
LOWER_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def classify(line: str) -> str | None:
    """None for a valid Segment message, else the malformed kind it shows."""
    try:
        msg = json.loads(line)
    except json.JSONDecodeError:
        return "truncated_json"
    if not isinstance(msg, dict):
        return "not_an_object"
    if msg.get("type") not in TYPES:
        return "unknown_type"
    if not msg.get("userId") and not msg.get("anonymousId"):
        return "missing_identity"
    if msg["type"] == "track" and not msg.get("event"):
        return "track_without_event"
    if not isinstance(msg.get("timestamp"), str) or not ISO.match(msg["timestamp"]):
        return "bad_timestamp"
    if "properties" in msg and not isinstance(msg["properties"], dict):
        return "properties_not_object"
    return None


@dataclass
class Generated:
    summary: GenerationSummary
    out: Path
    lines: list[str]
    messages: list[dict[str, Any]]
    malformed: Counter[str]
    truth: list[dict[str, str]]


def _load(spec: GeneratorSpec, out: Path) -> Generated:
    summary = write_events(spec, out / "events", truth_path=out / "truth.csv")
    lines: list[str] = []
    for path in summary.files:
        lines.extend(path.read_text(encoding="utf-8").splitlines())
    messages = []
    malformed: Counter[str] = Counter()
    for line in lines:
        kind = classify(line)
        if kind is None:
            messages.append(json.loads(line))
        else:
            malformed[kind] += 1
    with (out / "truth.csv").open(encoding="utf-8", newline="") as fh:
        truth = list(csv.DictReader(fh))
    return Generated(summary, out, lines, messages, malformed, truth)


@pytest.fixture(scope="module")
def gen(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    return _load(SPEC, tmp_path_factory.mktemp("synthetic"))


def _tracks(gen: Generated, event: str) -> list[dict[str, Any]]:
    return [m for m in gen.messages if m["type"] == "track" and m["event"] == event]


def _identify_traits(gen: Generated) -> list[dict[str, Any]]:
    return [m["traits"] for m in gen.messages if m["type"] == "identify"]


# ---------------------------------------------------------------- determinism


def test_same_spec_gives_identical_bytes(gen: Generated, tmp_path: Path) -> None:
    again = write_events(SPEC, tmp_path / "events", truth_path=tmp_path / "truth.csv")
    assert [p.name for p in again.files] == [p.name for p in gen.summary.files]
    for mine, theirs in zip(gen.summary.files, again.files, strict=True):
        assert mine.read_bytes() == theirs.read_bytes()
    assert (tmp_path / "truth.csv").read_bytes() == (gen.out / "truth.csv").read_bytes()
    assert list(generate_lines(SPEC)) == gen.lines


def test_different_seed_gives_different_output() -> None:
    small = GeneratorSpec(profiles=50, events=2_000, seed=1)
    first = list(generate_lines(small))
    other = list(generate_lines(GeneratorSpec(profiles=50, events=2_000, seed=2)))
    assert first != other
    assert first == list(generate_lines(GeneratorSpec(profiles=50, events=2_000, seed=1)))


# ---------------------------------------------------------------- volume, order, files


def test_event_count_near_requested(gen: Generated) -> None:
    assert 0.9 * SPEC.events <= gen.summary.lines <= 1.1 * SPEC.events
    assert gen.summary.lines == len(gen.lines)
    small = sum(1 for _ in generate_lines(GeneratorSpec(profiles=40, events=3_000, seed=3, days=10)))
    assert 2_700 <= small <= 3_300


def test_summary_matches_output(gen: Generated) -> None:
    assert gen.summary.by_type == dict(Counter(m["type"] for m in gen.messages))
    assert gen.summary.malformed == sum(gen.malformed.values())
    assert 0 < gen.summary.profiles <= SPEC.profiles
    assert gen.summary.profiles > 0.9 * SPEC.profiles
    groups = {m["groupId"] for m in gen.messages if m["type"] == "group"}
    assert gen.summary.accounts == len(groups) > 1


def test_timestamps_sorted_within_window_and_files_per_day(gen: Generated) -> None:
    end = SPEC.end
    start = end - timedelta(days=SPEC.days)
    previous = ""
    for path in gen.summary.files:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}\.jsonl", path.name)
        for line in path.read_text(encoding="utf-8").splitlines():
            if classify(line) is not None:
                continue
            msg = json.loads(line)
            ts = msg["timestamp"]
            assert ts >= previous
            previous = ts
            assert ts[:10] == path.name[:10]
            when = datetime.fromisoformat(ts.replace("Z", "+00:00"))
            assert start <= when < end
            assert msg["sentAt"] >= ts
            assert msg["receivedAt"] > msg["sentAt"]
    assert sorted(gen.summary.files) == gen.summary.files
    assert len(gen.summary.files) == SPEC.days


def test_write_events_replaces_old_jsonl(tmp_path: Path) -> None:
    (tmp_path / "1999-01-01.jsonl").write_text("{}\n")
    (tmp_path / "keep.txt").write_text("x")
    summary = write_events(GeneratorSpec(profiles=20, events=500, days=3), tmp_path)
    assert not (tmp_path / "1999-01-01.jsonl").exists()
    assert (tmp_path / "keep.txt").exists()
    assert sorted(tmp_path.glob("*.jsonl")) == summary.files


# ---------------------------------------------------------------- content mix


def test_all_message_types_present(gen: Generated) -> None:
    assert set(gen.summary.by_type) == TYPES
    events = Counter(m["event"] for m in gen.messages if m["type"] == "track")
    for name in (
        "Product Viewed", "Product Added", "Cart Viewed", "Checkout Started", "Order Completed", "Signed Up",
        "Newsletter Subscribed", "Subscription Started", "Email Opened", "Order Refunded",
    ):  # fmt: skip
        assert events[name] > 0, name


def test_funnel_shape_and_properties(gen: Generated) -> None:
    views, adds = _tracks(gen, "Product Viewed"), _tracks(gen, "Product Added")
    checkouts, orders = _tracks(gen, "Checkout Started"), _tracks(gen, "Order Completed")
    assert len(views) > 3 * len(adds) > 0
    assert len(adds) > len(checkouts) > len(orders) > 0
    assert set(views[0]["properties"]) >= {"product_id", "sku", "category", "name", "price", "currency"}
    assert all(isinstance(a["properties"]["quantity"], int) for a in adds)
    assert all(isinstance(o["properties"]["revenue"], float) for o in orders)
    assert all(o["properties"]["products"] and o["properties"]["order_id"] for o in orders)
    assert any("coupon" in o["properties"] for o in orders)
    assert {s["properties"]["plan"] for s in _tracks(gen, "Subscription Started")} <= {
        "basic",
        "pro",
        "enterprise",
    }
    refunded = {r["properties"]["order_id"] for r in _tracks(gen, "Order Refunded")}
    assert refunded <= {o["properties"]["order_id"] for o in orders}
    categories = Counter(v["properties"]["category"] for v in views)
    top, *_, bottom = categories.most_common()
    assert top[1] > 4 * bottom[1]  # skewed category popularity
    revenue_by_user: Counter[str] = Counter()
    for o in orders:
        revenue_by_user[o["userId"]] += o["properties"]["revenue"]
    ranked = sorted(revenue_by_user.values(), reverse=True)
    assert sum(ranked[: max(1, len(ranked) // 10)]) > 0.3 * sum(ranked)  # a few big spenders


def test_power_law_activity(gen: Generated) -> None:
    per_person: Counter[str] = Counter()
    anon_to_person = {r["value"]: r["person_id"] for r in gen.truth if r["identifier_type"] == "anonymous_id"}
    for m in gen.messages:
        if "anonymousId" in m:
            per_person[anon_to_person[m["anonymousId"]]] += 1
    counts = sorted(per_person.values(), reverse=True)
    assert counts[0] > 10 * counts[len(counts) // 2]


def test_anonymous_browsing_later_identified(gen: Generated) -> None:
    first_anonymous: dict[str, str] = {}
    for m in gen.messages:
        if m["type"] == "track" and "userId" not in m:
            first_anonymous.setdefault(m["anonymousId"], m["timestamp"])
    later = [
        m
        for m in gen.messages
        if m["type"] == "identify"
        and m.get("userId")
        and m.get("anonymousId") in first_anonymous
        and m["timestamp"] > first_anonymous[m["anonymousId"]]
    ]
    assert len(later) > 20
    # several devices (anonymous ids) for some users
    anons_per_user: defaultdict[str, set[str]] = defaultdict(set)
    for m in gen.messages:
        if m["type"] == "identify" and m.get("anonymousId"):
            anons_per_user[m["userId"]].add(m["anonymousId"])
    assert sum(len(a) > 1 for a in anons_per_user.values()) > 5


def test_messy_emails(gen: Generated) -> None:
    emails = [t["email"] for t in _identify_traits(gen) if "email" in t]
    assert any(e != e.strip() for e in emails)
    assert any(e.strip() != e.strip().lower() for e in emails)
    assert any("+" in e and e.strip().lower().endswith("@gmail.com") for e in emails)
    assert any("." in e.split("@")[0] and e.strip().lower().endswith("@gmail.com") for e in emails)
    assert sum(e.strip().lower() == "test@example.com" for e in emails) >= 1
    sharing = {
        m["userId"]
        for m in gen.messages
        if m["type"] == "identify" and m["traits"].get("email") in SHARED_EMAIL_FORMS
    }
    assert len(sharing) >= 2


def test_several_emails_per_person_in_truth(gen: Generated) -> None:
    emails: defaultdict[str, set[str]] = defaultdict(set)
    for row in gen.truth:
        if row["identifier_type"] == "email":
            emails[row["person_id"]].add(row["value"].strip().lower())
    assert sum(len(e) > 1 for e in emails.values()) > 10


def test_phones_in_several_formats(gen: Generated) -> None:
    patterns = {
        "us_intl": re.compile(r"^\+1 \(\d{3}\) 555-01\d\d$"),
        "us_dots": re.compile(r"^\d{3}\.555\.01\d\d$"),
        "uk_0044": re.compile(r"^0044 (20 7946 0|7700 900|1\d\d 496 0)\d+"),
        "uk_mobile": re.compile(r"^\+44 7700 900\d{3}$"),
        "uk_national": re.compile(r"^0(20 7946 0\d{3}|7700 900\d{3}|1\d\d 496 0\d{3})$"),
    }
    seen: set[str] = set()
    for traits in _identify_traits(gen):
        phone = traits.get("phone")
        if phone is None:
            continue
        for name, pattern in patterns.items():
            if pattern.match(phone):
                seen.add(name)
        if not phone.startswith("+"):  # national or 00-prefixed forms need the country to parse
            assert traits.get("country") in ("GB", "US"), traits
    assert seen == set(patterns)


def test_identify_traits(gen: Generated) -> None:
    traits = _identify_traits(gen)
    full = [t for t in traits if "first_name" in t and "address" in t]
    assert full
    assert set(full[0]["address"]) == {"city", "state", "postal_code", "country"}
    names = {t["last_name"] for t in full} | {t["first_name"] for t in full}
    assert any("'" in n for n in names)
    assert any(not n.isascii() for n in names)
    genders = {t["gender"] for t in full if "gender" in t}
    assert {"F", "female"} & genders and {"M", "m", "male"} & genders
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", t["birthday"]) for t in full if "birthday" in t)
    assert any("crm_id" in t for t in traits)
    assert all(ISO.match(t["created_at"]) for t in full)


def test_traits_change_over_time(gen: Generated) -> None:
    plans: defaultdict[str, list[str]] = defaultdict(list)
    cities: defaultdict[str, set[str]] = defaultdict(set)
    for m in gen.messages:
        if m["type"] == "identify":
            if "plan" in m["traits"]:
                plans[m["userId"]].append(m["traits"]["plan"])
            if "address" in m["traits"]:
                cities[m["userId"]].add(m["traits"]["address"]["city"])
    assert sum(len(set(p)) > 1 for p in plans.values()) > 3
    assert sum(len(c) > 1 for c in cities.values()) > 1


def test_alias_group_and_account_context(gen: Generated) -> None:
    aliases = [m for m in gen.messages if m["type"] == "alias"]
    assert aliases and all(
        a["previousId"] and a["userId"] and a["previousId"] != a["userId"] for a in aliases
    )
    groups = [m for m in gen.messages if m["type"] == "group"]
    assert groups
    assert all(set(g["traits"]) == {"name", "industry", "employees", "plan", "mrr"} for g in groups)
    group_ids = {g["groupId"] for g in groups}
    with_group = [m for m in gen.messages if m["type"] == "track" and "groupId" in m["context"]]
    assert with_group and {m["context"]["groupId"] for m in with_group} <= group_ids


def test_mobile_advertising_ids(gen: Generated) -> None:
    kinds: defaultdict[str, set[str]] = defaultdict(set)
    for m in gen.messages:
        device = m["context"].get("device")
        if device and "advertisingId" in device:
            kinds[device["type"]].add(device["advertisingId"])
    assert kinds["ios"] and all(UPPER_UUID.match(a) for a in kinds["ios"])
    assert kinds["android"] and all(LOWER_UUID.match(a) for a in kinds["android"])
    assert ZERO_IDFA in kinds["ios"]


def test_malformed_lines(gen: Generated) -> None:
    share = gen.summary.malformed / gen.summary.lines
    assert 0.4 * SPEC.malformed_share <= share <= 2.5 * SPEC.malformed_share
    assert set(gen.malformed) == set(MALFORMED_KINDS)
    none = GeneratorSpec(profiles=20, events=1_000, malformed_share=0.0, days=5)
    assert all(classify(line) is None for line in generate_lines(none))
    few = GeneratorSpec(profiles=20, events=1_000, days=5)
    assert sum(classify(line) is not None for line in generate_lines(few)) >= 1


def test_extra_events(tmp_path: Path) -> None:
    extra = {
        "Wishlist Added": ["product_id", "price", "wishlist_name"],
        "Order Completed": ["loyalty_points"],
    }
    spec = GeneratorSpec(profiles=100, events=5_000, seed=5, days=20, extra_events=extra)
    messages = [json.loads(line) for line in generate_lines(spec) if classify(line) is None]
    wishes = [m for m in messages if m["type"] == "track" and m["event"] == "Wishlist Added"]
    assert wishes
    for w in wishes:
        props = w["properties"]
        assert set(props) == {"product_id", "price", "wishlist_name"}
        assert isinstance(props["price"], float) and isinstance(props["wishlist_name"], str)
    orders = [m for m in messages if m["type"] == "track" and m["event"] == "Order Completed"]
    assert orders and all(isinstance(o["properties"]["loyalty_points"], int) for o in orders)


# ---------------------------------------------------------------- ground truth


def _emitted_identifiers(messages: list[dict[str, Any]]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for m in messages:
        if m.get("userId"):
            found.add(("user_id", m["userId"]))
        if m.get("anonymousId"):
            found.add(("anonymous_id", m["anonymousId"]))
        traits = m.get("traits") or {}
        if m["type"] == "identify":
            for key, kind in (("email", "email"), ("phone", "phone"), ("crm_id", "crm_id")):
                if key in traits:
                    found.add((kind, traits[key]))
        device = m["context"].get("device") or {}
        if "advertisingId" in device:
            found.add(("ios.idfa" if device["type"] == "ios" else "android.id", device["advertisingId"]))
    return found


def test_truth_matches_emitted_identifiers(gen: Generated) -> None:
    header = (gen.out / "truth.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "person_id,identifier_type,value"
    truth = {(r["identifier_type"], r["value"]) for r in gen.truth}
    assert len(truth) == len(gen.truth)  # every value belongs to exactly one person
    shared = {("email", e) for e in SHARED_EMAIL_FORMS} | {("ios.idfa", ZERO_IDFA)}
    assert not truth & shared
    assert truth == _emitted_identifiers(gen.messages) - shared
    kinds = {r["identifier_type"] for r in gen.truth}
    assert kinds == {"user_id", "anonymous_id", "email", "phone", "ios.idfa", "android.id", "crm_id"}
    assert len({r["person_id"] for r in gen.truth}) == gen.summary.profiles


def test_truth_people_are_linkable(gen: Generated) -> None:
    """Every person's identifiers are connected through messages carrying two of them (no shared values)."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(x: tuple[str, str]) -> tuple[str, str]:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    shared = {("email", e) for e in SHARED_EMAIL_FORMS} | {("ios.idfa", ZERO_IDFA)}
    kind_of = {r["value"]: r["identifier_type"] for r in gen.truth}
    for m in gen.messages:
        ids = _emitted_identifiers([m]) - shared
        if m["type"] == "alias":
            ids.add((kind_of[m["previousId"]], m["previousId"]))
        first, *rest = sorted(ids)
        for other in rest:
            parent[find(other)] = find(first)
    by_person: defaultdict[str, set[tuple[str, str]]] = defaultdict(set)
    for row in gen.truth:
        by_person[row["person_id"]].add(find((row["identifier_type"], row["value"])))
    assert all(len(roots) == 1 for roots in by_person.values())
