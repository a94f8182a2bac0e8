"""One live WebSocket of the /socket endpoint: `SocketSession` records what arrives and sends what you play.

The hub that opens sessions, lists recordings and holds the socket links is labkit.server.sockets (where
`SocketSession` is importable too). The connection itself is served on uvicorn's event loop by
`labkit.server.socket_endpoint`; sessions cross into that loop to send, each send within a bound.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any

from labkit import protocol
from labkit.errors import SocketError
from labkit.server.socket_workers import SLOW_WRITE

if TYPE_CHECKING:  # pragma: no cover
    from labkit.media.recorder import WavRecorder
    from labkit.media.recording import Recording
    from labkit.server.sockets import SocketHub

__all__ = ["SEND_TIMEOUT", "SEND_WINDOW", "SocketSession"]

SEND_WINDOW = 8  # messages (160 ms of audio) on their way to the event loop before a sender waits
SEND_TIMEOUT = 2.0  # seconds one frame may wait for a peer that stopped reading (LABKIT_SEND_TIMEOUT)


class SocketSession:
    """One live WebSocket: records what arrives, sends what you play, forwards key presses.

    Frames arrive on the server's event loop, which appends each to the WAV as it comes while the disk
    keeps up (else queues it for the hub's writer thread); the first one goes to the writer thread, which
    makes the file and hands the call back. The listener thread runs frame listeners
    (labkit.server.socket_workers says why).
    """

    def __init__(self, hub: SocketHub, link: str | None, rate: int, headers: dict[str, Any], path: Path, *,
                 loop: asyncio.AbstractEventLoop, send: Callable, transport: Any = None,
                 send_timeout: float = SEND_TIMEOUT):
        from labkit.media.frames import frame_bytes

        self.hub = hub
        self.link = link
        self.rate = rate
        self.headers = headers
        self.path = path
        self.frame_size = frame_bytes(rate)
        self.started_at = datetime.now(timezone.utc)
        self.ended_at: datetime | None = None
        self.frames_received = 0
        self.frames_malformed = 0
        self.malformed_sizes: dict[int, int] = {}
        self.echoing = False
        self.closed = threading.Event()
        self.send_timeout = send_timeout
        self._loop = loop
        self._asgi_send = send
        self._transport = transport
        self._send_lock = threading.Lock()
        self._inflight: deque = deque()  # sends handed to the loop, oldest first (concurrent futures)
        self._recorder = None  # created with the first audio frame: an empty connection leaves no file
        self._pending: deque[bytes] = deque()  # frames for the hub's writer thread (socket_workers)
        self.frames_shed = 0  # frames the writer had no room for (MAX_BACKLOG_BYTES): counted, said, not written
        self._has_audio = False
        self._tracked = False  # handed to the hub's writer thread (with the first frame it queues)
        self.recording_error: str | None = None  # why the recording stopped early, if it did
        self._pacer = None
        self._frame_listeners: list = []
        self.frames_direct = False  # frames come straight from the protocol, not the ASGI queue (socket_endpoint)

    # -- identity ------------------------------------------------------------------------------
    @property
    def call_uuid(self) -> str | None:
        return self.hub.call_for_link(self.link)

    @property
    def open(self) -> bool:
        return not self.closed.is_set()

    # -- receiving (on the server's event loop) --------------------------------------------------
    def on_frame(self, frame: bytes) -> None:
        if len(frame) != self.frame_size:
            # Never written: a wrong-size frame would shift every later sample.
            self.frames_malformed += 1
            self.malformed_sizes[len(frame)] = self.malformed_sizes.get(len(frame), 0) + 1
            if self.frames_malformed == 1:
                self._event({"status": "malformed-frame", "reason":
                             f"got a {len(frame)}-byte audio message; expected {self.frame_size} bytes "
                             f"(20 ms at {self.rate} Hz). Such messages are counted, not recorded."})
            return
        if self.ended_at is not None:
            return  # a frame that raced the close: the recording is being finished
        self.frames_received += 1
        self._has_audio = True
        workers = self.hub.workers
        recorder = self._recorder
        if recorder is not None and workers.direct and not self._tracked:
            # The disk keeps up: append it here, as a bare server would (a copy through a map of the file's
            # end: no thread, no GIL hand-off); writes that block move every call's recording to the writer
            # thread. The first frame goes to the writer thread, which makes the file and hands the call
            # back (`_back_on_loop`): making it (open, header, maps, the first reservation) took 0.2-0.4 ms,
            # and 100 calls starting together held the loop for 30-170 ms, late frames for every call.
            started = perf_counter()
            recorder.append_frame(frame)
            took = perf_counter() - started
            if took > SLOW_WRITE:
                workers.wrote(took)  # a slow disk: every call's recording moves to the writer thread
            if self.echoing:
                self.pacer.echo(frame)
            if self._frame_listeners:
                workers.dispatch(self, frame)
            return
        writer = workers.writer
        if writer.admit(self.frame_size):
            self._pending.append(frame)  # written in order on the writer thread, not on the loop
            if not self._tracked:
                self._tracked = True
                writer.track(self)
        else:
            self._shed()
        if self.echoing:
            self.pacer.echo(frame)
        if self._frame_listeners:
            self.hub.workers.dispatch(self, frame)

    def _shed(self) -> None:
        """The writer is too far behind to queue this frame: count it, and say so with the first one."""
        self.frames_shed += 1
        if self.frames_shed == 1:
            self._event({"status": "recording-frames-shed", "recording": str(self.path), "reason":
                         f"the recording writer is {self.hub.workers.writer.backlog_bytes / 1e6:.0f} MB behind, "
                         f"so frames of this call are being left out of {self.path.name} (counted in "
                         "frames_shed) until it catches up: the disk or the machine is too slow for this "
                         "many calls."})

    def _write_frames(self, frames: list[bytes] | tuple[bytes, ...]) -> None:
        """On the writer thread: append frames, making the WAV with the first one. While the disk keeps up
        (the call goes back to the loop next) each frame goes through the file's map; after a slow disk, in
        one write per tick.

        The recorder never raises on a full disk or an unwritable folder: it keeps a valid WAV of what
        was written and calls `_recording_stopped` once, and the call goes on."""
        recorder = self._recorder or self._open_recorder()
        if self.hub.workers.direct:  # the call goes back to the loop next: keep the file's map
            for frame in frames:
                recorder.append_frame(frame)
        else:
            recorder.append_frames(frames)  # whole frames only: on_frame checked each one's size

    def _hand_back(self) -> bool:
        """On the writer thread, after it wrote this call's frames: give the call back to the loop once its
        file exists and the disk keeps up (False: the writer keeps it)."""
        if self._recorder is None or self.ended_at is not None or not self.hub.workers.direct:
            return False
        try:
            self._loop.call_soon_threadsafe(self._back_on_loop)
        except RuntimeError:  # the loop is closed: the writer finishes the call
            return False
        return True

    def _back_on_loop(self) -> None:
        """On the loop: the writer let go of this call; write what it queued meanwhile, in order, then take
        every next frame here. An end that came first was handed to the writer, which closes the file."""
        if self.ended_at is not None or not self._tracked:
            return
        pending, recorder, workers = self._pending, self._recorder, self.hub.workers
        n = len(pending)
        for _ in range(n):
            started = perf_counter()
            recorder.append_frame(pending.popleft())
            took = perf_counter() - started
            if took > SLOW_WRITE:
                workers.wrote(took)
        workers.writer.queued_bytes -= n * self.frame_size  # admitted, never the writer's to write
        self._tracked = not workers.direct
        if self._tracked:  # these writes were slow: recording moved to the writer thread, this call with it
            workers.writer.track(self)

    def _open_recorder(self) -> WavRecorder:
        """Create the call's WAV (with its first frame: an empty connection leaves no file)."""
        from labkit.media.recorder import WavRecorder

        self._recorder = WavRecorder(self.path, self.rate, on_error=self._recording_stopped)
        return self._recorder

    def _recording_stopped(self, why: str) -> None:
        self.recording_error = why
        self._event({"status": "recording-stopped", "recording": str(self.path),
                     "reason": f"the recording {self.path.name} stopped: {why}. The call goes on; free space "
                               "or fix the folder's permissions for the next one."})

    def on_text(self, text: str) -> None:
        message = protocol.parse(text)
        self._event({k: v for k, v in message.items()})

    def _event(self, payload: dict[str, Any]) -> None:
        self.hub.events.add("socket", {"uuid": self.call_uuid, "link": self.link, **payload})

    def add_frame_listener(self, fn) -> Callable[[], None]:
        """Call `fn(frame_bytes)` for every audio frame received (the live waveform widget uses this).

        Listeners run on the hub's listener thread, never on the server's loop."""
        self._frame_listeners.append(fn)
        return lambda: self._frame_listeners.remove(fn) if fn in self._frame_listeners else None

    # -- sending (from any thread but the loop) --------------------------------------------------
    def _send(self, data: bytes | str) -> None:
        """Send one message, in order, without waiting for the event loop to write it.

        Up to `SEND_WINDOW` messages may be on their way to the loop; past that the sender waits (at
        most `send_timeout` s) for the oldest. A loop busy for a moment never delays the pacer's
        schedule (the frames go out together when it runs), while a peer that stops reading blocks
        the sender for `send_timeout` at most, then raises: its connection has been cut."""
        from labkit.server.limits import send_within

        message = {"type": "websocket.send", "bytes": data} if isinstance(data, (bytes, bytearray)) \
            else {"type": "websocket.send", "text": data}
        with self._send_lock:
            self._reap(SEND_WINDOW - 1)
            if self.closed.is_set():
                raise SocketError("the WebSocket is closed")
            self._inflight.append(asyncio.run_coroutine_threadsafe(
                send_within(self._asgi_send, message, self.send_timeout, self._transport), self._loop))

    def _reap(self, keep: int) -> None:
        """Collect finished sends, waiting for the oldest until at most `keep` are in flight."""
        while self._inflight and (self._inflight[0].done() or len(self._inflight) > keep):
            oldest = self._inflight.popleft()
            try:
                oldest.result(self.send_timeout + 1.0)
            except Exception as exc:
                for future in self._inflight:
                    future.cancel()
                self._inflight.clear()
                raise SocketError(f"sending to the WebSocket of call {self.call_uuid or self.link} failed: "
                                  f"{exc or type(exc).__name__}") from exc

    @property
    def pacer(self):
        """The paced sender (created on first use): exact 20 ms frames on a deadline schedule."""
        if self._pacer is None:
            from labkit.media.pacer import PacedSender

            speed = self.hub.speed
            if speed == 1.0:
                self._pacer = PacedSender(self._send, self.rate)
            else:  # a sandbox running faster than real time: pace by its clock, not the wall's
                self._pacer = PacedSender(self._send, self.rate, clock=lambda: time.monotonic() * speed,
                                          sleep=lambda seconds: time.sleep(seconds / speed))
        return self._pacer

    def play(self, source, rate: int | None = None):
        """Send audio (a file name the lab serves, a path, samples with `rate`, or a Recording) into the
        call, paced; returns a PlayHandle (`.wait()`, `.cancel()`)."""
        self._check_open()
        if (isinstance(source, str) and "/" not in source and not Path(source).exists()
                and self.hub.resolve_audio is not None):
            source = self.hub.resolve_audio(source)
        return self.pacer.play(source, rate)

    def echo(self, on: bool = True) -> None:
        """Send every frame that arrives straight back (paced), so the caller hears themself."""
        self._check_open()
        self.echoing = on

    def clear(self) -> int:
        """Drop audio not yet sent, and tell the platform to drop what it has buffered."""
        self._check_open()
        dropped = self.pacer.clear() if self._pacer is not None else 0
        self._send(protocol.clear_command())
        return dropped

    def notify(self, payload: dict[str, Any]) -> None:
        """Ask the platform to report (websocket:notify) once the audio queued before this has played.

        Audio still in the lab's own queue counts too, so the command goes out after it."""
        self._check_open()

        def send_when_drained() -> None:
            while self._pacer is not None and self._pacer.queued and self.open:
                time.sleep(0.005)
            if self.open:
                try:
                    self._send(protocol.notify_command(payload))
                except SocketError:
                    pass  # closed meanwhile: nothing left to notify about

        threading.Thread(target=send_when_drained, name="labkit-socket-notify", daemon=True).start()

    def _check_open(self) -> None:
        if not self.open:
            raise SocketError(f"The WebSocket of call {self.call_uuid or self.link} is closed; "
                              "start a new call with a websocket connect to send audio.")

    # -- closing -------------------------------------------------------------------------------
    def close(self, timeout: float = 1.0) -> bool:
        """Close the socket from the lab's side (the platform then posts 'disconnected').

        Returns False if the peer did not take the close frame in time and its connection was cut."""
        if self.closed.is_set() or self._loop.is_closed():
            return True
        future = asyncio.run_coroutine_threadsafe(self._aclose(timeout), self._loop)
        try:
            return bool(future.result(timeout + 0.5))
        except Exception:  # noqa: BLE001 - the loop is gone or stuck: cut the connection
            self._abort()
            return False

    async def _aclose(self, timeout: float) -> bool:
        from labkit.server.limits import send_within

        try:
            await send_within(self._asgi_send, {"type": "websocket.close", "code": 1000}, timeout, self._transport)
            return True
        except Exception:  # noqa: BLE001 - already closed, or cut for not reading
            self._abort()
            return False

    def _abort(self) -> None:
        if self._transport is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._transport.abort)

    def _finish(self) -> None:
        """The connection ended (on the loop): finish the recording after its last frame."""
        if self.closed.is_set() or self.ended_at is not None:
            return
        self.ended_at = datetime.now(timezone.utc)
        if self._pacer is not None:
            threading.Thread(target=self._pacer.close, name="labkit-pacer-close", daemon=True).start()
        if self._tracked:
            self.hub.workers.writer.track(self)  # it closes the recording after the frames queued before this
        else:
            self._close_recording()  # every frame is already in the file

    def _close_recording(self) -> None:
        """On the writer thread, after the last frame: close the WAV, list it, and say so."""
        if self._recorder is not None:
            self._recorder.close()
        self.hub.finished(self)  # listed as a recording before anyone can see it closed
        self.closed.set()
        self._event({"status": "socket-closed", "frames_received": self.frames_received,
                     "frames_malformed": self.frames_malformed, "frames_shed": self.frames_shed,
                     "recording": str(self.path) if self._recorder is not None else None})

    @property
    def has_audio(self) -> bool:
        """Has a frame arrived? (The WAV is created with the first one.)"""
        return self._has_audio

    @property
    def frames_written(self) -> int:
        """Frames in the recording's file so far: 0 before the first one reaches the writer thread."""
        recorder = self._recorder
        return recorder.frames_written if recorder is not None else 0

    def recording(self) -> Recording:
        from labkit.media.recording import Recording

        if not self.path.is_file():  # nothing written (yet): no file exists
            import numpy as np

            return Recording(np.zeros(0, np.int16), self.rate, call_uuid=self.call_uuid,
                             started_at=self.started_at, frames_malformed=self.frames_malformed)
        return Recording(
            self.path, self.rate, call_uuid=self.call_uuid, started_at=self.started_at,
            frames_received=self.frames_received, frames_malformed=self.frames_malformed,
        )

    def __repr__(self) -> str:
        state = "open" if self.open else "closed"
        bad = f", {self.frames_malformed} malformed" if self.frames_malformed else ""
        return (f"WebSocket of call {str(self.call_uuid or '?')[:8]}, {state}: {self.rate} Hz, "
                f"{self.frames_received} frames received{bad}")
