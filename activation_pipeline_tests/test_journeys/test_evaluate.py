"""Journey evaluation as of a time: waits at their edges, splits, branches, re-entry, exit, historical vs
new-only entry, merges inside a journey, edits, and runs at any cadence giving the same moves."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.compute.identity import profile_id_for

from ..test_compute.conftest import Messages, at, make_workspace
from .conftest import CART, cart_journey, positions, step_run, transitions, workspace_with

U1, U2, U3 = (profile_id_for(("user_id", u)) for u in ("u1", "u2", "u3"))


def naive(text: str) -> datetime:
    """Naive UTC time, as the journey tables hold it."""
    return at(text).replace(tzinfo=None)


def test_wait_ends_exactly_at_its_duration_then_split_and_send(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages
) -> None:
    ws = workspace_with(tmp_path, cart_journey())
    messages.track("2026-10-01T10:00", "Product Added", user="u1")
    messages.track("2026-10-01T10:00", "Product Added", user="u2")
    summary = step_run(ws, compute_engine, messages, "2026-10-01T12:00")
    assert summary.journeys[0].entered == 2
    assert {p["step_key"] for p in positions(compute_engine).values()} == {"wait_a_day"}

    messages.track("2026-10-02T09:00", "Order Completed", user="u2")  # after entry: the split says true
    step_run(ws, compute_engine, messages, "2026-10-02T11:59")
    assert positions(compute_engine)[U1]["step_key"] == "wait_a_day"  # one minute short of a day

    result = step_run(ws, compute_engine, messages, "2026-10-02T12:00").journeys[0]
    now = positions(compute_engine)
    assert (now[U1]["step_key"], now[U1]["status"], now[U1]["ended_at"]) == (
        "remind",
        "completed",
        naive("2026-10-02T12:00"),
    )
    assert (now[U2]["step_key"], now[U2]["status"]) == ("ordered", "completed")
    assert result.arrived == {"ordered": 2, "remind": 1} and result.sent == 1 and result.completed == 2
    moves = [(k, s, t) for p, _, k, s, t in transitions(compute_engine) if p == U1]
    assert moves == [
        ("arrived", "ordered", naive("2026-10-02T12:00")),
        ("arrived", "remind", naive("2026-10-02T12:00")),
        ("arrived", "wait_a_day", naive("2026-10-01T12:00")),
        ("completed", "remind", naive("2026-10-02T12:00")),
        ("entered", None, naive("2026-10-01T12:00")),
    ]


BRANCHES = """
      - key: by_plan
        type: branch
        branches:
          - {when: {trait: plan, op: "=", value: pro}, next: pro_send}
          - {when: {event: Product Viewed, since: entry, at_least: 2}, next: browsing}
        else: hook_send
      - {key: pro_send, type: send, destinations: [{destination: braze}]}
      - {key: browsing, type: wait, duration: 2h}
      - {key: hook_send, type: send, destinations: [{destination: hook}]}
