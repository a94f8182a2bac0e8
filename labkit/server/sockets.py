"""The /socket endpoint's state: each call's WebSocket audio is recorded to its own WAV, and audio can be sent back.

One `SocketSession` per connection. The platform connects to the URI the lab put in the call's
connect script; that URI carries the lab's token (a tunnel makes the endpoint public) and a link id
that ties the connection to its call. The connection itself is served on uvicorn's event loop by
`labkit.server.socket_endpoint`; sessions cross into that loop to send, each send within a bound.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit import protocol
from labkit.errors import SocketError, WaitTimeout
from labkit.server.socket_links import SocketLinks
from labkit.server.socket_workers import SessionWorkers

if TYPE_CHECKING:  # pragma: no cover
    from labkit.events import EventLog
    from labkit.media.recording import Recording

log = logging.getLogger("labkit.socket")
SEND_WINDOW = 8  # messages (160 ms of audio) on their way to the event loop before a sender waits
SEND_TIMEOUT = 2.0  # seconds one frame may wait for a peer that stopped reading (LABKIT_SEND_TIMEOUT)


class SocketSession:
    """One live WebSocket: records what arrives, sends what you play, forwards key presses.

    Frames arrive on the server's event loop, which only counts and queues them: the hub's writer
    thread records them and its listener thread runs frame listeners (labkit.server.socket_workers).
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
        self._has_audio = False
        self.recording_error: str | None = None  # why the recording stopped early, if it did
        self._pacer = None
        self._frame_listeners: list = []

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
        self.hub.workers.write(self, frame)  # written in order on the writer thread, not on the loop
        if self.echoing:
            self.pacer.echo(frame)
        if self._frame_listeners:
            self.hub.workers.dispatch(self, frame)

    def _write(self, frame: bytes) -> None:
        """On the writer thread: append one frame (the WAV is created with the first one).

        The recorder never raises on a full disk or an unwritable folder: it keeps a valid WAV of what
        was written and calls `_recording_stopped` once, and the call goes on."""
        if self._recorder is None:
            from labkit.media.recorder import WavRecorder

            self._recorder = WavRecorder(self.path, self.rate, on_error=self._recording_stopped)
        self._recorder.write(frame)

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
        self.hub.workers.write(self, None)

    def _close_recording(self) -> None:
        """On the writer thread, after the last frame: close the WAV, list it, and say so."""
        if self._recorder is not None:
            self._recorder.close()
        self.hub.finished(self)  # listed as a recording before anyone can see it closed
        self.closed.set()
        self._event({"status": "socket-closed", "frames_received": self.frames_received,
                     "frames_malformed": self.frames_malformed,
                     "recording": str(self.path) if self._recorder is not None else None})

    @property
    def has_audio(self) -> bool:
        """Has a frame arrived? (The WAV is created with the first one.)"""
        return self._has_audio

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
        return (f"<SocketSession {state} call={self.call_uuid} rate={self.rate} frames={self.frames_received} "
                f"malformed={self.frames_malformed}>")


class RecordingList(list):
    """A list of recordings that shows as a table in a notebook."""

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in ("#", "call", "start", "duration", "rate", "frames", "malformed"))
        rows = []
        for i, r in enumerate(self):
            start = f"{r.started_at:%H:%M:%S}" if r.started_at else ""
            rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
                i, (r.call_uuid or "")[:8], start, f"{r.duration:.2f} s", r.rate, r.frames_received,
                r.frames_malformed)) + "</tr>")
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


