"""Run one destination type's fake server in its own process: `python -m activation_pipeline.sandbox.serve webhook`.

Prints one JSON line `{"url": ...}` when ready, then serves until stdin closes or the process is
terminated. Recorded requests are read through `GET /__sandbox/requests`.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from types import FrameType

from activation_pipeline.destinations.registry import CATALOGUE
from activation_pipeline.sandbox.base import SandboxServer


def fake_server_types() -> dict[str, type[SandboxServer]]:
    """Destination type name -> its fake server class, for every type that has one."""
    return {name: t.fake_server for name, t in CATALOGUE.items() if t.fake_server is not None}


def main(argv: list[str] | None = None) -> int:
    """Start the sandbox named on the command line and serve until told to stop."""
    parser = argparse.ArgumentParser(description=__doc__)
    servers = fake_server_types()
    parser.add_argument("kind", choices=sorted(servers))
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = servers[args.kind](port=args.port).start()
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)

    def _wait_for_stdin() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=_wait_for_stdin, daemon=True).start()
    print(json.dumps({"url": server.url}), flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
