"""Rules that relate several parts of a workspace: references, duplicates, destination capabilities."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field

from pydantic import ValidationError

from activation_pipeline.config.models import (
    MOBILE_IDENTIFIERS,
    AllCondition,
    AnyCondition,
    Audience,
    AudienceCondition,
    Connection,
    EventCondition,
    IdStrategy,
    NotCondition,
    TraitCondition,
    UniqueListTrait,
)
from activation_pipeline.config.problems import Loc, describe_error, format_path
from activation_pipeline.config.workspace import Workspace
from activation_pipeline.destinations.consent import consent_traits
from activation_pipeline.destinations.registry import CATALOGUE
from activation_pipeline.destinations.spec import DestinationType

MAX_ALL_STRATEGY = 3


@dataclass(frozen=True)
class KnownKeys:
    """Keys of items that failed their own validation: still known, so references to them are not errors."""

    traits: Set[str] = frozenset()
    audiences: Set[str] = frozenset()
    destinations: Set[str] = frozenset()


@dataclass
class _Checker:
    ws: Workspace
    known: KnownKeys
    problems: list[tuple[Loc, str]] = field(default_factory=list)

    def add(self, loc: Loc, message: str) -> None:
        self.problems.append((loc, message))

    # ------------------------------------------------------------------ trait and audience key spaces

    def user_traits(self) -> set[str]:
        t = self.ws.traits
        return (
            set(t.custom)
            | {c.key for c in t.computed if c.level == "user"}
            | {k for s in t.sql if s.level == "user" for k in s.trait_keys}
            | {k for p in t.predictive for k in p.trait_keys}
            | set(self.known.traits)
        )

    def account_traits(self) -> set[str]:
        t = self.ws.traits
        return (
            set(t.account)
            | {c.key for c in t.computed if c.level == "account"}
            | {k for s in t.sql if s.level == "account" for k in s.trait_keys}
            | set(self.known.traits)
        )

    def check_duplicates(self) -> None:
        t = self.ws.traits
        # User and account traits are separate namespaces: a user's `plan` and an account's `plan` coexist.
        owners: dict[str, dict[str, str]] = {"user": {}, "account": {}}

        def claim(level: str, key: str, loc: Loc) -> None:
            if key in owners[level]:
                self.add(loc, f"{level} trait key '{key}' is already used by {owners[level][key]}")
            else:
                owners[level][key] = format_path(loc)

        for i, key in enumerate(t.custom):
            claim("user", key, ("traits", "custom", i))
        for i, key in enumerate(t.account):
            claim("account", key, ("traits", "account", i))
        for i, computed in enumerate(t.computed):
            claim(computed.level, computed.key, ("traits", "computed", i, "key"))
        for i, sql in enumerate(t.sql):
            if sql.columns:
                for j, column in enumerate(sql.columns):
                    claim(sql.level, column, ("traits", "sql", i, "columns", j))
            else:
                claim(sql.level, sql.key, ("traits", "sql", i, "key"))
        for i, predictive in enumerate(t.predictive):
            for key in predictive.trait_keys:
                claim("user", key, ("traits", "predictive", i, "key"))

        seen_audiences: dict[str, int] = {}
        for i, audience in enumerate(self.ws.audiences):
            if audience.key in seen_audiences:
                self.add(
                    ("audiences", i, "key"),
                    f"audience key '{audience.key}' is already used by audiences[{seen_audiences[audience.key]}]",
                )
            else:
                seen_audiences[audience.key] = i
            if audience.key in owners[audience.level]:
                self.add(
                    ("audiences", i, "key"),
                    f"audience key '{audience.key}' is also the trait {owners[audience.level][audience.key]}; "
                    "both would be written to the same profile trait",
                )

        seen_destinations: dict[str, int] = {}
        for i, destination in enumerate(self.ws.destinations):
            if destination.id in seen_destinations:
                self.add(
                    ("destinations", i, "id"),
                    f"destination id '{destination.id}' is already used by "
                    f"destinations[{seen_destinations[destination.id]}]",
                )
            else:
                seen_destinations[destination.id] = i

        seen_connections: dict[str, int] = {}
        for i, connection in enumerate(self.ws.connections):
            cid = connection.connection_id
            if cid in seen_connections:
                self.add(
                    ("connections", i),
                    f"connection '{cid}' is already defined by connections[{seen_connections[cid]}]",
                )
            else:
                seen_connections[cid] = i

    # ------------------------------------------------------------------ identity and traits

    def check_traits(self) -> None:
        identifiers = set(self.ws.identity.identifiers)
        for i, sql in enumerate(self.ws.traits.sql):
            loc: Loc = ("traits", "sql", i)
            if sql.level == "account":
                if sql.identifier != "group_id":
                    self.add((*loc, "identifier"), "an account-level SQL trait is keyed by 'group_id'")
            elif sql.identifier not in identifiers:
                self.add(
                    (*loc, "identifier"),
                    f"unknown identifier '{sql.identifier}'; declared identifiers: {', '.join(sorted(identifiers))}",
                )
            if sql.is_file and not self.ws.resolve_path(sql.query).is_file():
                self.add(
                    (*loc, "query"), f"SQL file '{sql.query}' does not exist (relative to the workspace file)"
                )
        self.check_predictive()

    def check_predictive(self) -> None:
        # Numbers (counter, aggregation) and categories (custom traits, most frequent / first / last value).
        usable = {
            c.key for c in self.ws.traits.computed if c.level == "user" and not isinstance(c, UniqueListTrait)
        } | set(self.ws.traits.custom)
        for i, trait in enumerate(self.ws.traits.predictive):
            loc: Loc = ("traits", "predictive", i)
            for j, key in enumerate(trait.features.traits):
                if key not in usable:
                    self.add(
                        (*loc, "features", "traits", j),
                        f"'{key}' is not a custom trait nor a user-level computed trait other than "
                        f"unique_list{_hint(key, usable)}",
                    )
            if trait.population is None:
                continue
            # Population is evaluated as of the training cutoff too: traits and audiences exist only as of now.
            for at, node in walk_conditions(trait.population, (*loc, "population")):
                if not isinstance(node, EventCondition | AllCondition | AnyCondition | NotCondition):
                    self.add(at, "a predictive population takes event conditions (with all, any, not) only")

    # ------------------------------------------------------------------ audiences

    def check_audiences(self) -> None:
        audiences = {a.key: a for a in self.ws.audiences}
        all_keys = set(audiences) | set(self.known.audiences)
        for i, audience in enumerate(self.ws.audiences):
            traits = self.account_traits() if audience.level == "account" else self.user_traits()
            for loc, node in walk_conditions(audience.where, ("audiences", i, "where")):
                if isinstance(node, TraitCondition) and node.trait not in traits:
                    kind = "account trait" if audience.level == "account" else "trait"
                    self.add((*loc, "trait"), f"unknown {kind} '{node.trait}'{_hint(node.trait, traits)}")
                elif isinstance(node, AudienceCondition):
                    if node.audience not in all_keys:
                        self.add((*loc, "audience"), f"unknown audience '{node.audience}'")
                    elif node.audience in audiences and audiences[node.audience].level != audience.level:
                        self.add(
                            (*loc, "audience"),
                            f"a {audience.level}-level audience cannot test membership of the "
                            f"{audiences[node.audience].level}-level audience '{node.audience}'",
                        )
        for cycle_start, cycle in _audience_cycles(audiences):
            self.add(
                ("audiences", cycle_start, "where"),
                "audiences refer to each other in a circle: " + " -> ".join(cycle),
            )

    # ------------------------------------------------------------------ destinations

    def check_destinations(self) -> None:
        for i, destination in enumerate(self.ws.destinations):
            check = CATALOGUE[destination.type].check_destination
            for where, message in check(destination, self.ws.resolve_path) if check else ():
                self.add(("destinations", i, *where), message)

    # ------------------------------------------------------------------ connections

    def check_connections(self) -> None:
        audiences = {a.key for a in self.ws.audiences} | set(self.known.audiences)
        sendable_traits = (
            {c.key for c in self.ws.traits.computed}
            | {k for s in self.ws.traits.sql for k in s.trait_keys}
            | {k for p in self.ws.traits.predictive for k in p.trait_keys}
            | set(self.known.traits)
        )
        for i, connection in enumerate(self.ws.connections):
            loc: Loc = ("connections", i)
            if connection.source_kind == "journey":
                self.add(
                    (*loc, "source"),
                    "a journey's send step is configured under journeys: (its step's destinations), "
                    "not as a connection",
                )
                continue
            if connection.source_kind == "audience" and connection.source_key not in audiences:
                self.add((*loc, "source"), f"unknown audience '{connection.source_key}'")
            if connection.source_kind == "trait" and connection.source_key not in sendable_traits:
                self.add(
                    (*loc, "source"),
                    f"unknown computed or SQL trait '{connection.source_key}'{_hint(connection.source_key, sendable_traits)}",
                )
            self.check_target(connection, loc)

    def check_target(self, connection: Connection, loc: Loc) -> None:
        """The destination rules of one connection or journey send target."""
        destinations = {d.id: d for d in self.ws.destinations}
        destination = destinations.get(connection.destination)
        if destination is None:
            if connection.destination not in self.known.destinations:
                self.add(
                    (*loc, "destination"),
                    f"unknown destination '{connection.destination}'{_hint(connection.destination, destinations)}",
                )
            self.check_mappings(connection, loc, None)
            return
        spec = CATALOGUE[destination.type]
        self.check_connection_settings(connection, loc, spec)
        self.check_delivery_kind(connection, loc, spec)
        self.check_mappings(connection, loc, spec)

    def check_connection_settings(self, connection: Connection, loc: Loc, spec: DestinationType) -> None:
        try:
            settings = spec.connection_settings.model_validate(connection.settings)
        except ValidationError as error:
            for detail in error.errors():
                self.add((*loc, "settings", *detail["loc"]), describe_error(detail))
            return
        # A misspelt consent trait would silently leave every member out: it must be a known trait.
        known = self.user_traits() | self.account_traits()
        for where, trait in consent_traits(settings):
            if trait not in known and trait.split(".", 1)[0] not in known:
                self.add((*loc, "settings", *where, "trait"), f"unknown trait '{trait}'{_hint(trait, known)}")

    def check_delivery_kind(self, connection: Connection, loc: Loc, spec: DestinationType) -> None:
        if connection.source_kind == "trait" and spec.kind == "list":
            self.add(
                (*loc, "source"),
                f"computed traits are sent only to event destinations; {spec.title} is a list destination",
            )
        if spec.kind == "event" and not (connection.send_identify or connection.send_track):
            self.add(loc, "send_identify and send_track are both false, so nothing would be sent")

    def check_mappings(self, connection: Connection, loc: Loc, spec: DestinationType | None) -> None:
        enrichment, id_sync = connection.trait_enrichment, connection.id_sync
        if connection.setup == "default" and (enrichment or id_sync):
            self.add(
                (*loc, "setup"),
                "trait_enrichment and id_sync need setup: customized (default setup sends the destination's "
                "default payload)",
            )
        if spec is not None and enrichment and not spec.trait_enrichment:
            self.add(
                (*loc, "trait_enrichment"),
                f"trait enrichment is not available on {spec.framework} destinations ({spec.title})",
            )

        known_traits = self.user_traits() | self.account_traits()
        for j, mapping in enumerate(enrichment):
            at: Loc = (*loc, "trait_enrichment", j)
            if mapping.trait == connection.source_key:
                self.add(
                    (*at, "trait"),
                    f"'{mapping.trait}' is this connection's own {connection.source_kind} key, which is already "
                    "sent; it cannot also be an enrichment trait",
                )
            elif mapping.trait not in known_traits:
                self.add(
                    (*at, "trait"), f"unknown trait '{mapping.trait}'{_hint(mapping.trait, known_traits)}"
                )

        identifiers = self.ws.identity.identifiers
        for j, sync in enumerate(id_sync):
            at = (*loc, "id_sync", j)
            if sync.identifier not in identifiers:
                self.add(
                    (*at, "identifier"),
                    f"unknown identifier '{sync.identifier}'; declared identifiers: {', '.join(identifiers)}",
                )
            if sync.identifier in MOBILE_IDENTIFIERS and not connection.send_mobile_ids:
                self.add(
                    (*at, "identifier"),
                    f"'{sync.identifier}' is a mobile advertising id; turn on send_mobile_ids to sync it",
                )
        for j in _duplicate_positions([s.identifier for s in id_sync]):
            self.add(
                (*loc, "id_sync", j, "identifier"), f"identifier '{id_sync[j].identifier}' is listed twice"
            )
        all_positions = [j for j, s in enumerate(id_sync) if s.strategy == IdStrategy.ALL]
        if len(all_positions) > MAX_ALL_STRATEGY:
            self.add(
                (*loc, "id_sync", all_positions[MAX_ALL_STRATEGY], "strategy"),
                f"at most three identifiers may use 'all' ({len(all_positions)} do)",
            )

        # Several identifiers may share a destination name (ios.idfa and android.id are both MADIDs);
        # an enrichment name must be unique and must not also carry an identifier.
        seen: dict[str, Loc] = {s.as_: ("id_sync", j) for j, s in enumerate(id_sync)}
        for j, mapping in enumerate(enrichment):
            if mapping.as_ in seen:
                self.add(
                    (*loc, "trait_enrichment", j, "as"),
                    f"'{mapping.as_}' is already mapped by {format_path((*loc, *seen[mapping.as_]))}",
                )
            else:
                seen[mapping.as_] = ("trait_enrichment", j)
        names: list[tuple[Loc, str]] = []
        names += [(("trait_enrichment", j), m.as_) for j, m in enumerate(enrichment)]
        names += [(("id_sync", j), s.as_) for j, s in enumerate(id_sync)]
        if spec is not None:
            self.check_platform_keys(connection, loc, spec, names)

    def check_platform_keys(
        self, connection: Connection, loc: Loc, spec: DestinationType, names: Sequence[tuple[Loc, str]]
    ) -> None:
        if spec.keys is not None:
            platform_owner: dict[str, str] = {}
            for where, name in names:
                is_enrichment = where[0] == "trait_enrichment"
                if name not in spec.keys:
                    self.add(
                        (*loc, *where, "as"),
                        f"'{name}' is not a key {spec.title} accepts; each mapping must map to one of: "
                        f"{', '.join(spec.keys)}",
                    )
                elif is_enrichment and spec.keys[name] in platform_owner:
                    self.add(
                        (*loc, *where, "as"),
                        f"'{name}' maps to {spec.keys[name]}, which '{platform_owner[spec.keys[name]]}' already fills",
                    )
                elif is_enrichment:
                    platform_owner[spec.keys[name]] = name
        if spec.check_connection is not None:
            destination = self.ws.destination(connection.destination)
            for where, message in spec.check_connection(connection, destination, names):
                self.add((*loc, *where), message)


ConditionNode = object


def walk_conditions(node: ConditionNode, loc: Loc = ()) -> Iterator[tuple[Loc, ConditionNode]]:
    """Every node of a condition tree with its location, depth first."""
    yield loc, node
    if isinstance(node, AllCondition):
        for i, child in enumerate(node.all):
            yield from walk_conditions(child, (*loc, "all", i))
    elif isinstance(node, AnyCondition):
        for i, child in enumerate(node.any):
            yield from walk_conditions(child, (*loc, "any", i))
    elif isinstance(node, NotCondition):
        yield from walk_conditions(node.not_, (*loc, "not"))


def referenced_audiences(audience: Audience) -> set[str]:
    """Keys of the audiences an audience's condition tree tests membership of."""
    return {n.audience for _, n in walk_conditions(audience.where, ()) if isinstance(n, AudienceCondition)}