class SocketHub:
    """The open WebSocket sessions of one lab, the recordings of closed ones, and the socket links.

    Closed sessions leave memory (only the last few stay for lookups); their recordings stay listed.
    """

    RECENT = 16  # closed sessions kept for `session_for` and `sessions`

    def __init__(self, events: EventLog, *, folder: Path | None = None,
                 resolve_audio: Callable[[str], Path] | None = None, speed: float = 1.0):
        self.events = events
        self.speed = speed  # the platform's clock rate: the sandbox may run faster than real time
        self.resolve_audio = resolve_audio
        self.folder = Path(folder) if folder else Path.cwd() / "recordings"
        # Import the recorder (and soundfile, ~0.1 s) now, not when the first frame of a call arrives.
        import labkit.media.recorder  # noqa: F401
        self._cond = threading.Condition()
        self.links = SocketLinks(self._cond)
        self._open: list[SocketSession] = []
        self._recent: deque[SocketSession] = deque(maxlen=self.RECENT)
        self._finished: list[tuple] = []  # recordings of closed sessions: (path, rate, call, start, frames, bad)
        self.workers = SessionWorkers()

    @property
    def sessions(self) -> list[SocketSession]:
        """The last few closed sessions, then the open ones (oldest first)."""
        with self._cond:
            return [*self._recent, *self._open]

    # -- addresses and bindings ------------------------------------------------------------------
    def url(self, ws_base: str, link: str | None = None) -> str:
        """A socket URI with a fresh one-use token (see labkit.server.socket_links)."""
        return self.links.url(ws_base, link)

    def issue(self, ncco: list[dict[str, Any]], call_uuid: str | None = None) -> list[dict[str, Any]]:
        """The script as handed out: fresh one-use tokens in every lab socket URI, bound to the call."""
        return self.links.issue(ncco, call_uuid)

    def bind_links(self, ncco: Iterable[dict[str, Any]], call_uuid: str) -> None:
        """Tie every lab socket URI in a call script to that call, so its recording knows its call."""
        self.links.bind(ncco, call_uuid)

    def call_for_link(self, link: str | None) -> str | None:
        return self.links.call_for(link)

    # -- the endpoint ---------------------------------------------------------------------------
    def token_ok(self, given: str, link: str | None) -> bool:
        """Does the token in a socket URI open the socket? Each token works once, for its own link."""
        return self.links.use(given, link)

    async def serve_asgi(self, scope, receive, send, limits, refusals, allowed_hosts=None) -> None:
        """Serve one `/socket` connection (uvicorn's ASGI WebSocket scope)."""
        from labkit.server.socket_endpoint import serve

        await serve(self, scope, receive, send, limits, refusals, allowed_hosts)

    def open_session(self, link: str | None, rate: int, headers: dict[str, Any], **io: Any) -> SocketSession:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        name = re.sub(r"[^A-Za-z0-9_-]", "", self.call_for_link(link) or link or "call")[:36]
        path = self.folder / f"{stamp}-{name}-{secrets.token_hex(3)}.wav"
        session = SocketSession(self, link, rate, headers, path, **io)
        with self._cond:
            self._open.append(session)
            self._cond.notify_all()
        return session

    def finished(self, session: SocketSession) -> None:
        """A session ended (on the loop): keep its recording's details, let the session go."""
        with self._cond:
            if session in self._open:
                self._open.remove(session)
            self._recent.append(session)
            if session._recorder is not None and session.path.exists():  # a file was written (maybe cut short)
                self._finished.append((session.path, session.rate, session.call_uuid, session.started_at,
                                       session.frames_received, session.frames_malformed))
            self._cond.notify_all()

    # -- lookups ---------------------------------------------------------------------------------
    def session_for(self, call_uuid: str, timeout: float = 10.0) -> SocketSession:
        """The newest session of a call, waiting for it to connect."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [s for s in (*self._recent, *self._open) if s.call_uuid == call_uuid]
                if found:
                    return found[-1]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WaitTimeout(
                        f"No WebSocket from call {call_uuid} within {timeout:g} s. Its script needs a connect "
                        "action to the lab's socket: labkit.ncco.websocket(lab).")
                self._cond.wait(remaining)

    def recordings(self) -> RecordingList:
        """Every recording, oldest first: closed sessions' files, then open sessions' (still growing)."""
        from labkit.media.recording import Recording

        with self._cond:
            finished = list(self._finished)
            live = [s for s in self._open if s.has_audio and s.path.exists()]
        done = [Recording(path, rate, call_uuid=call, started_at=start, frames_received=frames,
                          frames_malformed=bad) for path, rate, call, start, frames, bad in finished
                if path.is_file()]  # a file the user deleted (or a disk since unmounted) is no longer listed
        return RecordingList(sorted(done + [s.recording() for s in live], key=lambda r: r.started_at))

    def close_all(self, timeout: float = 1.0) -> str | None:
        """Close every open session, all at once, within about `timeout` s; say how many had to be cut."""
        with self._cond:
            sessions = [s for s in self._open if s.open]
        cut = 0
        loops = {s._loop for s in sessions if not s._loop.is_closed()}
        for loop in loops:  # one gather per loop: 500 sockets close in one round trip, not 500
            mine = [s for s in sessions if s._loop is loop]

            async def close_them(mine=mine) -> list[bool]:
                return await asyncio.gather(*(s._aclose(timeout) for s in mine))

            future = asyncio.run_coroutine_threadsafe(close_them(), loop)
            try:
                cut += len(mine) - sum(future.result(timeout + 0.5))
            except Exception:  # noqa: BLE001 - the loop is stuck or gone: cut them all
                future.cancel()
                for session in mine:
                    session._abort()
                cut += len(mine)
        return f"{cut} WebSocket(s) whose peer did not take the close" if cut else None
