"""Work that must not run on the server's event loop: writing recordings, and frame listeners.

Every socket shares the one loop, so anything that can wait there waits for all of them. A recorder
write is short, but it releases and re-takes the GIL (libsndfile is called through cffi), and on a busy
machine re-taking it can cost milliseconds: on the loop that delayed every socket and every paced frame.
So the loop only queues frames; one writer thread writes them in order and finishes each recording
after its last frame; one listener thread runs the frame listeners (the live waveform), where a slow
one can only fall behind (and lose frames for itself), never hold up a call.

The writer wakes when frames are queued, lets one frame period (`WRITE_TICK`) of them gather, then
writes each session's frames in one call (one header update): one wake-up and one write per call per
tick instead of per frame, and when it falls behind the writes grow and it catches up. With uvloop
that took the lab from 300 to 400 streams at about 15% less CPU (bench/bench_socket_server.py). The cost:
a file on disk trails its call by up to a tick (plus the queue), which a killed kernel loses.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

log = logging.getLogger("labkit.socket")
LISTENER_QUEUE = 2000  # frames waiting for slow listeners (40 s of one call) before they are dropped
IDLE_EXIT = 2.0  # seconds a worker thread waits for work before it ends (it starts again when needed)
WRITE_TICK = 0.02  # seconds the writer lets frames gather after waking: one frame period of every call
WRITE_BATCH = 5000  # most queued frames the writer takes at once (a tick of 5000 calls)


class _Worker:
    """One daemon thread draining a queue in order; it ends when idle and starts again on demand."""

    def __init__(self, name: str, handle, maxsize: int = 0, batch: int = 0):
        """`handle(*item)` per item; with `batch`, `handle(items)` with up to that many queued items."""
        self.name = name
        self._handle = handle
        self._batch = batch
        self._queue: queue.Queue = queue.Queue(maxsize) if maxsize else queue.SimpleQueue()  # type: ignore
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def put(self, item: Any) -> bool:
        """Queue `item`; False if the queue is full (only a bounded worker drops)."""
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
        behind = False
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
                if self._batch:
                    if not behind:
                        time.sleep(WRITE_TICK)  # let a tick's frames gather: one wake-up, fewer writes
                    items = [item]
                    while len(items) < self._batch:
                        try:
                            items.append(self._queue.get_nowait())
                        except queue.Empty:
                            break
                    behind = len(items) == self._batch  # more are waiting: no pause before the next
                    self._handle(items)
                else:
                    self._handle(*item)
            except Exception:  # noqa: BLE001 - one bad item must not end the worker
                log.exception("%s: unexpected error", self.name)


class SessionWorkers:
    """The hub's writer and listener threads."""

    def __init__(self) -> None:
        self.listener_frames_dropped = 0
        self._writer = _Worker("labkit-socket-writer", self._write, batch=WRITE_BATCH)
        self._listeners = _Worker("labkit-socket-listeners", self._listen, maxsize=LISTENER_QUEUE)

    def write(self, session, frame: bytes | None) -> None:
        """Record `frame` for `session` (in arrival order); None finishes the session's recording."""
        self._writer.put((session, frame))

    def dispatch(self, session, frame: bytes) -> None:
        if not self._listeners.put((session, frame)):
            self.listener_frames_dropped += 1  # a listener that cannot keep up loses frames, not the call

    @staticmethod
    def _write(items: list) -> None:
        """Write queued frames, each session's in one call, in arrival order; close after the last."""
        pending: dict[Any, list[bytes]] = {}
        for session, frame in items:
            if frame is not None:
                pending.setdefault(session, []).append(frame)
                continue
            frames = pending.pop(session, None)
            if frames:
                _safely(session._write_frames, frames)
            _safely(session._close_recording)
        for session, frames in pending.items():
            _safely(session._write_frames, frames)

    @staticmethod
    def _listen(session, frame: bytes) -> None:
        for fn in list(session._frame_listeners):
            try:
                fn(frame)
            except Exception:  # noqa: BLE001 - a widget must not break the recording
                pass


def _safely(fn, *args) -> None:
    """One session's failure must not cost the other sessions in the same batch their frames."""
    try:
        fn(*args)
    except Exception:  # noqa: BLE001
        log.exception("labkit-socket-writer: unexpected error")
