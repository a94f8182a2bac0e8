"""The /socket endpoint: each call's WebSocket audio is recorded to its own WAV, and audio can be sent back.

One `SocketSession` per connection. The platform connects to the URI the lab put in the call's
connect script; that URI carries the lab's token (a tunnel makes the endpoint public) and a link id
that ties the connection to its call.
"""

from __future__ import annotations

import hmac
import html
import logging
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlparse

from flask import Flask, Response, request

from labkit import protocol
from labkit.errors import SocketError, WaitTimeout

if TYPE_CHECKING:  # pragma: no cover
    from labkit.events import EventLog
    from labkit.media.recording import Recording

log = logging.getLogger("labkit.socket")
CONNECT_TIMEOUT = 10.0  # seconds to wait for the websocket:connected message


class SocketSession:
    """One live WebSocket: records what arrives, sends what you play, forwards key presses."""

    def __init__(self, hub: SocketHub, ws, link: str | None, rate: int, headers: dict[str, Any], path: Path):
        from labkit.media.frames import frame_bytes
        from labkit.media.recorder import WavRecorder

        self.hub = hub
        self.ws = ws
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
        self._send_lock = threading.Lock()
        self._recorder = WavRecorder(path, rate, on_error=lambda why: self._event({"status": "recording-stopped", "reason": why, "recording": str(path)}))  # noqa: E501 - labkit#9 hook: the call goes on
        self._pacer = None
        self._frame_listeners: list = []

    # -- identity ------------------------------------------------------------------------------
    @property
    def call_uuid(self) -> str | None:
        return self.hub.call_for_link(self.link)

    @property
    def open(self) -> bool:
        return not self.closed.is_set()

    # -- receiving (runs on the connection's thread) ---------------------------------------------
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
        self.frames_received += 1
        self._recorder.write(frame)
        if self.echoing:
            self.pacer.echo(frame)
        for fn in list(self._frame_listeners):
            try:
                fn(frame)
            except Exception:  # noqa: BLE001 - a widget must not break the recording
                pass

    def on_text(self, text: str) -> None:
        message = protocol.parse(text)
        self._event({k: v for k, v in message.items()})

    def _event(self, payload: dict[str, Any]) -> None:
        self.hub.events.add("socket", {"uuid": self.call_uuid, "link": self.link, **payload})

    def add_frame_listener(self, fn) -> callable:
        """Call `fn(frame_bytes)` for every audio frame received (the live waveform widget uses this)."""
        self._frame_listeners.append(fn)
        return lambda: self._frame_listeners.remove(fn) if fn in self._frame_listeners else None

    # -- sending -----------------------------------------------------------------------------------
    def _send(self, data: bytes | str) -> None:
        with self._send_lock:
            self.ws.send(data)

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
                self._send(protocol.notify_command(payload))

        threading.Thread(target=send_when_drained, name="labkit-socket-notify", daemon=True).start()

    def _check_open(self) -> None:
        if not self.open:
            raise SocketError(f"The WebSocket of call {self.call_uuid or self.link} is closed; "
                              "start a new call with a websocket connect to send audio.")

    # -- closing -------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the socket from the lab's side (the platform then posts 'disconnected')."""
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001
            pass
        self._finish()

    def _finish(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self.ended_at = datetime.now(timezone.utc)
        if self._pacer is not None:
            self._pacer.close()
        self._recorder.close()
        self._event({"status": "socket-closed", "frames_received": self.frames_received,
                     "frames_malformed": self.frames_malformed, "recording": str(self.path)})

    def recording(self) -> Recording:
        from labkit.media.recording import Recording

        return Recording(
            self.path, self.rate, call_uuid=self.call_uuid, started_at=self.started_at,
            frames_received=self.frames_received, frames_malformed=self.frames_malformed,
        )

    def __repr__(self) -> str:
        state = "open" if self.open else "closed"
        return (f"<SocketSession {state} call={self.call_uuid} rate={self.rate} frames={self.frames_received} "
                f"malformed={self.frames_malformed}>")


def _shutdown(ws) -> None:
    """End the TCP connection now. Closing the socket object is not enough under werkzeug: its request
    handler keeps the descriptor open (and may wait for a keep-alive request), so the platform would
    see the close frame but no end of connection until its own close timeout."""
    try:
        ws.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


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
    """All WebSocket sessions of one lab, the token that guards them, and link -> call bindings."""

    def __init__(self, events: EventLog, *, folder: Path | None = None,
                 resolve_audio: Callable[[str], Path] | None = None, speed: float = 1.0):
        self.events = events
        self.speed = speed  # the platform's clock rate: the sandbox may run faster than real time
        self.resolve_audio = resolve_audio
        self.token = secrets.token_urlsafe(18)
        self.folder = Path(folder) if folder else Path.cwd() / "recordings"
        self.sessions: list[SocketSession] = []
        self._links: dict[str, str] = {}
        self._cond = threading.Condition()

    # -- addresses and bindings ------------------------------------------------------------------
    def url(self, ws_base: str, link: str | None = None) -> str:
        return f"{ws_base}/socket?" + urlencode({"token": self.token, "link": link or secrets.token_hex(6)})

    def bind_links(self, ncco: Iterable[dict[str, Any]], call_uuid: str) -> None:
        """Tie every lab socket URI in a call script to that call, so its recording knows its call."""
        for action in ncco:
            for endpoint in action.get("endpoint", []) if isinstance(action, dict) else []:
                uri = endpoint.get("uri", "") if isinstance(endpoint, dict) else ""
                link = parse_qs(urlparse(uri).query).get("link", [None])[0]
                if link and "/socket" in uri:
                    with self._cond:
                        self._links.setdefault(link, call_uuid)
                        self._cond.notify_all()

    def call_for_link(self, link: str | None) -> str | None:
        return self._links.get(link) if link else None

    # -- the endpoint ---------------------------------------------------------------------------
    def register(self, app: Flask) -> None:
        from flask_sock import Sock

        sock = Sock(app)

        @app.before_request
        def guard() -> Response | None:
            if request.path == "/socket":
                given = request.args.get("token", "")
                if not hmac.compare_digest(given.encode(), self.token.encode()):
                    self.events.add("socket", {"status": "refused", "reason":
                                                   "WebSocket without the lab's token refused"})
                    return Response("This WebSocket needs the lab's token (use lab.socket_url()).\n",
                                    status=403, mimetype="text/plain")
            return None

        @sock.route("/socket")
        def socket(ws) -> None:
            self._serve(ws, request.args.get("link"))

    def _serve(self, ws, link: str | None) -> None:
        try:
            self._converse(ws, link)
        finally:
            _shutdown(ws)

    def _converse(self, ws, link: str | None) -> None:
        from simple_websocket import ConnectionClosed

        from labkit.media.frames import parse_content_type

        try:
            first = ws.receive(timeout=CONNECT_TIMEOUT)
        except ConnectionClosed:
            return
        hello = protocol.parse(first) if isinstance(first, str) else {}
        if hello.get("event") != protocol.CONNECTED:
            self.events.add("socket", {"status": "refused", "link": link, "reason":
                                           "the first message was not websocket:connected"})
            ws.close(reason=1008, message="expected websocket:connected")
            return
        try:
            rate = parse_content_type(str(hello.get("content-type", "")))
        except SocketError as exc:
            self.events.add("socket", {"status": "refused", "link": link, "reason": str(exc)})
            ws.close(reason=1003, message="unsupported content-type")
            return
        headers = {k: v for k, v in hello.items() if k not in ("event", "content-type")}
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        name = re.sub(r"[^A-Za-z0-9_-]", "", self.call_for_link(link) or link or "call")[:36]
        path = self.folder / f"{stamp}-{name}-{secrets.token_hex(3)}.wav"
        session = SocketSession(self, ws, link, rate, headers, path)
        with self._cond:
            self.sessions.append(session)
            self._cond.notify_all()
        session._event({"event": protocol.CONNECTED, "content-type": hello.get("content-type"), **headers})
        try:
            while True:
                data = ws.receive()
                if data is None:
                    continue
                if isinstance(data, (bytes, bytearray)):
                    session.on_frame(bytes(data))
                else:
                    session.on_text(data)
        except ConnectionClosed:
            pass
        finally:
            session._finish()

    # -- lookups ---------------------------------------------------------------------------------
    def session_for(self, call_uuid: str, timeout: float = 10.0) -> SocketSession:
        """The newest session of a call, waiting for it to connect."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [s for s in self.sessions if s.call_uuid == call_uuid]
                if found:
                    return found[-1]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WaitTimeout(
                        f"No WebSocket from call {call_uuid} within {timeout:g} s. Its script needs a connect "
                        "action to the lab's socket: labkit.ncco.websocket(lab).")
                self._cond.wait(remaining)

    def recordings(self) -> RecordingList:
        with self._cond:
            sessions = list(self.sessions)
        return RecordingList(s.recording() for s in sessions if s.path.exists())  # labkit#9: a failed recorder

    def close_all(self) -> None:
        with self._cond:
            sessions = list(self.sessions)
        for session in sessions:
            session.close()
