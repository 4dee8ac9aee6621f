"""The service around the answers: it refuses to start without its token, limits each token's rate, logs no
personal data, and readers see one whole evaluation or the next while evaluations publish."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from activation_pipeline.cli import main
from activation_pipeline.serving.access import NoAccessTokenError
from activation_pipeline.serving.server import server_for
from activation_pipeline_tests.test_compute.conftest import at
from activation_pipeline_tests.test_serving.conftest import (
    AS_OF,
    SPACE,
    TOKEN,
    TOKEN_ENV,
    evaluated,
    serving,
)

ENGINES = ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]


def test_no_token_no_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    workspace, pipeline, _, _ = evaluated(tmp_path, "duckdb")
    pipeline.close()
    with pytest.raises(NoAccessTokenError, match=TOKEN_ENV):
        server_for(workspace, tmp_path / "limits")
    assert main(["serve", str(tmp_path / "workspace.yml")]) == 1
    assert (
        f"not started: the Profile API needs its access token: set the environment variable(s) {TOKEN_ENV}"
        in (capsys.readouterr().err)
    )
    monkeypatch.setenv(TOKEN_ENV, "")
    with pytest.raises(NoAccessTokenError):
        server_for(workspace, tmp_path / "limits")


TWO_TOKENS = """
serving:
  tokens: [{name: app, token: {env: PROFILE_API_TEST_TOKEN}}, {name: other, token: {env: PROFILE_API_OTHER}}]
  requests_per_second: 5
"""


@pytest.fixture
def two_tokens(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """Two access tokens in their environment variables."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv("PROFILE_API_OTHER", "second-token")
    yield TOKEN, "second-token"


def test_each_token_has_its_own_rate_limit(tmp_path: Path, two_tokens: tuple[str, str]) -> None:
    first, second = two_tokens
    with serving(tmp_path, "duckdb", TWO_TOKENS) as served:
        url = f"{served.base}/v1/spaces/{SPACE}/collections/users/profiles/user_id:u-jane/traits"
        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: requests.get(url, auth=(first, ""), timeout=10), range(20)))
        refilled = math.ceil((time.monotonic() - started) * 5)
        statuses = [a.status_code for a in answers]
        # A burst of one second's worth (5), then 5 a second.
        assert 5 <= statuses.count(200) <= 5 + refilled, statuses
        assert statuses.count(200) + statuses.count(429) == 20, statuses
        refused = next(a for a in answers if a.status_code == 429)
        assert refused.json()["error"]["code"] == "rate_limit_error"
        assert int(refused.headers["Retry-After"]) >= 1
        assert requests.get(url, auth=(second, ""), timeout=10).status_code == 200
        threading.Event().wait(1.1)
        assert requests.get(url, auth=(first, ""), timeout=10).status_code == 200


def test_logs_hold_no_personal_data(
    tmp_path: Path, two_tokens: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = ["jane.doe", "Jane", "2015550123", "201) 555", "u-jane", "anon-old", TOKEN, "Acme", "acct-1"]
    with serving(tmp_path, "duckdb") as served:
        for identifier in (
            "email:Jane.Doe@example.com",
            "phone:(201) 555-0123",
            "user_id:u-jane",
            "anonymous_id:anon-old",
        ):
            for resource in ("traits", "external_ids", "events", "links", "metadata"):
                assert served.user(identifier, resource, include="first_name").status_code == 200
        assert served.user("email:nobody@example.com", "traits").status_code == 404
        assert served.get("collections/users/profiles/email:jane.doe@example.com").status_code == 404
        assert served.get("collections/accounts/profiles/group_id:acct-1/links").status_code == 200
        assert served.user("user_id:u-jane", "traits", token="wrong-" + TOKEN).status_code == 401
    # The server's own loggers (the test's HTTP client logs the paths it requests, as clients do).
    lines = [r.getMessage() for r in caplog.records if r.name.startswith(("activation_pipeline", "uvicorn"))]
    assert any("users/traits 200" in line and "token=tests" in line for line in lines)
    assert any("users/traits 404" in line for line in lines)
    for line in lines:
        for secret in secrets:
            assert secret not in line, line


@pytest.mark.parametrize("engine", ENGINES)
def test_readers_see_one_whole_evaluation_while_the_next_publishes(
    tmp_path: Path, engine: str, two_tokens: tuple[str, str]
) -> None:
    """Jane keeps ordering and each evaluation publishes, while three clients keep reading her traits. Every
    answer is a whole evaluation's: her order count, revenue and audience agree with one of them; no answer
    fails or misses her while a version is written; and no reader ever goes back to an older evaluation."""
    with serving(tmp_path, engine) as served:
        seen: list[list[tuple[int, float, bool]]] = [[], [], []]
        failures: list[str] = []
        done = threading.Event()

        def read(mine: list[tuple[int, float, bool]]) -> None:
            session = requests.Session()
            session.auth = (TOKEN, "")
            url = f"{served.base}/v1/spaces/{SPACE}/collections/users/profiles/user_id:u-jane/traits"
            while not done.is_set():
                answer = session.get(url, params={"limit": 50}, timeout=10)
                if answer.status_code != 200:
                    failures.append(f"{answer.status_code} {answer.text}")
                    continue
                traits = answer.json()["traits"]
                mine.append((traits["orders_count"], traits["revenue_total"], traits["big_spender"]))

        readers = [threading.Thread(target=read, args=(mine,)) for mine in seen]
        for reader in readers:
            reader.start()
        for round_ in range(1, 4):
            day = f"2026-10-{20 + round_}T10:00"
            served.messages.track(day, "Order Completed", user="u-jane", revenue=100)
            served.messages.write()
            served.pipeline.land()
            served.pipeline.evaluate(at(AS_OF) + timedelta(days=round_, hours=12))
            threading.Event().wait(1.5 if engine == "postgres" else 0.3)
        done.set()
        for reader in readers:
            reader.join()
    assert not failures, failures[:3]
    every = [answer for mine in seen for answer in mine]
    assert set(every) <= {(3 + k, 135.0 + 100 * k, True) for k in range(4)}
    assert {answer[0] for answer in every} == {3, 4, 5, 6}, "each evaluation was served"
    for mine in seen:
        assert [answer[0] for answer in mine] == sorted(answer[0] for answer in mine)
