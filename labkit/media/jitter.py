"""Live microphone audio into a call, held just long enough: an adaptive jitter buffer.

A page sends its microphone in 20 ms pieces that arrive with jitter (the browser's audio thread, its main
thread, the wire, a busy kernel). The call plays 20 ms per tick; a piece that misses its tick leaves a gap
in the voice, and a fixed queue big enough for the worst case keeps the voice that late all call long.
So the queue is sized from the arrivals themselves, as a softphone's jitter buffer is (WebRTC's NetEq sets
its target delay from a histogram of arrival delays): `ArrivalJitter` measures how late each piece comes
against the best of the recent ones, and `LiveVoice` puts that much silence ahead of the voice whenever the
call has run dry (the 95th percentile over the last 3 s: a stall makes a run of late pieces, and a higher
percentile would keep its whole delay for 3 s). Then it keeps the queue down: a piece is dropped when more
than that plus a frame is waiting (a burst after a stall), and when over the last second the pieces on time
found more than the cushion waiting and the latest more than a few ms, the smaller excess is cut from the
next piece.

The same rule sizes the browser's playback queue (static/callaudio.js), for the other direction.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["ArrivalJitter", "LiveVoice"]

FRAME_SECONDS = 0.02
MAX_TARGET_SECONDS = 0.16  # never hold more than this for jitter: past it, a gap costs less than the delay
FLOOR_SECONDS = 0.005  # what the latest piece should find waiting ahead of it (see push)
TRIM_WINDOW_SECONDS = 1.0  # ...over this long
GAP_SECONDS = 0.5  # a pause longer than this (muted, a stall) starts the measure afresh


class ArrivalJitter:
    """How late pieces of audio arrive against their own timeline, over the last `window` pieces.

    Each arrival's offset is (arrival time - audio seconds sent before it); the earliest offset in the
    window is "on time", and a piece's lateness is its offset minus that. `target()` is the `quantile` of
    lateness: the queue that rides out all but the rarest late piece.
    """

    def __init__(self, window: int = 150, quantile: float = 0.95) -> None:
        self.window = window
        self.quantile = quantile
        self._offsets: deque[float] = deque(maxlen=window)
        self._position = 0.0  # audio seconds received
        self._last: float | None = None

    def arrive(self, seconds: float, now: float | None = None) -> None:
        """A piece of `seconds` of audio arrived at `now` (time.monotonic())."""
        now = time.monotonic() if now is None else now
        offset = now - self._position
        if self._last is not None and offset - self._last > GAP_SECONDS:
            self._offsets.clear()  # a pause, not jitter: measure from here
        self._offsets.append(offset)
        self._last = offset
        self._position += seconds

    def target(self) -> float:
        """Seconds of audio to keep waiting (0 until there is something to measure)."""
        if len(self._offsets) < 2:
            return 0.0
        base = min(self._offsets)
        late = sorted(o - base for o in self._offsets)
        return min(MAX_TARGET_SECONDS, late[min(len(late) - 1, int(self.quantile * len(late)))])


class LiveVoice:
    """Microphone pieces from a page into a call's speech queue, live (see the module docstring).

    `sink(samples, rate)` queues audio in the call (a virtual phone's `say`, a WebSocket's paced sender);
    `queued()` says how many seconds of it the call has yet to play. `push()` takes each piece as it
    arrives, with the page's send time (epoch ms) for the delay figures. When the call has run dry, a
    cushion of silence as long as the measured jitter goes first (in whole `granule` seconds: a paced
    sender pads a partial frame), so the next pieces arrive before they are due.

    An empty queue is not a dry call: a piece on time finds nothing waiting whenever the call's tick took
    the last one just before it. `short_ticks()`, where the call can count them (a virtual phone's ticks
    that found less than a frame), says whether it really ran dry since the last piece; without it an
    empty queue is taken as dry, which may put in a cushion the call did not need (a paced sender, whose
    queue of whole frames then holds it).
    """

    def __init__(self, sink: Callable[[np.ndarray, int], Any], queued: Callable[[], float], *,
                 granule: float = 0.0, short_ticks: Callable[[], int] | None = None) -> None:
        self.sink = sink
        self.queued = queued
        self.granule = granule
        self.short_ticks = short_ticks
        self._short_seen: int | None = None  # short_ticks() once the last piece was queued
        self.max_queue: float | None = None  # seconds: a fixed drop limit instead of the measured one (tests)
        self.jitter = ArrivalJitter()
        self.frames = 0  # 20 ms frames handed to the call
        self.dropped = 0  # 20 ms frames dropped to stay live
        self.cushions = 0  # times the call ran dry and a cushion went first
        self.trimmed = 0.0  # seconds cut from pieces while more than the cushion stayed waiting
        self._lowest = math.inf  # the least and most waiting ahead of a piece in the current window
        self._highest = 0.0
        self._since = time.monotonic()  # when the current window for _lowest began
        self._excess = 0.0
        # per piece handed on: capture (half the piece), wire, queued ahead of it, the call's tick (half)
        self._parts: deque[tuple[float, float, float, float]] = deque(maxlen=200)

    def cushion(self) -> float:
        """Seconds of silence that go first when the call has run dry: the measured jitter."""
        target = self.jitter.target()
        if self.granule > 0 and target > 0:
            target = -(-target // self.granule) * self.granule
        return target

    def push(self, samples: np.ndarray, rate: int, sent_ms: float | None = None) -> None:
        """One piece of microphone audio (int16 at `rate`), sent by the page at epoch ms `sent_ms`."""
        arrived = time.time() * 1000
        self.jitter.arrive(samples.size / rate)
        cushion = self.cushion()
        ahead = self.queued()
        frame = max(1, int(rate * FRAME_SECONDS))
        limit = cushion + FRAME_SECONDS + 0.005 if self.max_queue is None else self.max_queue
        if ahead > limit:  # more than the jitter needs is waiting: drop, stay live
            self.dropped += -(-samples.size // frame)
            return
        # Less than a frame too much, but for good (a burst, the page's capture and the call's tick out of
        # phase): a piece on time should find the cushion waiting (the most any piece found) and the latest a
        # floor (FLOOR_SECONDS). When, over the last second, the most stayed above the cushion and the least
        # above the floor, cut the smaller excess from the next piece.
        self._lowest, self._highest = min(self._lowest, ahead), max(self._highest, ahead)
        now = time.monotonic()
        if now - self._since >= TRIM_WINDOW_SECONDS:
            excess = min(self._highest - cushion, self._lowest - FLOOR_SECONDS)
            self._excess = excess if excess > 0.005 and self.max_queue is None else 0.0
            self._lowest, self._highest, self._since = math.inf, 0.0, now
        if self._excess > 0:
            step = max(1, int(round(self.granule * rate)))
            cut = min(samples.size, int(self._excess * rate) // step * step)
            samples, self._excess = samples[cut:], 0.0
            self.trimmed += cut / rate
            if not samples.size:
                return
        if ahead < 0.001 and cushion > 0 and self._ran_dry():
            silence = np.zeros(int(round(cushion * rate)), dtype=np.int16)
            self.sink(silence, rate)
            self.cushions += 1
            ahead = silence.size / rate
        self.sink(samples, rate)
        if self.short_ticks is not None:
            self._short_seen = self.short_ticks()
        self.frames += samples.size // frame
        wire = max(0.0, arrived - sent_ms) if isinstance(sent_ms, (int, float)) else 0.0
        self._parts.append((samples.size / rate * 500, wire, ahead * 1000, FRAME_SECONDS * 500))

    def _ran_dry(self) -> bool:
        """Whether the call played less than the voice since the last piece went in (see the class)."""
        if self.short_ticks is None or self._short_seen is None:
            return True
        return self.short_ticks() != self._short_seen

    def restart(self) -> None:
        """The audio's way in changed (a page's socket opened or closed): its jitter, which sizes the cushion,
        and the delay figures are measured afresh, of the new way alone."""
        self.jitter = ArrivalJitter(self.jitter.window, self.jitter.quantile)
        self._parts.clear()

    def figures(self) -> dict:
        """Medians of the delay from capture in the page to the call playing it, by stage (ms)."""
        out: dict[str, Any] = {"mic_frames": self.frames, "mic_frames_dropped": self.dropped,
                               "mic_jitter_ms": round(self.jitter.target() * 1000, 1), "mic_cushions": self.cushions,
                               "mic_trimmed_ms": round(self.trimmed * 1000)}
        if not self._parts:
            return {**out, "mic_delay_ms": None, "mic_delay_parts": ""}
        parts = [statistics.median(p[i] for p in self._parts) for i in range(4)]
        return {**out, "mic_delay_ms": round(statistics.median(sum(p) for p in self._parts), 1),
                "mic_delay_parts": (f"capture {parts[0]:.0f} ms + wire {parts[1]:.0f} ms + queued {parts[2]:.0f} ms"
                                    f" + tick {parts[3]:.0f} ms")}
