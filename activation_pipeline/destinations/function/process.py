"""A destination function's worker process, seen from the client: start, call with a deadline, stop.

The worker gets an environment without the parent's variables (so no other destination's secret), its own
settings on stdin (never on the command line), and a memory limit. A call that does not answer within its
timeout kills the worker; the next call starts a fresh one. An answer longer than the cap is refused.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

_KEPT_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
"""The only variables a function sees: none of them holds a secret."""


class FunctionProcessError(Exception):
    """The worker did not answer: it timed out, ended, or answered too much."""

    def __init__(self, reason: str, *, transient: bool) -> None:
        super().__init__(reason)
        self.transient = transient


def _environment() -> dict[str, str]:
    env = {name: os.environ[name] for name in _KEPT_ENVIRONMENT if name in os.environ}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # finds this package and the user's modules
    env["PYTHONUNBUFFERED"] = "1"
    return env


class FunctionProcess:
    """One worker process running a function, restarted after a timeout or a crash."""

    def __init__(
        self, handler: str, base_dir: Path, settings: dict[str, str], *, timeout: float, memory_mb: int,
        max_answer_bytes: int,
    ) -> None:  # fmt: skip
        """Prepare (the process starts on the first call)."""
        self.setup = {
            "handler": handler,
            "base_dir": str(base_dir),
            "settings": settings,
            "memory_mb": memory_mb,
        }
        self.timeout = timeout
        self.max_answer_bytes = max_answer_bytes
        self.process: subprocess.Popen[bytes] | None = None
        self.buffer = b""

    def _start(self) -> None:
        command = [sys.executable, "-m", "activation_pipeline.destinations.function.worker"]
        self.process = subprocess.Popen(  # noqa: S603 - our own module, run with this interpreter
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_environment(), close_fds=True
        )
        self.buffer = b""
        self._write(self.setup)
        answer = self._read(self.timeout + 10)  # imports and the function's module load
        if answer.get("status") != "ready":
            self.stop()
            raise FunctionProcessError(
                str(answer.get("reason", "the function did not start")), transient=False
            )

    def _write(self, message: dict[str, Any]) -> None:
        assert self.process is not None and self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(message).encode() + b"\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            self._ended()

    def _ended(self) -> None:
        code = self.process.wait() if self.process is not None else None
        self.process = None
        raise FunctionProcessError(f"the function's process ended (exit code {code})", transient=False)

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        stream: IO[bytes] = self.process.stdout
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(stream, selectors.EVENT_READ)
            while b"\n" not in self.buffer:
                if len(self.buffer) > self.max_answer_bytes:
                    self.stop()
                    raise FunctionProcessError(
                        f"the function returned more than {self.max_answer_bytes:,} bytes", transient=False
                    )
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    self.stop()
                    raise FunctionProcessError(f"timed out after {timeout:g} s", transient=True)
                chunk = os.read(stream.fileno(), 65536)
                if not chunk:
                    self._ended()
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        if len(line) > self.max_answer_bytes:
            self.stop()
            raise FunctionProcessError(
                f"the function returned more than {self.max_answer_bytes:,} bytes", transient=False
            )
        answer: dict[str, Any] = json.loads(line)
        return answer

    def call(self, message_type: str, event: dict[str, Any]) -> dict[str, Any]:
        """The worker's answer to one message (`status` and `returned` or `reason`)."""
        if self.process is None or self.process.poll() is not None:
            self._start()
        self._write({"type": message_type, "event": event})
        return self._read(self.timeout)

    def stop(self) -> None:
        """End the worker (killed if it does not stop at once)."""
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
