"""Move people through journeys as of a time: entries, waits, splits, branches, sends, exits.

Each run at `as_of` (after the audiences at the same time):
1. follows profile merges: positions, transitions and entry matches move to the surviving profile, and a
   person holding two positions keeps one (the active one, else the earliest entry);
2. enters the people who newly match the entry condition (everyone matching at the first run when
   `historical`, no one at the first run otherwise), subject to the re-entry rules;
3. walks every active position forward to `as_of`: a wait ends at `since + duration` (a wait of 1d started
   at 10:00 ends at 10:00 the next day, not before), a split or branch is decided at the moment the person
   reached it, a send step records the arrival (what its connections deliver) and moves on at once; the exit
   condition is checked at every arrival and, for those still in the journey, at `as_of`.

Moves happen at the times they are due, not at run times, so runs every hour and one run a day put people in
the same steps at the same times (given the same entries). People walk the version of the journey they
entered with, so an edited journey applies to those who enter after the change.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
import sqlalchemy as sa

from activation_pipeline.compute import state
from activation_pipeline.compute.engine import ComputeEngine, load_arrow
from activation_pipeline.compute.incremental import StageOrderError
from activation_pipeline.compute.sqlutil import drop_table
from activation_pipeline.config.journeys import BranchStep, Journey, SendStep, SplitStep, WaitStep
from activation_pipeline.config.workspace import Workspace
from activation_pipeline.journeys.conditions import ConditionEvaluator, Probe
from activation_pipeline.journeys.schema import JourneyTables, journey_tables

ACTIVE, EXITED, COMPLETED = "active", "exited", "completed"
CANDIDATES_TABLE = "_journey_profiles"


def naive(moment: datetime) -> datetime:
    """Naive UTC, as the compute tables hold times."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def version_of(journey: Journey) -> str:
    """A short digest of a journey's definition: a new one each time the journey is edited."""
    return state.fingerprint(journey)[:16]


@dataclass
class Position:
    """Where one person is in one journey."""

    profile_id: int
    entry: int
    version: str
    step_key: str
    since: datetime
    entered_at: datetime
    status: str = ACTIVE
    ended_at: datetime | None = None


@dataclass
class JourneyResult:
    """One journey's figures at one run (counts only)."""

    key: str
    as_of: datetime
    version: str
    entered: int = 0
    exited: int = 0
    completed: int = 0
    active: int = 0
    in_step: dict[str, int] = field(default_factory=dict)
    arrived: dict[str, int] = field(default_factory=dict)
    skipped: str | None = None
    restarted: bool = False
    """The run was earlier than the last one, so the journey started over."""

    @property
    def sent(self) -> int:
        """People who reached a send step in this run."""
        return sum(self.arrived.get(k, 0) for k in self.send_steps)

    send_steps: tuple[str, ...] = ()

    def metadata(self) -> dict[str, int | str]:
        """Numeric figures for Dagster, one per step too."""
        figures: dict[str, int | str] = {
            "entered": self.entered,
            "exited": self.exited,
            "completed": self.completed,
            "active": self.active,
            "sent": self.sent,
            "version": self.version,
        }
        for step, n in sorted(self.in_step.items()):
            figures[f"in_step.{step}"] = n
        for step, n in sorted(self.arrived.items()):
            figures[f"arrived.{step}"] = n
        return figures


@dataclass(frozen=True)
class JourneysSummary:
    """Every journey's figures at one run."""

    as_of: datetime
    journeys: list[JourneyResult]


def evaluate_journeys(
    engine: ComputeEngine, workspace: Workspace, as_of: datetime, keys: Iterable[str] | None = None
) -> JourneysSummary:
    """Move people through every (chosen) journey as of `as_of`; the audiences must be as of `as_of`."""
    moment = naive(as_of)
    jt = journey_tables(engine.schema)
    chosen = set(keys) if keys is not None else None
    results = []
    with engine.begin() as conn:
        jt.metadata.create_all(conn)
        done = state.get_time(conn, engine.tables, state.stage_key("audiences"))
        if workspace.journeys and done != moment:
            raise StageOrderError(
                f"audiences are as of {done}, not {moment}: materialise the audiences at this as-of time first"
            )
        evaluator = ConditionEvaluator(conn, engine, workspace)
        for journey in workspace.journeys:
            if chosen is None or journey.key in chosen:
                results.append(_Run(conn, engine, jt, evaluator, journey, moment).run())
    return JourneysSummary(moment, results)


