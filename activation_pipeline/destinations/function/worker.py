"""The process a destination function runs in: only its own settings, a memory limit, nothing else's secrets.

Started by `FunctionClient` with an environment holding no secrets. It reads one JSON line of setup (handler,
base directory, settings, memory limit), then one request per line (`{"type", "event"}`), and answers each
with one line on the stdout it was started with: `{"status": "ok" | "retry" | "failed" | "unsupported",
"returned" | "reason"}`. Whatever the function prints goes to stderr, so it cannot break the protocol.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path
from typing import Any, TextIO

from activation_pipeline.destinations.function.handlers import load_handlers
from activation_pipeline.errors import TransientDestinationError


def _answer(out: TextIO, **reply: Any) -> None:
    out.write(json.dumps(reply, default=repr) + "\n")
    out.flush()


def _limit_memory(megabytes: int) -> None:
    limit = megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def main() -> None:
    """Serve requests until stdin closes."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout = sys.stderr  # the function's print() must not reach the protocol
    setup = json.loads(sys.stdin.readline())
    _limit_memory(int(setup["memory_mb"]))
    settings: dict[str, str] = setup["settings"]
    try:
        handlers = load_handlers(setup["handler"], Path(setup["base_dir"]))
    except Exception as error:
        _answer(out, status="broken", reason=f"cannot load the function: {type(error).__name__}: {error}")
        return
    _answer(out, status="ready")
    for line in sys.stdin:
        request = json.loads(line)
        handler = handlers(request["type"])
        if handler is None:
            _answer(out, status="unsupported", reason=f"EventNotSupported: no on_{request['type']} handler")
            continue
        try:
            returned = handler(request["event"], dict(settings))
        except TransientDestinationError as error:
            _answer(out, status="retry", reason=f"{type(error).__name__}: {error}")
        except Exception as error:
            _answer(out, status="failed", reason=f"{type(error).__name__}: {error}")
        else:
            _answer(out, status="ok", returned=returned)


if __name__ == "__main__":
    main()