"""


def test_branch_first_match_wins_with_else(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages
) -> None:
    ws = workspace_with(tmp_path, cart_journey(steps=BRANCHES))
    messages.identify("2026-10-01T09:00", user="u1", plan="pro")
    for user in ("u1", "u2", "u3"):
        messages.track("2026-10-01T10:00", "Product Added", user=user)
    # u1 is pro and browsed too: the first branch wins. u2 browsed twice after entry; u3 did nothing.
    messages.track("2026-10-01T10:30", "Product Viewed", user="u1")
    messages.track("2026-10-01T10:30", "Product Viewed", user="u1")
    messages.track("2026-10-01T09:00", "Product Viewed", user="u2")  # before entry: does not count
    messages.track("2026-10-01T10:30", "Product Viewed", user="u2")
    step_run(ws, compute_engine, messages, "2026-10-01T10:00")
    first = positions(compute_engine)
    assert (first[U1]["step_key"], first[U1]["status"]) == ("pro_send", "completed")
    assert (first[U2]["step_key"], first[U2]["status"]) == ("hook_send", "completed")
    assert (first[U3]["step_key"], first[U3]["status"]) == ("hook_send", "completed")


def test_branch_on_events_since_entry(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages
) -> None:
    steps = "\n      - {key: hold, type: wait, duration: 1h, next: by_plan}" + BRANCHES
    ws = workspace_with(tmp_path, cart_journey(steps=steps))
    messages.track("2026-10-01T10:00", "Product Added", user="u2")
    messages.track("2026-10-01T09:00", "Product Viewed", user="u2")
    messages.track("2026-10-01T10:30", "Product Viewed", user="u2")
    messages.track("2026-10-01T10:40", "Product Viewed", user="u2")
    messages.track("2026-10-01T11:30", "Product Viewed", user="u2")  # after the branch was decided
    step_run(ws, compute_engine, messages, "2026-10-01T10:00")
    result = step_run(ws, compute_engine, messages, "2026-10-01T14:00").journeys[0]
    assert positions(compute_engine)[U2]["step_key"] == "browsing"
    assert positions(compute_engine)[U2]["ended_at"] == naive("2026-10-01T13:00")  # 11:00 + the 2h wait
    assert result.arrived == {"by_plan": 1, "browsing": 1}


def test_exit_condition_at_the_run_and_at_arrival(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages
) -> None:
    ws = workspace_with(tmp_path, cart_journey("    exit: {event: Order Completed, since: entry}"))
    messages.track("2026-10-01T10:00", "Product Added", user="u1")
    messages.track("2026-10-01T10:00", "Product Added", user="u2")
    step_run(ws, compute_engine, messages, "2026-10-01T12:00")
    messages.track("2026-10-01T18:00", "Order Completed", user="u1")
    result = step_run(ws, compute_engine, messages, "2026-10-01T20:00").journeys[0]
    assert result.exited == 1
    now = positions(compute_engine)
    assert (now[U1]["status"], now[U1]["ended_at"]) == ("exited", naive("2026-10-01T20:00"))
    # u2 orders after the wait ended but before the next run: at the wait's end the exit did not hold yet.
    messages.track("2026-10-02T13:00", "Order Completed", user="u2")
    step_run(ws, compute_engine, messages, "2026-10-03T00:00")
    assert positions(compute_engine)[U2]["step_key"] == "remind"
    assert positions(compute_engine)[U2]["status"] == "completed"


def test_historical_entry_and_new_only_entry(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages
) -> None:
    ws = workspace_with(tmp_path, cart_journey("    historical: false"))
    messages.track("2026-10-01T10:00", "Product Added", user="u1")
    first = step_run(ws, compute_engine, messages, "2026-10-01T12:00").journeys[0]
    assert first.entered == 0 and positions(compute_engine) == {}
    messages.track("2026-10-01T13:00", "Product Added", user="u2")
    second = step_run(ws, compute_engine, messages, "2026-10-01T14:00").journeys[0]
    assert second.entered == 1 and set(positions(compute_engine)) == {U2}


def test_historical_entry_takes_everyone_matching(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages
) -> None:
    ws = workspace_with(tmp_path, cart_journey("    historical: true"))
    messages.track("2026-09-28T10:00", "Product Added", user="u1")
    assert step_run(ws, compute_engine, messages, "2026-10-01T12:00").journeys[0].entered == 1
    assert set(positions(compute_engine)) == {U1}


def _leave_and_come_back(
    ws_path: Path, compute_engine: ComputeEngine, messages: Messages, journey_yaml: str
) -> dict[int, dict]:
    ws = workspace_with(ws_path, cart_journey(journey_yaml))
    messages.track("2026-10-01T10:00", "Product Added", user="u1")
    step_run(ws, compute_engine, messages, "2026-10-01T12:00")
    step_run(ws, compute_engine, messages, "2026-10-03T12:00")  # completed; cart still within 7d
    messages.track("2026-10-04T10:00", "Order Completed", user="u1")
    step_run(ws, compute_engine, messages, "2026-10-04T12:00")  # left the audience
    messages.track("2026-10-12T10:00", "Product Added", user="u1")
    step_run(ws, compute_engine, messages, "2026-10-12T12:00")  # matches anew
    return positions(compute_engine)


def test_reentry_never(tmp_path: Path, compute_engine: ComputeEngine, messages: Messages) -> None:
    now = _leave_and_come_back(tmp_path, compute_engine, messages, "    reentry: never")
    assert (now[U1]["entry"], now[U1]["status"]) == (1, "completed")


def test_reentry_after_exit(tmp_path: Path, compute_engine: ComputeEngine, messages: Messages) -> None:
    now = _leave_and_come_back(tmp_path, compute_engine, messages, "    reentry: after_exit")
    assert (now[U1]["entry"], now[U1]["status"], now[U1]["step_key"]) == (2, "active", "wait_a_day")
    assert now[U1]["entered_at"] == naive("2026-10-12T12:00")


def test_reentry_wait_holds_people_back(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages
) -> None:
    now = _leave_and_come_back(
        tmp_path, compute_engine, messages, "    reentry: after_exit\n    reentry_wait: 12d"
    )
    assert (now[U1]["entry"], now[U1]["status"]) == (1, "completed")


def test_merged_profiles_keep_one_position(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages
) -> None:
    ws = workspace_with(tmp_path, cart_journey())
    messages.track("2026-10-01T10:00", "Product Added", anon="a1")
    messages.track("2026-10-01T11:00", "Product Added", user="u9")
    step_run(ws, compute_engine, messages, "2026-10-01T12:00")
    assert len(positions(compute_engine)) == 2
    messages.identify("2026-10-01T13:00", user="u9", anon="a1")  # the two are one person
    result = step_run(ws, compute_engine, messages, "2026-10-01T14:00").journeys[0]
    now = positions(compute_engine)
    assert len(now) == 1 and result.entered == 0 and result.active == 1
    (survivor,) = now.values()
    assert survivor["step_key"] == "wait_a_day" and survivor["entry"] == 1
    step_run(ws, compute_engine, messages, "2026-10-02T12:00")
    sends = [t for t in transitions(compute_engine) if t[2:4] == ("arrived", "remind")]
    assert len(sends) == 1  # one person, one send


def test_runs_every_three_hours_move_people_as_one_run_a_day_does(tmp_path: Path, messages: Messages) -> None:
    from activation_pipeline.compute.engine import ComputeEngine as Engine

    steps = """
      - {key: wait_a_day, type: wait, duration: 1d, next: ordered}
      - {key: ordered, type: split, condition: {event: Order Completed, since: entry}, then: thank, else: remind}
      - {key: thank, type: wait, duration: 3h}
      - {key: remind, type: send, destinations: [{destination: hook}], next: later}
      - {key: later, type: wait, duration: 5h}
