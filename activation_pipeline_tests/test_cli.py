"""The command line: exit codes, the problem listing, JSON output and the headless run."""

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from activation_pipeline.cli import main
from activation_pipeline.orchestration.workspace import SAMPLE_WORKSPACE
from activation_pipeline.synthetic.generator import GeneratorSpec, write_events
from activation_pipeline_tests.test_config.conftest import base


def _write(tmp_path: Path, config: dict[str, object]) -> Path:
    path = tmp_path / "workspace.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_validate_valid(capsys: pytest.CaptureFixture[str]) -> None:
    """A valid file exits 0 and says so."""
    assert main(["validate", str(SAMPLE_WORKSPACE)]) == 0
    assert "valid" in capsys.readouterr().out


def test_validate_lists_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An invalid file exits 1 and lists each problem with its line and path."""
    config = base()
    config["audiences"][0]["where"]["op"] = "=>"
    config["connections"][0]["destination"] = "nowhere"
    assert main(["validate", str(_write(tmp_path, config))]) == 1
    err = capsys.readouterr().err
    assert "2 problem(s)" in err
    assert "audiences[0].where.op: unknown operator '=>'" in err
    assert "connections[0].destination: unknown destination 'nowhere'" in err
    assert err.count("line ") == 2


def test_validate_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints a machine-readable result."""
    config = base()
    config["traits"]["computed"][0]["window"] = "soon"
    assert main(["validate", "--json", str(_write(tmp_path, config))]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["valid"] is False
    assert result["problems"][0]["path"] == "traits.computed[0].window"
    assert isinstance(result["problems"][0]["line"], int)


def test_validate_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    """A missing file is a problem, not a traceback."""
    assert main(["validate", "/nonexistent/workspace.yml"]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_run_bad_timestamp() -> None:
    """--as-of must be ISO-8601."""
    with pytest.raises(SystemExit):
        main(["run", str(SAMPLE_WORKSPACE), "--as-of", "yesterday"])


def test_console_script_runs_headless(sample_copy: Path) -> None:
    """The command runs a copy of the sample end to end through Dagster into the sandbox and prints a summary."""
    spec = GeneratorSpec(profiles=150, events=6000, seed=5, end=datetime(2026, 11, 1, tzinfo=UTC), days=40)
    write_events(spec, sample_copy.parent / "events")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "activation_pipeline.cli",
            "run",
            str(sample_copy),
            "--as-of",
            "2026-11-01T00:00:00Z",
            "--sandbox",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "workspace acme-shop as of 2026-11-01T00:00:00+00:00: succeeded" in done.stdout
    out = done.stdout
    progress = ["  landing new events ...", "  events: ", "  evaluating profiles", "  evaluated: ",
                "  syncing meta_ads (1 connection) ...", "  sync meta_ads: "]  # fmt: skip
    positions = [out.index(line) for line in progress]
    assert positions == sorted(positions) and positions[-1] < out.index(": succeeded")
    for table in ("\nlanding\n", "\nidentity\n", "\ntraits\n", "\naudiences\n", "\nsyncs\n", "\nlegend:\n"):
        assert table in out, table
    syncs = out[out.index("\nsyncs\n") : out.index("\nlegend:\n")].splitlines()
    assert "sandbox requests" in syncs[2]
    meta = next(line.split() for line in syncs if line.strip().startswith("meta_ads "))
    rows_sent, platform = meta[9], meta[11]
    assert rows_sent == platform  # Meta counts the rows it received: they match the rows sent
    loyalty = next(line for line in syncs if line.strip().startswith("loyalty_function "))
    assert " local " in loyalty  # a function runs locally: no fake server, and the table says so
    assert "Dagster runs, recorded in a throwaway in-memory instance" in out


def test_generate_is_deterministic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same arguments give byte-identical files; the workspace's referenced events are present."""
    args = [
        "generate",
        str(SAMPLE_WORKSPACE),
        "--profiles",
        "200",
        "--events",
        "8000",
        "--seed",
        "3",
        "--days",
        "20",
        "--end",
        "2026-11-01",
    ]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    first = sorted((tmp_path / "a").glob("*.jsonl"))
    second = sorted((tmp_path / "b").glob("*.jsonl"))
    assert [f.name for f in first] == [f.name for f in second] and first
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second, strict=True))
    text = "".join(f.read_text() for f in first)
    for event in ("Order Completed", "Product Viewed", "Email Opened", "Signed Up", "Product Added"):
        assert f'"event":"{event}"' in text
    assert "wrote " in capsys.readouterr().out


def test_history_after_a_run(sample_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A run records the connections' settings; `history` shows them; an unknown connection exits 1."""
    assert main(["run", str(sample_copy), "--as-of", "2026-11-01", "--no-sync"]) == 0
    capsys.readouterr()
    assert main(["history", "audience.high_value_recent.meta_ads", "--workspace", str(sample_copy)]) == 0
    out = capsys.readouterr().out
    assert 'id_sync[0].strategy: (none) -> "last_added"' in out
    assert main(["history", "audience.nope.meta_ads", "--workspace", str(sample_copy)]) == 1


def test_generated_events_end_now_by_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --end the sample's events end at the hour of generation, so the UI's "now" finds them."""
    before = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    assert (
        main(["generate", "--out", str(tmp_path), "--profiles", "50", "--events", "500", "--days", "3"]) == 0
    )
    after = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    out = capsys.readouterr().out
    assert f"ending {before.isoformat()}" in out or f"ending {after.isoformat()}" in out
    assert {f.stem for f in tmp_path.glob("*.jsonl")} <= {
        (before - timedelta(days=d)).date().isoformat() for d in range(-1, 5)
    }
