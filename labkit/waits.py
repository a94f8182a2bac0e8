"""What the lab is waiting for right now, so a panel or a notebook can say so while it blocks.

`Call.wait_for` and `Lab.wait_for_call` run inside `waiting(...)`; watchers (`watch(fn)`) are told when
a wait starts and ends, and `current()` lists the waits still running with how long they have waited.
In a notebook, a wait that lasts more than a moment also shows one line that updates in place (an
IPython display), because a cell that blocks for a minute with no sign of life looks hung.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

__all__ = ["Wait", "current", "waiting", "watch"]

TICK_SECONDS = 1.0  # how often the notebook line is rewritten


@dataclass
class Wait:
    """One running wait: what for (in words) and its time limit in seconds."""

    what: str
    timeout: float
    started: float = field(default_factory=time.monotonic)
    outcome: str | None = None  # None while running, then "got ..." or the error's first words

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def line(self) -> str:
        """The status line: 'waiting for X: 3 s of 30 s' (or how it ended)."""
        if self.outcome is not None:
            return f"{self.outcome} after {self.elapsed:.1f} s"
        return f"\u23f3 waiting for {self.what}: {self.elapsed:.0f} s of {self.timeout:g} s"


_lock = threading.Lock()
_running: list[Wait] = []
_watchers: list[Callable[[Wait], None]] = []


def watch(fn: Callable[[Wait], None]) -> Callable[[], None]:
    """Call `fn(wait)` when a wait starts and when it ends; returns the function that stops it."""
    with _lock:
        _watchers.append(fn)

    def unwatch() -> None:
        with _lock:
            if fn in _watchers:
                _watchers.remove(fn)

    return unwatch


def current() -> list[Wait]:
    """The waits running now, oldest first."""
    with _lock:
        return list(_running)


def _tell(wait: Wait) -> None:
    with _lock:
        watchers = list(_watchers)
    for fn in watchers:
        try:
            fn(wait)
        except Exception:  # noqa: BLE001 - a broken watcher must not break the wait itself
            pass


@contextlib.contextmanager
def waiting(what: str, timeout: float, *, notebook: bool = True) -> Iterator[Wait]:
    """Mark a blocking wait for `what` (at most `timeout` s) while the body runs."""
    wait = Wait(what, float(timeout))
    with _lock:
        _running.append(wait)
    _tell(wait)
    line = _NotebookLine(wait) if notebook else None
    try:
        yield wait
        wait.outcome = f"\u2713 got {what}"
    except BaseException as exc:
        wait.outcome = f"\u2717 no {what}" if "within" in str(exc) or "ended" in str(exc) else "\u2717 stopped"
        raise
    finally:
        with _lock:
            if wait in _running:
                _running.remove(wait)
        if line is not None:
            line.close()
        _tell(wait)


class _NotebookLine:
    """One output line in the running notebook cell, rewritten every second until the wait ends.

    Shown only after the first tick, so quick waits (most of them) leave no output at all. The thread
    runs in a copy of the cell's context, where ipykernel keeps the cell's parent header, so the line
    lands in the waiting cell.
    """

    def __init__(self, wait: Wait):
        import contextvars

        self.wait = wait
        self.handle = None
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        if _in_kernel_main_thread():
            ctx = contextvars.copy_context()
            self.thread = threading.Thread(target=ctx.run, args=(self._run,), name="labkit-wait-line",
                                           daemon=True)
            self.thread.start()

    def _run(self) -> None:
        from IPython.display import display

        while not self.stop.wait(TICK_SECONDS):
            try:
                if self.handle is None:
                    self.handle = display({"text/plain": self.wait.line()}, raw=True, display_id=True)
                else:
                    self.handle.update({"text/plain": self.wait.line()}, raw=True)
            except Exception:  # noqa: BLE001 - the line is a courtesy; the wait goes on
                return

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(2.0)
        handle = self.handle
        if handle is not None:
            try:
                handle.update({"text/plain": self.wait.line()}, raw=True)
            except Exception:  # noqa: BLE001
                pass


def _in_kernel_main_thread() -> bool:
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None
