"""The sandbox's one audio clock: a single thread ticking every 20 ms of *call time* for all legs.

Why one clock: every leg's audio (phones, WebSockets, recorders, conferences) advances in lock step, so
mixing is deterministic and a 50-party conference costs one loop, not 50 timers. Why deadline-scheduled:
tick k is due at `base + k * period`, so sleep jitter never accumulates into drift. `speed` divides the
period: at speed=10 one second of call time takes 0.1 s of real time, and every timer the platform
schedules here (ringing, answer delays, input time-outs, length_timer) runs 10x faster too.

Timers run on the clock thread between ticks and must be quick (set a flag, notify a condition).
When no call is live and no timer is pending, the clock sleeps until woken, so an idle sandbox in a
notebook costs nothing.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable

log = logging.getLogger("labkit.sandbox.engine.clock")

FRAME_SECONDS = 0.02  # 20 ms: the L16 WebSocket frame and the mixer's step
MAX_LAG_SECONDS = 0.25  # real seconds behind schedule before the clock stops catching up and rebases


class TimerHandle:
    """A scheduled callback; `cancel()` is safe from any thread and idempotent."""

    __slots__ = ("tick", "fn", "cancelled")

    def __init__(self, tick: int, fn: Callable[[], None]) -> None:
        self.tick = tick
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Clock:
    """Ticks `on_tick(tick_number)` every 20 ms of call time (20/speed ms of real time)."""

    def __init__(
        self,
        on_tick: Callable[[int], None],
        *,
        speed: float = 1.0,
        is_idle: Callable[[], bool] | None = None,
        name: str = "sandbox-clock",
    ) -> None:
        if not speed or speed <= 0 or not math.isfinite(speed):
            raise ValueError(f"speed must be a positive number, not {speed!r}")
        self.speed = float(speed)
        self.period = FRAME_SECONDS / self.speed
        self._on_tick = on_tick
        self._is_idle = is_idle or (lambda: False)
        self._name = name
        self._ticks = 0
        self._timers: list[tuple[int, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rebases = 0  # times the clock fell too far behind and skipped ahead (overload)
        self.busy_seconds = 0.0  # real time spent inside ticks, for diagnostics

    # ------------------------------------------------------------------ time

    @property
    def ticks(self) -> int:
        """Ticks done so far (each is 20 ms of call time)."""
        return self._ticks

    def now(self) -> float:
        """Call time in seconds since the clock was made."""
        return self._ticks * FRAME_SECONDS

    @staticmethod
    def to_ticks(seconds: float) -> int:
        """Whole ticks for `seconds` of call time (at least 0, rounded to the nearest tick)."""
        return max(0, int(round(float(seconds) / FRAME_SECONDS)))

    # ------------------------------------------------------------------ timers

    def call_later(self, seconds: float, fn: Callable[[], None]) -> TimerHandle:
        """Run `fn` on the clock thread after `seconds` of call time."""
        return self.call_at(self._ticks + max(1, self.to_ticks(seconds)), fn)

    def call_at(self, tick: int, fn: Callable[[], None]) -> TimerHandle:
        """Run `fn` on the clock thread when tick number `tick` is reached."""
        handle = TimerHandle(int(tick), fn)
        with self._lock:
            heapq.heappush(self._timers, (handle.tick, next(self._seq), handle))
        self._wake.set()
        return handle

    def wake(self) -> None:
        """Leave idle sleep (a call started)."""
        self._wake.set()

    def _run_due_timers(self) -> None:
        while True:
            with self._lock:
                if not self._timers or self._timers[0][0] > self._ticks:
                    return
                _, _, handle = heapq.heappop(self._timers)
            if handle.cancelled:
                continue
            try:
                handle.fn()
            except Exception:
                log.exception("sandbox timer failed")

    def _has_timers(self) -> bool:
        with self._lock:
            while self._timers and self._timers[0][2].cancelled:
                heapq.heappop(self._timers)
            return bool(self._timers)

    # ------------------------------------------------------------------ thread

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Clock:
        """Start ticking (idempotent)."""
        if self.running:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop ticking and join the thread (idempotent)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None

    def step(self, count: int = 1) -> None:
        """Run `count` ticks immediately on the calling thread (for benchmarks and a stopped clock)."""
        for _ in range(count):
            self._ticks += 1
            self._run_due_timers()
            self._on_tick(self._ticks)

    def _run(self) -> None:
        base = time.perf_counter()
        k = 0
        while not self._stop.is_set():
            if not self._has_timers() and self._is_idle():
                self._wake.clear()
                if not self._has_timers() and self._is_idle():
                    self._wake.wait(0.5)
                base, k = time.perf_counter(), 0
                continue
            deadline = base + (k + 1) * self.period
            delay = deadline - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            elif -delay > MAX_LAG_SECONDS:
                # overloaded (or the process was suspended): don't burst hundreds of ticks, rebase
                self.rebases += 1
                base = time.perf_counter() - (k + 1) * self.period
            if self._stop.is_set():
                break
            k += 1
            began = time.perf_counter()
            self._ticks += 1
            self._run_due_timers()
            try:
                self._on_tick(self._ticks)
            except Exception:
                log.exception("sandbox audio tick failed")
            self.busy_seconds += time.perf_counter() - began
