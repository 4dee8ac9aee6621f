"""Shared test material: profiles, connections, destinations, a deterministic workload, state locations."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from activation_pipeline.activation.model import (
    Change,
    ChangeKind,
    IdentifierValue,
    PlannedChange,
    ProfileView,
)
from activation_pipeline.activation.payloads import plan_changes
from activation_pipeline.config.models import Connection
from activation_pipeline.destinations.braze.settings import BrazeDestination
from activation_pipeline.destinations.function.settings import FunctionDestination
from activation_pipeline.destinations.iterable.settings import IterableDestination
from activation_pipeline.destinations.webhook.settings import WebhookDestination
from activation_pipeline.state.store import StateStore, open_state
from activation_pipeline_tests.conftest import PG_ADMIN_URL

T0 = datetime(2024, 5, 6, 9, 30, 22, 829000, tzinfo=UTC)
AS_OF = datetime(2024, 6, 1, tzinfo=UTC)


def ident(kind: str, value: str, days: int = 0) -> IdentifierValue:
    """An identifier first seen `days` after T0."""
    return IdentifierValue(kind, value, T0 + timedelta(days=days))


def profile(
    profile_id: str = "p1",
    *,
    user_id: str | None = "u1",
    emails: tuple[str, ...] = ("first@example.com",),
    phones: tuple[str, ...] = (),
    idfas: tuple[str, ...] = (),
    android: tuple[str, ...] = (),
    custom: dict[str, str] | None = None,
    traits: dict[str, Any] | None = None,
    account_id: str | None = None,
) -> ProfileView:
    """A profile whose identifiers of each kind were added one day apart, in the order given."""
    ids: list[IdentifierValue] = []
    if user_id:
        ids.append(ident("user_id", user_id))
    ids += [ident("email", e, i) for i, e in enumerate(emails)]
    ids += [ident("phone", p, i) for i, p in enumerate(phones)]
    ids += [ident("ios.idfa", v, i) for i, v in enumerate(idfas)]
    ids += [ident("android.id", v, i) for i, v in enumerate(android)]
    ids += [ident(k, v) for k, v in (custom or {}).items()]
    return ProfileView(profile_id, tuple(ids), traits or {}, account_id)


def connection(source: str = "audience:vip", destination: str = "hook", **settings: Any) -> Connection:
    """A connection model validated like the workspace file's."""
    return Connection.model_validate({"source": source, "destination": destination, **settings})


def webhook_destination(
    url: str, *, secret_env: str | None = None, batch: bool = False, **extra: Any
) -> WebhookDestination:
    """A webhook destination pointing at a sandbox."""
    settings: dict[str, Any] = {"url": url, "batch": batch, **extra}
    if secret_env:
        settings["shared_secret"] = {"env": secret_env}
    return WebhookDestination.model_validate({"id": "hook", "type": "webhook", "settings": settings})


def braze_destination(url: str, env: str = "BRAZE_TEST_KEY") -> BrazeDestination:
    """A Braze destination pointing at a sandbox."""
    return BrazeDestination.model_validate(
        {"id": "braze", "type": "braze", "settings": {"base_url": url, "api_key": {"env": env}}}
    )


def iterable_destination(
    url: str, *, bulk: bool = True, env: str = "ITERABLE_TEST_KEY"
) -> IterableDestination:
    """An Iterable destination pointing at a sandbox."""
    return IterableDestination.model_validate(
        {
            "id": "iterable",
            "type": "iterable",
            "settings": {"base_url": url, "api_key": {"env": env}, "bulk": bulk},
        }
    )


def function_destination(handler: str, **settings: Any) -> FunctionDestination:
    """A function destination."""
    return FunctionDestination.model_validate(
        {"id": "fn", "type": "function", "settings": {"handler": handler, "settings": settings}}
    )


def workload(count: int, *, destination: str = "hook", as_of: datetime = AS_OF) -> list[PlannedChange]:
    """`count` audience entries (identify + track each) for a webhook connection, deterministic."""
    conn = connection(destination=destination, send_track=True)
    changes = [
        Change(
            ChangeKind.ENTERED,
            profile(f"p{i:05d}", user_id=f"u{i:05d}", emails=(f"user{i}@example.com",)),
            as_of,
        )
        for i in range(count)
    ]
    return plan_changes(changes, conn, kind="event", space="test")


def pg_url(database: str) -> str:
    """The URL of a database on the local test server."""
    return sa.make_url(PG_ADMIN_URL).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def state_location(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A fresh state store location: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "state.db")
    return pg_url(request.getfixturevalue("pg_database"))


@pytest.fixture
def store(state_location: str) -> Iterator[StateStore]:
    """An open state store on each backend."""
    opened = open_state(state_location)
    yield opened
    opened.dispose()
