"""Where the recordings are written, and the frame listeners' thread.

Every socket shares the one loop, so anything that can wait there waits for all of them; but a thread
is not free either. While the disk keeps up, a frame is appended on the loop as it arrives, as a bare
server writes it, but without even its system call: a copy into the page cache through a map of the
file's end and a store into the header's (labkit.media.recorder, media.wav_tail), so the WAV is valid
after every frame. Issue 20 measured the
alternative, a writer thread woken every tick: it cost 10-20 us a frame more than a bare server, in GIL
hand-offs between it and the loop (each `os.write` there drops the GIL and must win it back from the
loop), which is what had put recording on the loop's back.

A disk that blocks must never stall the loop: `SLOW_WRITES` writes slower than `SLOW_WRITE` within
`SLOW_WINDOW` move every call's recording to `RecordingWriter`'s thread for good (event
``recording-on-writer-thread``). There a frame costs one `deque.append` on the loop; the thread comes
round once per frame period (`WRITE_TICK`) and appends each session's frames in one write, so a file is
a valid WAV within a tick of its call. Memory stays bounded at any stream count: the frames waiting for
the writer are counted in bytes, and past `MAX_BACKLOG_BYTES` a new frame is not queued but counted as
shed on its session. Nothing is shed silently: when the writer is more than `BEHIND_SECONDS` of audio
behind it posts a ``recording-behind`` socket event (``recording-caught-up`` when it is back), the first
shed frame of a call posts ``recording-frames-shed``, and ``socket-closed`` carries ``frames_shed``.

One listener thread runs the frame listeners (the live waveform), where a slow one can only fall behind
(and lose frames for itself), never hold up a call. ``LABKIT_RECORD_ON_LOOP=0`` starts on the thread.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("labkit.socket")
LISTENER_QUEUE = 2000  # frames waiting for slow listeners (40 s of one call) before they are dropped
IDLE_EXIT = 2.0  # seconds a worker thread waits for work before it ends (it starts again when needed)
WRITE_TICK = 0.02  # seconds between the writer's rounds: one frame period of every call
MAX_BACKLOG_BYTES = 64 * 1024 * 1024  # frames waiting for the writer (2.6 s of 800 calls at 16 kHz)
BEHIND_SECONDS = 0.5  # audio per call waiting for the writer before it says it is behind
DIRECT_WRITES = os.environ.get("LABKIT_RECORD_ON_LOOP", "1") != "0"  # start by writing on the loop
SLOW_WRITE = 0.02  # seconds: a write on the loop slower than this waited for the disk (or the CPU)
SLOW_WRITES = 5  # that many slow writes within SLOW_WINDOW move recording to the writer thread
SLOW_WINDOW = 10.0


class _Worker:
    """One daemon thread draining a bounded queue in order; it ends when idle and starts again on demand."""

    def __init__(self, name: str, handle: Callable[..., None], maxsize: int) -> None:
        self.name = name
        self._handle = handle
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def put(self, item: Any) -> bool:
        """Queue `item`; False if the queue is full."""
        with self._lock:
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                return False
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
        return True

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=IDLE_EXIT)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            try:
                self._handle(*item)
            except Exception:  # noqa: BLE001 - one bad item must not end the worker
                log.exception("%s: unexpected error", self.name)


class RecordingWriter:
    """The thread that writes every session's queued frames once per tick, and closes finished ones.

    The loop side is `queue(session, frame)` (or a session appending to its own `_pending` deque and
    calling `track` once); `deque.append`/`popleft` are atomic, so no lock is shared with the loop.
    `queued_bytes` is only ever added to by the loop, `written_bytes` only by this thread: their
    difference is the backlog, read on the loop without a lock."""

    def __init__(self, on_event: Callable[[dict[str, Any]], None] | None = None, *,
                 max_backlog_bytes: int = MAX_BACKLOG_BYTES, tick: float = WRITE_TICK) -> None:
        self.on_event = on_event
        self.max_backlog_bytes = max_backlog_bytes
        self.tick = tick
        self.queued_bytes = 0  # loop thread only
        self.written_bytes = 0  # writer thread only (written, or let go with a failed/closed recording)
        self.frames_shed = 0
        self.behind = False
        self._new: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def backlog_bytes(self) -> int:
        return self.queued_bytes - self.written_bytes

    def admit(self, nbytes: int) -> bool:
        """On the loop: may a frame of `nbytes` be queued? False past the bound (the caller counts it)."""
        if self.queued_bytes - self.written_bytes + nbytes > self.max_backlog_bytes:
            self.frames_shed += 1
            return False
        self.queued_bytes += nbytes
        return True

    def track(self, session: Any) -> None:
        """Have the writer look after `session` (its first frame arrived, or it ended)."""
        self._new.put(session)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="labkit-socket-writer", daemon=True)
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        sessions: dict[Any, None] = {}  # insertion-ordered set: calls are written in the order they came
        next_round = time.monotonic()
        while True:
            while True:
                try:
                    session = self._new.get_nowait()
                except queue.Empty:
                    break
                if not session.closed.is_set():  # tracked again by its end after this thread closed it
                    sessions[session] = None
            if not sessions:
                self._say_behind(False, 0, 0)  # nothing left to write: caught up, if it had said it was behind
                self._wake.clear()
                if self._new.empty() and not self._wake.wait(IDLE_EXIT):
                    with self._lock:
                        if self._new.empty():
                            self._thread = None
                            return
                next_round = time.monotonic()
                continue
            self._round(sessions)
            next_round += self.tick
            pause = next_round - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            else:
                next_round = time.monotonic()  # behind: go again at once, the writes grow and it catches up

    def _round(self, sessions: dict[Any, None]) -> None:
        """Write what every session has queued; close the ones that ended after their last frame."""
        backlog = self.backlog_bytes
        per_second = sum(s.frame_size * 50 for s in sessions) or 1
        self._say_behind(backlog / per_second > BEHIND_SECONDS, backlog, len(sessions))
        for session in list(sessions):
            ending = session.ended_at is not None  # read first: every frame before the end is queued by now
            pending = session._pending
            n = len(pending)
            if n:
                frames = [pending.popleft()] if n == 1 else [pending.popleft() for _ in range(n)]
                try:
                    session._write_frames(frames)
                except Exception:  # noqa: BLE001 - one call's failure must not cost the others their frames
                    log.exception("labkit-socket-writer: unexpected error")
                self.written_bytes += n * session.frame_size  # only whole frames are queued
            if not ending and session._hand_back():  # its file exists: the loop writes it again
                del sessions[session]
                continue
            if ending and not pending:
                del sessions[session]
                try:
                    session._close_recording()
                except Exception:  # noqa: BLE001
                    log.exception("labkit-socket-writer: unexpected error")

    def _say_behind(self, behind: bool, backlog: int, calls: int) -> None:
        if behind == self.behind:
            return
        self.behind = behind
        if self.on_event is None:
            return
        if behind:
            payload = {"status": "recording-behind", "backlog_bytes": backlog, "calls": calls,
                       "reason": f"the recording writer is {backlog / 1e6:.1f} MB behind {calls} call(s) (the disk "
                                 f"or the machine is too slow); past {self.max_backlog_bytes / 1e6:.0f} MB new frames "
                                 "are shed from the recordings and counted"}
        else:
            payload = {"status": "recording-caught-up", "calls": calls, "frames_shed": self.frames_shed}
        try:
            self.on_event(payload)
        except Exception:  # noqa: BLE001
            log.exception("labkit-socket-writer: event failed")


class SessionWorkers:
    """Where the hub's recordings are written (on the loop while the disk keeps up, else the writer
    thread), and the listener thread."""

    def __init__(self, on_event: Callable[[dict[str, Any]], None] | None = None, *,
                 direct: bool = DIRECT_WRITES) -> None:
        self.listener_frames_dropped = 0
        self.on_event = on_event
        self.direct = direct
        self.slow_writes = 0
        self._slow: deque[float] = deque(maxlen=SLOW_WRITES)  # when the last slow writes on the loop were
        self.writer = RecordingWriter(on_event)
        self._listeners = _Worker("labkit-socket-listeners", self._listen, maxsize=LISTENER_QUEUE)

    def wrote(self, seconds: float) -> None:
        """On the loop, after a write there: `SLOW_WRITES` writes slower than `SLOW_WRITE` within
        `SLOW_WINDOW` seconds move recording to the writer thread for good (the loop must never wait for a
        disk), and say so. One slow write is not enough: a busy machine can preempt the loop mid-write."""
        if seconds <= SLOW_WRITE or not self.direct:
            return
        now = time.monotonic()
        slow = self._slow
        slow.append(now)
        self.slow_writes += 1
        if len(slow) < SLOW_WRITES or now - slow[0] > SLOW_WINDOW:
            return
        self.direct = False
        if self.on_event is not None:
            self.on_event({"status": "recording-on-writer-thread", "reason":
                           f"{len(slow)} recording writes within {now - slow[0]:.1f} s took over "
                           f"{SLOW_WRITE * 1000:g} ms each (the last {seconds * 1000:.0f} ms): a slow disk. "
                           "Recordings are now written on a thread, so the server's loop never waits for it."})

    def dispatch(self, session: Any, frame: bytes) -> None:
        if not self._listeners.put((session, frame)):
            self.listener_frames_dropped += 1  # a listener that cannot keep up loses frames, not the call

    @staticmethod
    def _listen(session: Any, frame: bytes) -> None:
        for fn in list(session._frame_listeners):
            try:
                fn(frame)
            except Exception:  # noqa: BLE001 - a widget must not break the recording
                pass
