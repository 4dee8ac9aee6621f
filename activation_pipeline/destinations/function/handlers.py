"""Finding a destination function's handlers: `package.module:function`, or a `.py` file of on_<type> handlers.

Imported by the worker process the function runs in, so it stays light: the standard library and the error
classes only.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from activation_pipeline.errors import TerminalDestinationError, TransientDestinationError

Handler = Callable[[dict[str, Any], dict[str, str]], Any]


class RetryableError(TransientDestinationError):
    """Raised by a function to ask for the record to be retried later (a transient failure)."""


class EventNotSupportedError(TerminalDestinationError):
    """The function has no handler for this message type."""


def _load_file(path: Path) -> ModuleType:
    name = f"activation_function_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load destination function file {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_handlers(handler: str, base_dir: Path) -> Callable[[str], Handler | None]:
    """A lookup from message type to handler, for `module:function` or a file of on_<type> handlers."""
    if handler.endswith(".py"):
        path = Path(handler)
        module = _load_file(path if path.is_absolute() else base_dir / path)

        def from_file(message_type: str) -> Handler | None:
            """The file's on_<type> handler, if it defines one."""
            found = getattr(module, f"on_{message_type}", None)
            return found if callable(found) else None

        return from_file
    module_name, function_name = handler.split(":", 1)
    if str(base_dir) not in sys.path:
        sys.path.insert(0, str(base_dir))
    function = getattr(importlib.import_module(module_name), function_name)
    if not callable(function):
        raise TypeError(f"{handler} is not callable")
    return lambda _message_type: function
