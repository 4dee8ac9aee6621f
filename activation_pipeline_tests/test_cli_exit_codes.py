"""`run` says when a sync left records undelivered: a documented exit code and the sync's failing check."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest

from activation_pipeline.cli import EXIT_UNDELIVERED, main
from activation_pipeline.orchestration.sync_metadata import UNDELIVERED_LIMIT, delivery_check

WORKSPACE = """
workspace: refusals
sources: {{events: {{path: events/}}}}
identity: {{identifiers: {{user_id: {{limit: 1}}, anonymous_id: {{}}}}}}
audiences:
  - {{key: buyers, where: {{event: Order Completed, within: 365d}}}}
destinations:
  - {{id: hook, type: webhook, settings: {{url: "{url}"}}}}
connections:
  - {{source: "audience:buyers", destination: hook}}
"""


class _Refuse(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"error": "invalid payload"}'
        self.send_response(400)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture
def refusing_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_a_run_whose_sync_delivered_nothing_exits_3(
    tmp_path: Path, refusing_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    (tmp_path / "events").mkdir()
    lines = [
        {"type": "track", "event": "Order Completed", "userId": f"u{i}", "messageId": f"m{i}",
         "timestamp": "2026-10-20T10:00:00Z"}
        for i in range(4)
    ]  # fmt: skip
    (tmp_path / "events" / "part-0000.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    path = tmp_path / "workspace.yml"
    path.write_text(WORKSPACE.format(url=refusing_url))
    assert main(["run", str(path), "--as-of", "2026-11-01T00:00:00Z"]) == EXIT_UNDELIVERED == 3
    out = capsys.readouterr().out
    assert "succeeded" in out
    assert "undelivered: sync/hook: 100% of its records failed or wait for the next run (limit 10%" in out


def test_the_delivery_check_fails_above_the_limit() -> None:
    key = dg.AssetKey(["ws", "sync", "hook"])
    assert delivery_check(key, {"sent": 90, "failed": 5, "deferred_to_next_run": 5}).passed
    failing = delivery_check(
        key, {"sent": 8, "failed": 1, "deferred_to_next_run": 1, "stopped_early": "deadline"}
    )
    assert not failing.passed and failing.metadata["undelivered_share"].value == 0.2 > UNDELIVERED_LIMIT
