"""The busy-port rule, shared by the lab's server (uvicorn) and the sandbox's (werkzeug).

Try the port asked for, then the next `fallback` ones; when all are taken say so in plain words, and
when another one was used say which, so a notebook never silently serves somewhere unexpected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from labkit.errors import PortInUseError

log = logging.getLogger("labkit.server")
T = TypeVar("T")


def bind_first(host: str, requested: int, fallback: int, bind: Callable[[int], T],
               errors: tuple[type[BaseException], ...] = (OSError,), what: str = "the lab's server") -> T:
    """`bind(port)` for the first free port of `requested` and the `fallback` after it (0: any port)."""
    candidates = [requested]
    if requested and fallback:
        candidates += list(range(requested + 1, requested + 1 + fallback))
    last: BaseException | None = None
    for port in candidates:
        try:
            return bind(port)
        except errors as exc:
            last = exc
    tried = f"{candidates[0]}" + (f"-{candidates[-1]}" if len(candidates) > 1 else "")
    raise PortInUseError(
        f"Port {tried} on {host} is in use by another program, so {what} cannot start. Stop the other "
        "program (`lsof -i :PORT` shows it), or pass port=0 (or set LABKIT_PORT=0) to use any free port."
    ) from (last if isinstance(last, OSError) else None)


def moved_note(requested: int, actual: int, what: str = "the lab's server") -> str | None:
    """The line that says a busy port made the server move (logged), or None when it did not."""
    if not requested or actual == requested:
        return None
    note = f"port {requested} was busy, so {what} uses port {actual}"
    log.warning(note)
    return note
