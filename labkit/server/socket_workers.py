"""Work that must not run on the server's event loop: writing recordings, and frame listeners.

Every socket shares the one loop, so anything that can wait there waits for all of them. A recorder
write is short, but it releases and re-takes the GIL (libsndfile is called through cffi), and on a busy
machine re-taking it can cost milliseconds: on the loop that delayed every socket and every paced frame.
So the loop only queues frames; one writer thread writes them in order and finishes each recording
after its last frame; one listener thread runs the frame listeners (the live waveform), where a slow
one can only fall behind (and lose frames for itself), never hold up a call.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

log = logging.getLogger("labkit.socket")
LISTENER_QUEUE = 2000  # frames waiting for slow listeners (40 s of one call) before they are dropped
IDLE_EXIT = 2.0  # seconds a worker thread waits for work before it ends (it starts again when needed)


class _Worker:
    """One daemon thread draining a queue in order; it ends when idle and starts again on demand."""

    def __init__(self, name: str, handle, maxsize: int = 0):
        self.name = name
        self._handle = handle
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


class SessionWorkers:
    """The hub's writer and listener threads."""

    def __init__(self) -> None:
        self.listener_frames_dropped = 0
        self._writer = _Worker("labkit-socket-writer", self._write)
        self._listeners = _Worker("labkit-socket-listeners", self._listen, maxsize=LISTENER_QUEUE)

    def write(self, session, frame: bytes | None) -> None:
        """Record `frame` for `session` (in arrival order); None finishes the session's recording."""
        self._writer.put((session, frame))

    def dispatch(self, session, frame: bytes) -> None:
        if not self._listeners.put((session, frame)):
            self.listener_frames_dropped += 1  # a listener that cannot keep up loses frames, not the call

    @staticmethod
    def _write(session, frame: bytes | None) -> None:
        if frame is None:
            session._close_recording()
        else:
            session._write(frame)

    @staticmethod
    def _listen(session, frame: bytes) -> None:
        for fn in list(session._frame_listeners):
            try:
                fn(frame)
            except Exception:  # noqa: BLE001 - a widget must not break the recording
                pass
