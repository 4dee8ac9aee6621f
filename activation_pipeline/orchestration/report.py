"""What `activation-pipeline run` prints: a progress line per stage while it works, then a table per stage.

Every figure comes from the materialisations' metadata (the same numbers the UI plots); counts only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

Figures = Mapping[str, float | int | str]

LEGEND = """\
legend:
  landed: events landed by this run (quarantined: unusable lines kept with their reason; duplicates: messageIds
    already landed); files: new / appended / changed / unchanged source files.
  traits: 'full' recomputes every profile; 'incremental N' recomputes the N profiles whose events changed.
  audiences: size now, and who entered and exited since the last evaluation.
  journeys: who entered, exited (exit condition) and completed (end of a path) in this run, who is in the journey
    now, and who reached a send step in this run (delivered by the syncs of its destinations).
  syncs: entered / exited / updated are profiles that changed for the destination; records are the messages
    (list rows, identify or track calls) they make; sent and failed count records; deferred records wait for
    the next run; unaddressable profiles lack an identifier the destination takes.
    rows / platform: identifier rows sent to a list destination and what it reported receiving (Meta: rows;
    Google: members; Marketo: leads, and a member with two emails is two leads, so it can be larger);
    requests: data requests (batches); sandbox requests: every HTTP request the fake server received, also
    sign-in, token and audience-creation calls, so it can be larger. A function runs locally: no server."""


def _n(figures: Figures, name: str) -> int:
    value = figures.get(name, 0)
    return int(float(value)) if not isinstance(value, str) else 0


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], first_width: int) -> list[str]:
    """Rows under a header: the first column left-aligned, the others right-aligned."""
    widths = [first_width] + [
        max(len(str(h)), *(len(f"{r[i]:,}" if isinstance(r[i], int) else str(r[i])) for r in rows))
        for i, h in enumerate(header)
        if i
    ]

    def line(cells: Sequence[object]) -> str:
        shown = [f"{c:,}" if isinstance(c, int) else str(c) for c in cells]
        return "  " + "  ".join(
            s.ljust(w) if i == 0 else s.rjust(w) for i, (s, w) in enumerate(zip(shown, widths, strict=True))
        )

    return [line(header), *(line(r) for r in rows)]


def landing_line(figures: Figures) -> str:
    """`events: 99,742 landed (196 quarantined, 0 duplicates) from 120 new files, 99,742 in all; 7.9 s
    (12,625 events/s)`."""
    files = ", ".join(
        f"{_n(figures, f'{kind}_sources')} {kind}"
        for kind in ("new", "appended", "changed", "unchanged")
        if _n(figures, f"{kind}_sources")
    )
    return (
        f"events: {_n(figures, 'events'):,} landed ({_n(figures, 'quarantined'):,} quarantined, "
        f"{_n(figures, 'duplicates'):,} duplicates) from {files or 'no'} files, "
        f"{_n(figures, 'events_total'):,} in all; {float(figures.get('seconds') or 0):.1f} s "
        f"({_n(figures, 'events_per_second'):,} events/s)"
    )


def evaluation_line(materialisations: Mapping[str, Figures]) -> str:
    """`evaluated: 3,025 profiles, 12 traits, 9 audiences (1,485 memberships)`."""
    profiles = materialisations.get("profiles", {})
    traits = [k for k in materialisations if k.startswith("traits/")]
    audiences = {k: f for k, f in materialisations.items() if k.startswith("audiences/")}
    return (
        f"evaluated: {_n(profiles, 'profiles'):,} profiles, {len(traits)} traits, {len(audiences)} audiences "
        f"({sum(_n(f, 'size') for f in audiences.values()):,} memberships)"
    )


def sync_line(destination: str, figures: Figures) -> str:
    """`sync meta_ads: 52 entered, 0 exited, 0 updated -> 52 records sent, 0 failed, 0 deferred`."""
    return (
        f"sync {destination}: {_n(figures, 'entered'):,} entered, {_n(figures, 'exited'):,} exited, "
        f"{_n(figures, 'updated'):,} updated -> {_n(figures, 'sent'):,} records sent, "
        f"{_n(figures, 'failed'):,} failed, {_n(figures, 'deferred_to_next_run'):,} deferred"
    )


def _trait_mode(figures: Figures) -> str:
    recomputed = _n(figures, "recomputed_profiles")
    return "full" if recomputed < 0 else f"incremental {recomputed:,}"


def summary_tables(
    materialisations: Mapping[str, Figures], sandbox_requests: Mapping[str, int] | None = None
) -> list[str]:
    """The figures that matter, one short table per stage, then the legend."""
    m = materialisations
    lines: list[str] = []
    if "events" in m:
        e = m["events"]
        lines += ["landing", *_table(
            ["landed", "quarantined", "duplicates", "total", "files new/appended/changed/unchanged", "seconds"],
            [[_n(e, "events"), _n(e, "quarantined"), _n(e, "duplicates"), _n(e, "events_total"),
              "/".join(str(_n(e, f"{k}_sources")) for k in ("new", "appended", "changed", "unchanged")),
              f"{float(e.get('seconds', 0)):.1f}"]], 6)]  # fmt: skip
    if "profiles" in m:
        p = m["profiles"]
        lines += ["identity", *_table(
            ["profiles", "identifiers", "merges", "merges refused by a limit", "blocked values seen"],
            [[_n(p, "profiles"), _n(p, "identifiers"), _n(p, "merges"), _n(p, "dropped_by_limit"),
              _n(p, "blocked_values_seen")]], 8)]  # fmt: skip
    traits = {k.removeprefix("traits/"): f for k, f in m.items() if k.startswith("traits/")}
    grouped = {k: f for k, f in m.items() if k in ("custom_traits", "sql_traits")}
    if traits or grouped:
        rows: list[list[object]] = [
            [k, _trait_mode(f)] for k, f in traits.items() if "recomputed_profiles" in f
        ]
        rows += [[k, _trait_mode(f) if "recomputed_profiles" in f else "full"] for k, f in grouped.items()]
        rows += [
            [k, f"scored {_n(f, 'scored_profiles'):,}"] for k, f in traits.items() if "scored_profiles" in f
        ]
        width = max(len(str(r[0])) for r in rows) if rows else 5
        lines += ["traits", *_table(["trait", "computed"], rows, width)]
    audiences = {k.removeprefix("audiences/"): f for k, f in m.items() if k.startswith("audiences/")}
    if audiences:
        width = max(len(k) for k in audiences)
        lines += ["audiences", *_table(
            ["audience", "size", "entered", "exited"],
            [[k, _n(f, "size"), _n(f, "entered"), _n(f, "exited")] for k, f in audiences.items()], width)]  # fmt: skip
    journeys = {k.removeprefix("journeys/"): f for k, f in m.items() if k.startswith("journeys/")}
    if journeys:
        width = max(len(k) for k in journeys)
        names = ["entered", "exited", "completed", "active", "sent"]
        lines += ["journeys", *_table(
            ["journey", *names], [[k, *(_n(f, n) for n in names)] for k, f in journeys.items()], width)]  # fmt: skip
    syncs = {k.removeprefix("sync/"): f for k, f in m.items() if k.startswith("sync/")}
    if syncs:
        requests = sandbox_requests or {}
        header = ["destination", "entered", "exited", "updated", "records", "sent", "failed", "deferred",
                  "unaddressable", "rows / platform", "requests", "seconds"]  # fmt: skip
        if sandbox_requests is not None:
            header.insert(-1, "sandbox requests")
        rows = []
        for destination, f in syncs.items():
            listed = "platform_received" in f
            row: list[object] = [
                destination, _n(f, "entered"), _n(f, "exited"), _n(f, "updated"),
                _n(f, "records_planned") or _n(f, "records"), _n(f, "sent"), _n(f, "failed"),
                _n(f, "deferred_to_next_run"), _n(f, "unaddressable"),
                f"{_n(f, 'rows_sent') or _n(f, 'sent'):,} / {_n(f, 'platform_received'):,}" if listed else "-",
                _n(f, "requests"), f"{float(f.get('duration_seconds', 0)):.1f}",
            ]  # fmt: skip
            if sandbox_requests is not None:
                row.insert(-1, f"{requests[destination]:,}" if destination in requests else "local")
            rows.append(row)
        lines += ["syncs", *_table(header, rows, max(11, *(len(k) for k in syncs)))]
    return [*lines, LEGEND]
