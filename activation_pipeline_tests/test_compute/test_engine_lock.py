"""Two runs on one DuckDB file: the second waits while the first holds it, then gives up with a clear error."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from activation_pipeline.compute.engine import ComputeBusyError, ComputeEngine

HOLD = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(float(sys.argv[2]))"


def _hold(path: Path, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_the_second_run_waits_for_the_file(tmp_path: Path) -> None:
    path = tmp_path / "compute.duckdb"
    holder = _hold(path, 2)
    engine = ComputeEngine(url=f"duckdb:///{path}", schema="ws", lock_wait_seconds=30)
    started = time.monotonic()
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
        holder.wait()
    assert time.monotonic() - started >= 1


def test_a_run_that_waited_long_enough_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "compute.duckdb"
    holder = _hold(path, 10)
    engine = ComputeEngine(url=f"duckdb:///{path}", schema="ws", lock_wait_seconds=1)
    try:
        with (
            pytest.raises(
                ComputeBusyError, match=rf"in use by another run \(process {holder.pid}\); waited 1 s"
            ),
            engine.begin(),
        ):
            pass
    finally:
        engine.dispose()
        holder.kill()
        holder.wait()
