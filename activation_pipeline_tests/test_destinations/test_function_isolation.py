"""Destination functions run in a process of their own: no other secret, a timeout, a memory cap, an answer cap."""

import time
from pathlib import Path

import pytest

from activation_pipeline.destinations.base import Outcome
from activation_pipeline.destinations.function.settings import FunctionDestination
from activation_pipeline.destinations.registry import build_client

from .test_clients import CONTEXT, records


def _function(tmp_path: Path, body: str, **limits: object) -> FunctionDestination:
    handler = tmp_path / "fn.py"
    handler.write_text(body)
    settings = {"handler": str(handler), "settings": {"api_key": {"env": "FN_OWN_KEY"}}, **limits}
    return FunctionDestination.model_validate({"id": "fn", "type": "function", "settings": settings})


def test_a_function_sees_its_own_settings_and_no_other_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FN_OWN_KEY", "own-secret")
    monkeypatch.setenv("META_ACCESS_TOKEN", "someone-elses-secret")
    body = (
        "import os\n"
        "def on_identify(event, settings):\n"
        "    print('a print does not break anything')\n"
        "    return {'own': settings['api_key'], 'meta': os.environ.get('META_ACCESS_TOKEN'),\n"
        "            'env_names': sorted(k for k in os.environ if 'TOKEN' in k or 'KEY' in k)}\n"
    )
    client = build_client(_function(tmp_path, body))
    try:
        [result] = client.send(records(1, send_track=False), CONTEXT).results
    finally:
        client.close()
    assert result.outcome is Outcome.ACKNOWLEDGED
    assert result.response == {"returned": {"own": "own-secret", "meta": None, "env_names": []}}


def test_a_hung_function_times_out_and_the_batch_moves_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FN_OWN_KEY", "k")
    body = (
        "import time\n"
        "def on_identify(event, settings):\n"
        "    if event['userId'] == 'u0':\n"
        "        time.sleep(60)\n"
        "    return 'ok'\n"
    )
    client = build_client(_function(tmp_path, body, timeout_seconds=1))
    started = time.monotonic()
    try:
        results = client.send(records(3, send_track=False), CONTEXT).results
    finally:
        client.close()
    assert time.monotonic() - started < 15
    assert [r.outcome for r in results] == [Outcome.RETRY, Outcome.ACKNOWLEDGED, Outcome.ACKNOWLEDGED]
    assert results[0].reason == "timed out after 1 s"


def test_repeated_timeouts_defer_the_rest_of_the_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FN_OWN_KEY", "k")
    body = "import time\ndef on_identify(event, settings):\n    time.sleep(60)\n"
    client = build_client(_function(tmp_path, body, timeout_seconds=0.5))
    try:
        results = client.send(records(6, send_track=False), CONTEXT).results
    finally:
        client.close()
    assert [r.outcome for r in results] == [Outcome.RETRY] * 6
    assert [r.reason for r in results[3:]] == ["deferred: the function timed out 3 times in a row"] * 3


def test_memory_and_answer_size_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FN_OWN_KEY", "k")
    body = (
        "def on_identify(event, settings):\n"
        "    if event['userId'] == 'u0':\n"
        "        return bytearray(2 * 1024 ** 3)\n"
        "    if event['userId'] == 'u1':\n"
        "        return 'x' * 100_000\n"
        "    return 'small'\n"
    )
    client = build_client(_function(tmp_path, body, memory_mb=256, max_answer_bytes=10_000))
    try:
        results = client.send(records(3, send_track=False), CONTEXT).results
    finally:
        client.close()
    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.FAILED, Outcome.ACKNOWLEDGED]
    assert results[0].reason.startswith("MemoryError")
    assert results[1].reason == "the function returned more than 10,000 bytes"


def test_a_function_that_cannot_load_fails_its_records_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FN_OWN_KEY", "k")
    client = build_client(_function(tmp_path, "raise RuntimeError('broken on import')\n"))
    try:
        [result] = client.send(records(1, send_track=False), CONTEXT).results
    finally:
        client.close()
    assert result.outcome is Outcome.FAILED
    assert result.reason == "cannot load the function: RuntimeError: broken on import"
