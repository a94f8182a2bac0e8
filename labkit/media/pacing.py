"""What a paced send reports: `PacingStats` (how well the sender kept time) and `PlayHandle` (one play's
progress, a small Future). Kept apart from the sender thread in labkit.media.pacer, which makes both.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from labkit.media.frames import FRAME_MS

if TYPE_CHECKING:  # pragma: no cover
    from labkit.media.pacer import PacedSender

__all__ = ["PacingStats", "PlayHandle"]

_PERIOD = FRAME_MS / 1000.0


@dataclass(frozen=True)
class PacingStats:
    """How well the sender kept time: send instants plus the figures derived from them."""

    send_times: np.ndarray = field(repr=False)  #: clock() at each send, seconds (most recent ones)
    frames_sent: int  #: total frames handed to ``send``
    resyncs: int  #: times the schedule restarted because the sender fell too far behind to catch up
    dropped: int  #: echo frames refused because the queue was full
    stalls: int = 0  #: times a send fell more than one frame behind the schedule (caught up, or a resync)
    caught_up: int = 0  #: frames sent more than one frame late, in catch-up bursts back onto the schedule
    lateness: np.ndarray | None = field(default=None, repr=False)  #: each send's lateness vs schedule, s

    @property
    def worst_late_ms(self) -> float:
        """The longest stall: how far behind its schedule the sender ever was, in ms (recorded sends)."""
        return float(self.lateness.max()) * 1000.0 if self.lateness is not None and self.lateness.size else 0.0

    @property
    def schedule_drift_ms(self) -> float:
        """How late the last send was against the sender's own schedule, in ms: after catching up, about
        0 however long the run (unlike `drift_ms`, it is not changed by a resync's new schedule)."""
        return float(self.lateness[-1]) * 1000.0 if self.lateness is not None and self.lateness.size else 0.0

    @property
    def intervals_ms(self) -> np.ndarray:
        """Gaps between consecutive sends, in ms."""
        return np.diff(self.send_times) * 1000.0

    def jitter_ms(self, percentile: float = 50.0) -> float:
        """Percentile of ``|interval - 20 ms|`` in ms (0 with fewer than two sends)."""
        iv = self.intervals_ms
        return float(np.percentile(np.abs(iv - FRAME_MS), percentile)) if iv.size else 0.0

    @property
    def drift_ms(self) -> float:
        """Elapsed time minus scheduled time over the recorded sends (meaningful for one continuous
        stream): positive means the audio ran late."""
        n = self.send_times.size
        if n < 2:
            return 0.0
        return float((self.send_times[-1] - self.send_times[0]) - (n - 1) * _PERIOD) * 1000.0

    def summary(self) -> str:
        return (
            f"{self.frames_sent} frames, jitter p50={self.jitter_ms(50):.3f} ms "
            f"p99={self.jitter_ms(99):.3f} ms, drift={self.drift_ms:+.2f} ms, "
            f"stalls={self.stalls} (worst {self.worst_late_ms:.1f} ms late, {self.caught_up} frames caught up), "
            f"resyncs={self.resyncs}, dropped={self.dropped}"
        )


class PlayHandle:
    """Progress of one :meth:`PacedSender.play`: a small Future-like object.

    ``done`` is set when the last frame was sent, the play was cleared/cancelled, or sending
    failed; check ``error`` and ``cancelled`` to tell which.
    """

    def __init__(self, frames_total: int, sender: PacedSender | None = None) -> None:
        self.frames_total = frames_total
        self.frames_sent = 0
        self.error: BaseException | None = None
        self.cancelled = False
        self.done = threading.Event()
        self._sender = sender

    @property
    def duration(self) -> float:
        """Seconds of audio this play holds."""
        return self.frames_total * _PERIOD

    @property
    def ok(self) -> bool:
        """True once every frame was sent without error or cancellation."""
        return self.done.is_set() and self.error is None and not self.cancelled

    def wait(self, timeout: float | None = None) -> bool:
        """Block until done (or ``timeout`` seconds); return whether it is done."""
        return self.done.wait(timeout)

    def cancel(self) -> int:
        """Drop this play's unsent frames; return how many were dropped."""
        if self._sender is None or self.done.is_set():
            return 0
        return self._sender._cancel(self)

    def __repr__(self) -> str:
        state = (
            "failed"
            if self.error is not None
            else "cancelled"
            if self.cancelled
            else "done"
            if self.done.is_set()
            else "playing"
        )
        seconds = self.frames_total * 0.02
        return f"audio playing into the call: {state}, {self.frames_sent} of {self.frames_total} frames sent " \
               f"({seconds:.1f} s in all)"
