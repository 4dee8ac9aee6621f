"""Fixtures shared by the whole suite: the local PostgreSQL server and a private copy of the sample."""

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get("ACTIVATION_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_admin_engine() -> Iterator[sa.Engine]:
    """An engine on the local PostgreSQL test database; fails (never skips) when the server is down."""
    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sa.select(1))
    except sa.exc.OperationalError as error:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {error.orig}")
    yield engine
    engine.dispose()


@pytest.fixture
def pg_database(pg_admin_engine: sa.Engine) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards. Yields its name."""
    name = f"ap_test_{uuid.uuid4().hex[:12]}"
    with pg_admin_engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))  # name is generated above, not user input
    yield name
    with pg_admin_engine.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "sample"


@pytest.fixture
def sample_copy(tmp_path: Path) -> Path:
    """The sample workspace copied into a temporary directory (without generated events or state); its file path."""
    target = tmp_path / "sample"
    shutil.copytree(SAMPLE_DIR, target, ignore=shutil.ignore_patterns("events", "state", ".dagster_home"))
    return target / "workspace.yml"