"""
    messages.track("2026-10-01T10:00", "Product Added", user="u1")
    messages.track("2026-10-01T10:00", "Product Added", user="u2")
    messages.track("2026-10-01T20:00", "Order Completed", user="u2")
    outcomes = []
    for cadence in (3, 24):
        root = tmp_path / f"every_{cadence}h"
        root.mkdir()
        (root / "events").mkdir()
        for day, lines in messages.by_day.items():
            (root / "events" / f"{day}.jsonl").write_text("\n".join(lines) + "\n")
        ws = make_workspace(root, CART + cart_journey(steps=steps))
        engine = Engine(url=f"duckdb:///{root / 'compute.duckdb'}", schema="s")
        from activation_pipeline.compute.pipeline import ComputePipeline
        from activation_pipeline.journeys.evaluate import evaluate_journeys

        pipeline = ComputePipeline(ws, engine)
        pipeline.land()
        hour = 0
        start = at("2026-10-01T12:00")
        from datetime import timedelta

        while hour <= 48:
            moment = start + timedelta(hours=hour)
            pipeline.evaluate(moment)
            evaluate_journeys(engine, ws, moment)
            hour += cadence
        outcomes.append((transitions(engine), positions(engine)))
        engine.dispose()
    assert outcomes[0] == outcomes[1]
    kinds = {(t[0], t[2], t[3]) for t in outcomes[0][0]}
    assert (U2, "completed", "thank") in kinds and (U1, "completed", "later") in kinds


def test_an_edit_applies_to_people_who_enter_after_it(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages
) -> None:
    before = workspace_with(tmp_path, cart_journey())
    messages.track("2026-10-01T10:00", "Product Added", user="u1")
    step_run(before, compute_engine, messages, "2026-10-01T12:00")
    edited_steps = """
      - {key: wait_a_day, type: wait, duration: 3d, next: ordered}
      - {key: ordered, type: split, condition: {event: Order Completed, since: entry}, else: remind}
      - {key: remind, type: send, destinations: [{destination: hook, send_track: true}]}
