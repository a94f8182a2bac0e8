"""Send audio into a call's WebSocket at real-time pace, one 20 ms frame at a time.

Audio sent with a ``sleep(0.02)`` loop drifts late by the time each iteration itself takes (hundreds
of ms per minute). :class:`PacedSender` keeps an absolute schedule instead (frame *n* is due at
``start + n * 20 ms``) and sends a little early, as Vonage advises ("a delay of 18-19ms between each
message", vonage-node-sdk#124 and the WebSocket tutorial).

After a stall (a GC pause, a busy machine) it catches up on the original schedule: the frames it missed
go out at once, in bounded bursts (at most ``burst_frames`` per 20 ms), until it is back on time, so over
a long run the schedule never drifts. Why that is the right rule: Vonage's WebSocket buffers audio sent
faster than real time and plays it in order ("buffered by our API platform": 1024 messages, about 20 s,
in the 2021 guide; 3072, about 60 s, in the current tutorial; reference/vonage-platform.md section 8).
During a stall the platform runs dry and plays silence whatever the sender does next; catching up then
leaves the platform holding as much audio as the longest stall so far (which absorbs later stalls), while
starting a new schedule, the pre-issue-20 rule, adds every stall to the call's delay and drifts (+518 ms
over 120 s beside two CPU-bound processes). What the platform does past its buffer is UNCONFIRMED, so a
stall longer than ``resync_after_frames`` (5 s, a quarter of the smaller documented buffer) starts a new
schedule instead (counted in ``resyncs``). What it reports (`PacingStats`, `PlayHandle`) is in
labkit.media.pacing; both are importable from here too.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from labkit.errors import AudioError, InvalidInput, SocketError
from labkit.media.frames import FRAME_MS, frame_bytes, frame_samples
from labkit.media.pacing import PacingStats, PlayHandle

if TYPE_CHECKING:  # pragma: no cover
    from labkit.media.audio import AudioSource

__all__ = ["PacedSender", "PacingStats", "PlayHandle"]

_PERIOD = FRAME_MS / 1000.0
# Off by default: PacingStats (drift, jitter) and notebook 06 describe one steady 20 ms schedule from the
# first frame. PacedSender(..., prebuffer_frames=10) gives the platform 200 ms of slack instead.
PREBUFFER_FRAMES = 0
_LE_INT16 = np.dtype("<i2")


class _Play:
    """Queued audio with a cursor: frames are cut one at a time when due, never all up front."""

    __slots__ = ("samples", "pos", "nframes", "handle")

    def __init__(self, samples: np.ndarray, nframes: int, handle: PlayHandle) -> None:
        self.samples = samples
        self.pos = 0
        self.nframes = nframes
        self.handle = handle


def _finish(handle: PlayHandle | None, *, error: BaseException | None = None, cancelled: bool = False) -> None:
    if handle is None or handle.done.is_set():
        return
    handle.error = error
    handle.cancelled = cancelled
    handle.done.set()


class PacedSender:
    """Deadline-scheduled 20 ms frames on a daemon thread.

    ``send(frame)`` is called with exactly ``frame_bytes(rate)`` bytes per frame, in order, at one
    frame per 20 ms of ``clock`` (``clock`` and ``sleep`` can be swapped for a simulated clock).
    ``lead_ms`` sends that much before each deadline (Vonage advises 18-19 ms pacing so its jitter
    buffer never runs dry). ``prebuffer_frames`` go out at once when a stream starts (and again after a
    resync), so the platform holds that much slack and a short stall of this process (a busy machine, a
    GC pause) is never heard as a gap; Vonage buffers what is sent ahead (3072 frames). A stall of up
    to ``resync_after_frames`` (5 s) is caught up on the original schedule, at most ``burst_frames`` frames
    per 20 ms; a longer one starts a new schedule. ``max_queued_frames`` bounds echoed frames held in
    memory (Vonage itself buffers 3072); plays keep a cursor into their samples so even an hour of audio
    costs no extra memory. If ``send`` raises, the sender stops, keeps the exception in
    ``error`` and finishes pending plays with that error.
    """

    def __init__(
        self,
        send: Callable[[bytes], None],
        rate: int,
        *,
        lead_ms: float = 2.0,
        prebuffer_frames: int = PREBUFFER_FRAMES,
        max_queued_frames: int = 3000,
        resync_after_frames: int = 250,
        burst_frames: int = 5,
        stats_limit: int = 180_000,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not callable(send):
            raise InvalidInput(f"send must be a callable taking bytes, not {type(send).__name__}")
        if not 0 <= lead_ms < FRAME_MS:
            raise InvalidInput(f"lead_ms must be between 0 and {FRAME_MS} ms, not {lead_ms}")
        if isinstance(prebuffer_frames, bool) or not isinstance(prebuffer_frames, int) or prebuffer_frames < 0:
            raise InvalidInput(f"prebuffer_frames must be a whole number >= 0, not {prebuffer_frames!r}")
        if max_queued_frames < 1 or resync_after_frames < 1 or burst_frames < 1 or stats_limit < 2:
            raise InvalidInput("max_queued_frames, resync_after_frames and burst_frames must be >= 1, "
                               "stats_limit >= 2")
        self.rate = int(rate)
        self.frame_samples = frame_samples(self.rate)  # validates the rate
        self.frame_bytes = frame_bytes(self.rate)
        self.lead = lead_ms / 1000.0
        self.prebuffer = prebuffer_frames * _PERIOD
        self.max_queued_frames = int(max_queued_frames)
        self.error: BaseException | None = None
        self._send = send
        self._clock = clock
        self._sleep = sleep
        self._resync_after = resync_after_frames * _PERIOD
        self._min_gap = _PERIOD / burst_frames  # catching up: at most `burst_frames` sends per period
        self._stats_limit = int(stats_limit)
        self._cond = threading.Condition(threading.Lock())
        self._items: deque[_Play | bytes] = deque()
        self._pending = 0  # frames not yet sent, plays and echoes together
        self._echo_pending = 0
        self._in_flight = 0  # a frame taken off the queue and not yet handed to `send`
        self._closed = False
        self._times = array("d")
        self._late = array("d")  # how late each send was against the schedule, s (same ring as _times)
        self._frames_sent = 0
        self._resyncs = 0
        self._dropped = 0
        self._stalls = 0  # times a send fell a whole frame behind the schedule (then caught up or resynced)
        self._caught_up = 0  # frames sent more than one frame late, back towards the schedule
        self._thread = threading.Thread(target=self._run, name=f"labkit-pacer-{self.rate}-{id(self):x}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ producer side

    def play(self, source: AudioSource | np.ndarray | list, rate: int | None = None) -> PlayHandle:
        """Queue audio behind whatever is already queued; return a :class:`PlayHandle` at once.

        ``source`` is samples (int16 or -1..1 float; ``rate`` defaults to the sender's) or anything
        :func:`labkit.media.audio.load` takes (a path, file bytes, ``(samples, rate)``, a Recording).
        """
        from labkit.media.audio import load

        if isinstance(source, (np.ndarray, list)):
            samples = load((np.asarray(source), rate or self.rate), self.rate)
        elif rate is not None:
            raise InvalidInput("rate= only applies to bare sample arrays; files and Recordings carry their own")
        else:
            samples = load(source, self.rate)
            if samples.size == 0 and not hasattr(source, "samples"):  # a file with a header and no audio
                raise AudioError(f"{source!r:.80} holds no samples (0 s of audio), so there is nothing to play: "
                                 "record or export it again, or pick another file.")
        samples = samples.astype(_LE_INT16, copy=False)
        nframes = -(-samples.size // self.frame_samples)
        handle = PlayHandle(nframes, self)
        with self._cond:
            self._raise_if_stopped()
            if nframes == 0:
                _finish(handle)
                return handle
            self._items.append(_Play(samples, nframes, handle))
            self._pending += nframes
            self._cond.notify()
        return handle

    def echo(self, frame: bytes | bytearray | memoryview) -> bool:
        """Queue one raw frame (e.g. to echo a caller back to themselves).

        Returns False, and counts it in ``stats.dropped``, when ``max_queued_frames`` echoed frames
        are already waiting: like the platform's own buffer, what does not fit is dropped rather
        than delaying everything after it.
        """
        data = bytes(frame)
        if len(data) != self.frame_bytes:
            raise SocketError(
                f"an echoed frame has {len(data)} bytes; at {self.rate} Hz every frame must be "
                f"{self.frame_bytes} bytes (20 ms of 16-bit mono)"
            )
        with self._cond:
            self._raise_if_stopped()
            if self._echo_pending >= self.max_queued_frames:
                self._dropped += 1
                return False
            self._items.append(data)
            self._pending += 1
            self._echo_pending += 1
            self._cond.notify()
        return True

    def clear(self) -> int:
        """Drop everything not yet sent (barge-in); return the number of frames dropped."""
        with self._cond:
            dropped = self._pending
            for item in self._items:
                if isinstance(item, _Play):
                    _finish(item.handle, cancelled=True)
            self._items.clear()
            self._pending = 0
            self._echo_pending = 0
        return dropped

    def _cancel(self, handle: PlayHandle) -> int:
        with self._cond:
            for item in self._items:
                if isinstance(item, _Play) and item.handle is handle:
                    dropped = item.nframes - item.pos
                    self._items.remove(item)
                    self._pending -= dropped
                    _finish(handle, cancelled=True)
                    return dropped
        return 0

    def _raise_if_stopped(self) -> None:
        if self.error is not None:
            raise SocketError(
                f"the paced sender stopped because sending failed ({self.error!r}); the call's "
                "WebSocket is probably closed: start a new sender on a new connection"
            ) from self.error
        if self._closed:
            raise SocketError("the paced sender is closed; create a new PacedSender to send more audio")

    # ------------------------------------------------------------------ state

    @property
    def queued(self) -> int:
        """Frames not sent yet (all queued plays and echoes, and one being sent): 0 only once the last
        frame is on the wire, so a command sent after it (websocket notify) cannot overtake it."""
        with self._cond:
            return self._pending + self._in_flight

    @property
    def queued_seconds(self) -> float:
        return self.queued * _PERIOD

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def stats(self) -> PacingStats:
        """Send instants (the last ``stats_limit`` of them) and pacing figures."""
        with self._cond:
            times = np.array(self._times[-self._stats_limit :], dtype=np.float64)
            late = np.array(self._late[-self._stats_limit :], dtype=np.float64)
            return PacingStats(times, self._frames_sent, self._resyncs, self._dropped, stalls=self._stalls,
                               caught_up=self._caught_up, lateness=late)

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread and cancel unsent audio. Safe to call twice or from ``send`` itself."""
        with self._cond:
            if not self._closed:
                self._closed = True
                for item in self._items:
                    if isinstance(item, _Play):
                        _finish(item.handle, cancelled=True)
                self._items.clear()
                self._pending = self._echo_pending = 0
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def __enter__(self) -> PacedSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "failed" if self.error is not None else "closed" if self._closed else "running"
        return f"paced sender at {self.rate} Hz, {state}: {self._frames_sent} frames sent, {self._pending} queued"

    # ------------------------------------------------------------------ sender thread

    def _next_frame(self) -> tuple[bytes, PlayHandle | None, bool] | None:
        """Cut the next frame off the queue (lock held). Returns (frame, handle, last_of_play)."""
        if not self._items:
            return None
        item = self._items[0]
        self._pending -= 1
        if isinstance(item, bytes):
            self._items.popleft()
            self._echo_pending -= 1
            return item, None, False
        n = self.frame_samples
        chunk = item.samples[item.pos * n : (item.pos + 1) * n]
        if chunk.size < n:
            chunk = np.concatenate([chunk, np.zeros(n - chunk.size, dtype=_LE_INT16)])
        item.pos += 1
        last = item.pos == item.nframes
        if last:
            self._items.popleft()
        return chunk.tobytes(), item.handle, last

    def _run(self) -> None:
        clock = self._clock
        deadline: float | None = None  # when the next frame is due (it is sent `lead` earlier)
        last_sent = float("-inf")
        started = 0.0  # when the current schedule began: the prebuffer's frames are due before it, by design
        stalled = False
        while True:
            idled = False
            with self._cond:
                while not self._closed and not self._items:
                    idled = True
                    self._cond.wait()
                if self._closed:
                    return
            now = clock()
            # Deadlines are `lead` after the send instant, so a (re)started stream sends at once.
            if deadline is None or (idled and now + self.lead > deadline):
                deadline = now + self.lead - self.prebuffer  # a fresh stream: the prebuffer goes at once
                started = now
            elif now + self.lead - deadline > self._resync_after:
                # Too far behind to catch up without leaving that much delay in the call: a new schedule.
                deadline = now + self.lead - self.prebuffer
                started = now
                self._resyncs += 1
            # On time: wait for the frame's instant. Behind: send now, but no closer than `_min_gap` to the
            # last send, so a catch-up is a bounded burst (`burst_frames` per period), never a flood.
            wait = max(deadline - self.lead, last_sent + self._min_gap) - clock()
            if wait > 0:
                # time.sleep is clock_nanosleep: the tightest wake-up Python offers (Event.wait has
                # a longer tail). close() is noticed after at most one frame period.
                self._sleep(wait)
            with self._cond:
                if self._closed:
                    return
                nxt = self._next_frame()
                self._in_flight = int(nxt is not None)
            if nxt is None:  # cleared while we slept; keep the schedule for what comes next
                continue
            frame, handle, last = nxt
            sent_at = clock()
            try:
                self._send(frame)
            except Exception as exc:  # any failure means the socket is unusable
                self._fail(exc, handle)
                return
            late = sent_at - (deadline - self.lead) if deadline - self.lead >= started else 0.0
            with self._cond:
                self._in_flight = 0
                self._times.append(sent_at)
                self._late.append(late)
                if len(self._times) >= 2 * self._stats_limit:
                    del self._times[: self._stats_limit]
                    del self._late[: self._stats_limit]
                self._frames_sent += 1
                if late > _PERIOD + 1e-9:
                    self._caught_up += 1
                    self._stalls += not stalled
                stalled = late > _PERIOD + 1e-9
                if handle is not None:
                    handle.frames_sent += 1
                    if last:
                        _finish(handle)
            last_sent = sent_at
            deadline += _PERIOD

    def _fail(self, exc: BaseException, current: PlayHandle | None) -> None:
        with self._cond:
            self.error = exc
            self._closed = True
            _finish(current, error=exc)
            for item in self._items:
                if isinstance(item, _Play):
                    _finish(item.handle, error=exc)
            self._items.clear()
            self._pending = self._echo_pending = self._in_flight = 0
            self._cond.notify_all()