def cycles(edges: Mapping[str, Sequence[str]]) -> Iterator[list[str]]:
    """Each loop of a directed graph once (keys, the first repeated at the end), in depth-first order; targets
    that are not keys of `edges` are ignored."""
    reported: set[frozenset[str]] = set()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in edges:
        if root in state:
            continue
        # Depth first without recursion: a chain of thousands of nodes must not overflow Python's stack.
        path, pending = [root], [iter(edges[root])]
        state[root] = 1
        while pending:
            nxt = next(pending[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                pending.pop()
            elif nxt not in edges:
                continue
            elif state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                if (members := frozenset(cycle)) not in reported:
                    reported.add(members)
                    yield cycle
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                pending.append(iter(edges[nxt]))


def _audience_cycles(audiences: dict[str, Audience]) -> list[tuple[int, list[str]]]:
    positions = {key: i for i, key in enumerate(audiences)}
    edges = {key: sorted(referenced_audiences(a) & set(audiences)) for key, a in audiences.items()}
    return [(positions[cycle[0]], cycle) for cycle in cycles(edges)]


def _duplicate_positions(values: list[str]) -> list[int]:
    seen: set[str] = set()
    duplicates = []
    for i, value in enumerate(values):
        if value in seen:
            duplicates.append(i)
        seen.add(value)
    return duplicates


def _hint(name: str, candidates: Set[str] | Mapping[str, object]) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(candidates), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_workspace(ws: Workspace, known: KnownKeys | None = None) -> list[tuple[Loc, str]]:
    """Every cross-reference problem of a structurally valid workspace, as (location, message) pairs."""
    checker = _Checker(ws, known or KnownKeys())
    checker.check_duplicates()
    checker.check_traits()
    checker.check_audiences()
    checker.check_destinations()
    checker.check_connections()
    from activation_pipeline.config.journey_rules import check_journeys

    check_journeys(checker)
    return checker.problems