"""
    after = make_workspace(tmp_path, CART + cart_journey(steps=edited_steps))
    messages.track("2026-10-01T13:00", "Product Added", user="u2")
    step_run(after, compute_engine, messages, "2026-10-01T14:00")
    step_run(after, compute_engine, messages, "2026-10-02T15:00")
    now = positions(compute_engine)
    assert (now[U1]["step_key"], now[U1]["status"]) == ("remind", "completed")  # entered before: waited 1d
    assert (now[U2]["step_key"], now[U2]["status"]) == ("wait_a_day", "active")  # entered after: waits 3d
    assert now[U1]["version"] != now[U2]["version"]


def test_a_repeated_run_changes_nothing(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages
) -> None:
    ws = workspace_with(tmp_path, cart_journey())
    messages.track("2026-10-01T10:00", "Product Added", user="u1")
    first = step_run(ws, compute_engine, messages, "2026-10-01T12:00").journeys[0]
    again = step_run(ws, compute_engine, messages, "2026-10-01T12:00").journeys[0]
    assert (
        (again.entered, again.in_step)
        == (first.entered, first.in_step)
        == (1, {"wait_a_day": 1, "ordered": 0, "remind": 0})
    )
    assert len(transitions(compute_engine)) == 2


def test_an_earlier_time_starts_the_journey_over(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages
) -> None:
    ws = workspace_with(tmp_path, cart_journey())
    messages.track("2026-10-01T10:00", "Product Added", user="u1")
    step_run(ws, compute_engine, messages, "2026-10-01T12:00")
    step_run(ws, compute_engine, messages, "2026-10-02T12:00")
    assert positions(compute_engine)[U1]["status"] == "completed"
    result = step_run(ws, compute_engine, messages, "2026-10-01T18:00").journeys[0]
    assert result.restarted and result.entered == 1
    assert (positions(compute_engine)[U1]["status"], positions(compute_engine)[U1]["since"]) == (
        "active",
        naive("2026-10-01T18:00"),
    )
    assert len(transitions(compute_engine)) == 2


def test_incremental_evaluation_equals_full(tmp_path: Path, messages: Messages) -> None:
    """The same runs with incremental audience evaluation and with full recomputation move the same people."""
    from activation_pipeline.compute.engine import ComputeEngine as Engine
    from activation_pipeline.compute.pipeline import ComputePipeline
    from activation_pipeline.journeys.evaluate import evaluate_journeys

    steps = """
      - {key: wait_a_day, type: wait, duration: 1d, next: by_plan}
      - key: by_plan
        type: branch
        branches: [{when: {trait: plan, op: "=", value: pro}, next: pro_send}]
        else: ordered
      - {key: pro_send, type: send, destinations: [{destination: braze}]}
      - {key: ordered, type: split, condition: {event: Order Completed, since: entry}, else: remind}
      - {key: remind, type: send, destinations: [{destination: hook}]}
"""
    journey = cart_journey(
        "    reentry: after_exit\n    exit: {event: Product Removed, since: step}", steps=steps
    )
    messages.identify("2026-10-01T08:00", user="u1", plan="pro")
    for day, user in (("01", "u1"), ("01", "u2"), ("02", "u3"), ("03", "u4"), ("09", "u2")):
        messages.track(f"2026-10-{day}T10:00", "Product Added", user=user)
    messages.track("2026-10-02T20:00", "Order Completed", user="u2")
    messages.track("2026-10-02T20:00", "Product Removed", user="u3")
    messages.alias("2026-10-04T09:00", user="u4", previous="a4")
    messages.track("2026-10-04T10:00", "Product Added", anon="a4")
    outcomes = []
    for full in (False, True):
        root = tmp_path / ("full" if full else "incremental")
        (root / "events").mkdir(parents=True)
        for day, lines in messages.by_day.items():
            (root / "events" / f"{day}.jsonl").write_text("\n".join(lines) + "\n")
        ws = make_workspace(root, CART + journey)
        engine = Engine(url=f"duckdb:///{root / 'compute.duckdb'}", schema="s")
        pipeline = ComputePipeline(ws, engine)
        pipeline.land()
        for day in range(1, 13):
            moment = at(f"2026-10-{day:02d}T12:00")
            pipeline.evaluate(moment, full=full)
            evaluate_journeys(engine, ws, moment)
        outcomes.append((transitions(engine), positions(engine)))
        engine.dispose()
    assert outcomes[0] == outcomes[1]
    kinds = {(t[2], t[3]) for t in outcomes[0][0]}
    assert {("arrived", "pro_send"), ("arrived", "remind"), ("exited", "wait_a_day")} <= kinds
    assert max(t[1] for t in outcomes[0][0]) == 2  # u2 entered twice
