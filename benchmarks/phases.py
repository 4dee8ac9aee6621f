"""Run a benchmark phase in a fresh process, so its peak memory (max RSS) is its own."""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
from collections.abc import Callable
from typing import Any


def peak_mb() -> float:
    """This process's peak resident memory in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(queue: Any, fn: Callable[..., dict[str, Any]], args: tuple[Any, ...]) -> None:
    start = time.perf_counter()
    try:
        result = fn(*args)
    except BaseException as error:
        queue.put({"error": f"{type(error).__name__}: {error}"})
        raise
    result["wall_s"] = time.perf_counter() - start
    result["peak_mb"] = peak_mb()
    queue.put(result)


def run_phase(
    name: str, fn: Callable[..., dict[str, Any]], *args: Any, took: str = "wall_s"
) -> dict[str, Any]:
    """Run one phase in a fresh process; print and return its result with wall time and peak RSS."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_child, args=(queue, fn, args))
    process.start()
    result: dict[str, Any] = queue.get()
    process.join()
    if "error" in result:
        raise SystemExit(f"phase {name} failed: {result['error']}")
    seconds = result.get(took, result["wall_s"])
    print(f"  {name:<12} {seconds:8.1f} s   peak {result['peak_mb']:7.0f} MB", flush=True)
    return result