class _Run:
    def __init__(
        self,
        conn: sa.Connection,
        engine: ComputeEngine,
        jt: JourneyTables,
        evaluator: ConditionEvaluator,
        journey: Journey,
        as_of: datetime,
    ) -> None:
        self.conn, self.engine, self.jt, self.evaluator = conn, engine, jt, evaluator
        self.journey, self.as_of = journey, as_of
        self.key = journey.key
        self.version = version_of(journey)
        self.definitions: dict[str, Journey] = {}
        self.transitions: list[tuple[int, int, str, str | None, datetime]] = []
        self.result = JourneyResult(
            self.key, as_of, self.version, send_steps=tuple(s.key for s in journey.send_steps())
        )
        self._probe_ids = 0

    # ------------------------------------------------------------------ the run

    def run(self) -> JourneyResult:
        conn, tables = self.conn, self.engine.tables
        watermark = f"journey_as_of:{self.key}"
        last = state.get_time(conn, tables, watermark)
        if last is not None and self.as_of < last:
            # Positions depend on every run before them and cannot be rewound: an earlier time starts over.
            self._forget()
            last = None
            self.result.restarted = True
        if last == self.as_of:
            return self._stored()
        if self.journey.created_at is not None and self.as_of < naive(self.journey.created_at):
            self.result.skipped = "before created_at"
            return self.result
        self._register_version()
        self._follow_merges()
        candidates = self._match()
        positions = self._load_positions(candidates)
        entrants = self._enter(positions, candidates, first_run=last is None)
        self._walk(positions, entrants)
        self._save(positions)
        state.put_time(conn, tables, watermark, self.as_of)
        return self.result

    def _forget(self) -> None:
        """Drop the journey's state (positions, moves, matches and run figures); its versions stay."""
        jt = self.jt
        for table in (jt.positions, jt.transitions, jt.matches, jt.runs, jt.step_counts):
            self.conn.execute(sa.delete(table).where(table.c.journey_key == self.key))

    def _register_version(self) -> None:
        v = self.jt.versions
        known = self.conn.execute(
            sa.select(v.c.version, v.c.definition).where(v.c.journey_key == self.key)
        ).all()
        for version, definition in known:
            self.definitions[version] = Journey.model_validate(json.loads(definition))
        if self.version not in self.definitions:
            definition = self.journey.model_dump_json(by_alias=True, exclude_none=True)
            self.conn.execute(
                sa.insert(v).values(
                    journey_key=self.key, version=self.version, definition=definition, first_as_of=self.as_of
                )
            )
            self.definitions[self.version] = self.journey

    def _follow_merges(self) -> None:
        a = self.engine.tables.profile_aliases
        moved = sa.and_(a.c.old_profile_id != a.c.profile_id)
        for table in (self.jt.positions, self.jt.transitions, self.jt.matches):
            self.conn.execute(
                sa.update(table)
                .where(table.c.journey_key == self.key, table.c.profile_id == a.c.old_profile_id, moved)
                .values(profile_id=a.c.profile_id)
            )

    def _ids_table(self, name: str, ids: Iterable[int]) -> sa.Table:
        """A one-column table of profile ids in the compute schema (replaced if it exists)."""
        table = sa.Table(name, sa.MetaData(schema=self.engine.schema), sa.Column("profile_id", sa.BigInteger))
        drop_table(self.conn, self.engine.schema, name)
        table.create(self.conn)
        load_arrow(self.conn, table, pa.table({"profile_id": pa.array(sorted(ids), pa.int64())}))
        return table

    def _match(self) -> set[int]:
        """Record who matches the entry condition now; the candidates to enter: those who did not before."""
        m = self.jt.matches
        before = {
            int(r)
            for r in self.conn.execute(sa.select(m.c.profile_id).where(m.c.journey_key == self.key)).scalars()
        }
        now = self.evaluator.matching_now(self.journey.entry, self.as_of)
        self.conn.execute(sa.delete(m).where(m.c.journey_key == self.key))
        if now:
            load_arrow(
                self.conn,
                m,
                pa.table(
                    {
                        "journey_key": pa.array([self.key] * len(now), pa.string()),
                        "profile_id": pa.array(sorted(now), pa.int64()),
                    }
                ),
            )
        return now - before

    def _load_positions(self, candidates: set[int]) -> dict[int, Position]:
        """The positions a run can change: everyone in the journey, the candidates to enter, and people holding
        two positions after a merge. Everyone else has left and does not match anew, so their row stays."""
        p = self.jt.positions
        wanted = self._ids_table(CANDIDATES_TABLE, candidates)
        doubled = (
            sa.select(p.c.profile_id)
            .where(p.c.journey_key == self.key)
            .group_by(p.c.profile_id)
            .having(sa.func.count() > 1)
        )
        rows = self.conn.execute(
            sa.select(
                p.c.profile_id, p.c.entry, p.c.version, p.c.step_key, p.c.since, p.c.entered_at, p.c.status,
                p.c.ended_at,
            ).where(
                p.c.journey_key == self.key,
                sa.or_(
                    p.c.status == ACTIVE,
                    p.c.profile_id.in_(sa.select(wanted.c.profile_id)),
                    p.c.profile_id.in_(doubled),
                ),
            )
        ).all()  # fmt: skip
        drop_table(self.conn, self.engine.schema, CANDIDATES_TABLE)
        positions: dict[int, Position] = {}
        # A merged person keeps one position: the active one, else the latest entry; ties: earliest entry time.
        ranked = sorted(
            (Position(int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], r[6], r[7]) for r in rows),
            key=lambda pos: (pos.status != ACTIVE, -pos.entry, pos.entered_at, pos.step_key),
        )
        for pos in ranked:
            positions.setdefault(pos.profile_id, pos)
        return positions

    def _enter(
        self, positions: dict[int, Position], candidates: set[int], *, first_run: bool
    ) -> list[Position]:
        if first_run and not self.journey.historical:
            return []
        first_step = self.journey.steps[0].key
        entrants = []
        for profile_id in sorted(candidates):
            held = positions.get(profile_id)
            if held is not None:
                if held.status == ACTIVE or self.journey.reentry == "never":
                    continue
                wait = self.journey.reentry_wait
                if wait is not None and self.as_of - held.entered_at < wait:
                    continue
            entry = held.entry + 1 if held is not None else 1
            pos = Position(profile_id, entry, self.version, first_step, self.as_of, self.as_of)
            positions[profile_id] = pos
            entrants.append(pos)
            self._record(pos, "entered", None, self.as_of)
            self._record(pos, "arrived", first_step, self.as_of)
        self.result.entered = len(entrants)
        return entrants

    # ------------------------------------------------------------------ walking

    def _probe(self, pos: Position, moment: datetime) -> Probe:
        self._probe_ids += 1
        return Probe(self._probe_ids, pos.profile_id, moment, pos.entered_at, pos.since)

    def _exits(self, checks: list[tuple[Position, datetime]]) -> set[int]:
        """Profiles (of `checks`) whose journey's exit condition holds at their moment."""
        by_version: dict[str, list[tuple[Position, datetime]]] = defaultdict(list)
        for pos, moment in checks:
            by_version[pos.version].append((pos, moment))
        leaving: set[int] = set()
        for version, items in by_version.items():
            condition = self.definitions[version].exit
            if condition is None:
                continue
            probes = [(self._probe(pos, moment), pos) for pos, moment in items]
            answered = self.evaluator.holds(condition, [probe for probe, _ in probes])
            leaving |= {pos.profile_id for probe, pos in probes if probe.probe_id in answered}
        return leaving

    def _walk(self, positions: dict[int, Position], entrants: list[Position]) -> None:
        entrant_ids = {p.profile_id for p in entrants}
        waiting = [p for p in positions.values() if p.status == ACTIVE and p.profile_id not in entrant_ids]
        arrivals = list(entrants)
        # Waiting positions were checked for exit when they arrived; they move (or not) in the first round.
        pending = waiting
        while arrivals or pending:
            leaving = self._exits([(p, p.since) for p in arrivals])
            for pos in arrivals:
                if pos.profile_id in leaving:
                    self._end(pos, EXITED, pos.since)
            current = [p for p in arrivals if p.status == ACTIVE] + pending
            pending = []
            arrivals = self._advance(current)

    def _advance(self, current: list[Position]) -> list[Position]:
        """Move each position on from its step where due; the positions that arrived somewhere new."""
        groups: dict[tuple[str, str], list[Position]] = defaultdict(list)
        for pos in current:
            groups[(pos.version, pos.step_key)].append(pos)
        arrivals: list[Position] = []
        for (version, step_key), people in sorted(groups.items()):
            step = self.definitions[version].step(step_key)
            if isinstance(step, WaitStep):
                due = [p for p in people if p.since + step.duration <= self.as_of]
                leaving = self._exits([(p, p.since + step.duration) for p in due])
                for pos in due:
                    moment = pos.since + step.duration
                    if pos.profile_id in leaving:
                        self._end(pos, EXITED, moment)
                    else:
                        arrivals += self._move(pos, step.next, moment)
            elif isinstance(step, SplitStep):
                holds = self._holds(step.condition, people)
                for pos in people:
                    arrivals += self._move(
                        pos, step.then if pos.profile_id in holds else step.else_, pos.since
                    )
            elif isinstance(step, BranchStep):
                undecided = list(people)
                for branch in step.branches:
                    holds = self._holds(branch.when, undecided)
                    for pos in [p for p in undecided if p.profile_id in holds]:
                        arrivals += self._move(pos, branch.next, pos.since)
                    undecided = [p for p in undecided if p.profile_id not in holds]
                for pos in undecided:
                    arrivals += self._move(pos, step.else_, pos.since)
            elif isinstance(step, SendStep):
                for pos in people:
                    arrivals += self._move(pos, step.next, pos.since)
        return arrivals

    def _holds(self, condition: object, people: list[Position]) -> set[int]:
        probes = {}
        for pos in people:
            probe = self._probe(pos, pos.since)
            probes[probe.probe_id] = (probe, pos.profile_id)
        answered = self.evaluator.holds(condition, [p for p, _ in probes.values()])
        return {probes[i][1] for i in answered}

    def _move(self, pos: Position, target: str | None, moment: datetime) -> list[Position]:
        if target is None:
            self._end(pos, COMPLETED, moment)
            return []
        pos.step_key, pos.since = target, moment
        self._record(pos, "arrived", target, moment)
        return [pos]

    def _end(self, pos: Position, status: str, moment: datetime) -> None:
        pos.status, pos.ended_at = status, moment
        self._record(pos, status, pos.step_key, moment)
        if status == EXITED:
            self.result.exited += 1
        else:
            self.result.completed += 1

    def _record(self, pos: Position, kind: str, step_key: str | None, moment: datetime) -> None:
        self.transitions.append((pos.profile_id, pos.entry, kind, step_key, moment))
        if kind == "arrived" and step_key is not None:
            self.result.arrived[step_key] = self.result.arrived.get(step_key, 0) + 1

    # ------------------------------------------------------------------ saving

    def _save(self, positions: dict[int, Position]) -> None:
        conn, jt, key = self.conn, self.jt, self.key
        # The last exit check: everyone still in the journey, at the run's own time.
        still = [p for p in positions.values() if p.status == ACTIVE and p.since < self.as_of]
        leaving = self._exits([(p, self.as_of) for p in still])
        for pos in still:
            if pos.profile_id in leaving:
                self._end(pos, EXITED, self.as_of)
        ordered = sorted(positions.values(), key=lambda p: p.profile_id)
        touched = self._ids_table(CANDIDATES_TABLE, [p.profile_id for p in ordered])
        conn.execute(
            sa.delete(jt.positions).where(
                jt.positions.c.journey_key == key,
                jt.positions.c.profile_id.in_(sa.select(touched.c.profile_id)),
            )
        )
        drop_table(conn, self.engine.schema, CANDIDATES_TABLE)
        if ordered:
            load_arrow(
                conn,
                jt.positions,
                pa.table(
                    {
                        "journey_key": pa.array([key] * len(ordered), pa.string()),
                        "profile_id": pa.array([p.profile_id for p in ordered], pa.int64()),
                        "entry": pa.array([p.entry for p in ordered], pa.int32()),
                        "version": pa.array([p.version for p in ordered], pa.string()),
                        "step_key": pa.array([p.step_key for p in ordered], pa.string()),
                        "since": pa.array([p.since for p in ordered], pa.timestamp("us")),
                        "entered_at": pa.array([p.entered_at for p in ordered], pa.timestamp("us")),
                        "status": pa.array([p.status for p in ordered], pa.string()),
                        "ended_at": pa.array([p.ended_at for p in ordered], pa.timestamp("us")),
                    }
                ),
            )
        rows = self.transitions
        if rows:
            load_arrow(
                conn,
                jt.transitions,
                pa.table(
                    {
                        "journey_key": pa.array([key] * len(rows), pa.string()),
                        "profile_id": pa.array([r[0] for r in rows], pa.int64()),
                        "entry": pa.array([r[1] for r in rows], pa.int32()),
                        "kind": pa.array([r[2] for r in rows], pa.string()),
                        "step_key": pa.array([r[3] for r in rows], pa.string()),
                        "moved_at": pa.array([r[4] for r in rows], pa.timestamp("us")),
                        "run_as_of": pa.array([self.as_of] * len(rows), pa.timestamp("us")),
                    }
                ),
            )
        active = [p for p in ordered if p.status == ACTIVE]
        self.result.active = len(active)
        self.result.in_step = {s.key: 0 for s in self.journey.steps}
        for pos in active:
            self.result.in_step[pos.step_key] = self.result.in_step.get(pos.step_key, 0) + 1
        conn.execute(
            sa.insert(jt.runs).values(
                journey_key=key, as_of=self.as_of, version=self.version, entered=self.result.entered,
                exited=self.result.exited, completed=self.result.completed, active=self.result.active,
            )
        )  # fmt: skip
        for step_key in sorted(set(self.result.in_step) | set(self.result.arrived)):
            conn.execute(
                sa.insert(jt.step_counts).values(
                    journey_key=key, as_of=self.as_of, step_key=step_key,
                    in_step=self.result.in_step.get(step_key, 0), arrived=self.result.arrived.get(step_key, 0),
                )
            )  # fmt: skip

    def _stored(self) -> JourneyResult:
        """The figures of a run at this very time, which already happened (a repeated run changes nothing)."""
        jt, result = self.jt, self.result
        row = self.conn.execute(
            sa.select(jt.runs).where(jt.runs.c.journey_key == self.key, jt.runs.c.as_of == self.as_of)
        ).first()
        if row is not None:
            result.version, result.entered, result.exited = row.version, row.entered, row.exited
            result.completed, result.active = row.completed, row.active
        steps = self.conn.execute(
            sa.select(jt.step_counts).where(
                jt.step_counts.c.journey_key == self.key, jt.step_counts.c.as_of == self.as_of
            )
        ).all()
        result.in_step = {r.step_key: r.in_step for r in steps}
        result.arrived = {r.step_key: r.arrived for r in steps if r.arrived}
        return result
