"""`/browser-audio`: a notebook page's live call audio, both ways, on one WebSocket straight to the lab.

Why: the notebook's widget comm carries audio kernel -> Jupyter server -> the page's main thread, a queue at
each hop (call -> speaker 99 ms and mic -> call 94 ms measured, against 80 and 60 ms for a softphone). This
is the page's own connection to the lab's server, with the messages of the sandbox page's phone socket
(labkit/sandbox/control/phone_audio.py), so one piece of page code (static/wstransport.js) serves both:

* out: each 20 ms of call audio as one binary message of 16-bit little-endian PCM at the call's rate, sent
  the moment the call has it; before some of them (every `META_EVERY`th, and when the rate changes or frames
  were dropped), a text message `{"t": epoch_ms, "age_ms": ms, "rate": hz}` describing the next one;
* in: binary messages of the same format are microphone audio for the call; `{"listen": bool}` starts and
  pauses the audio out; `{"t": epoch_ms}` dates the next piece of voice. Back every 25 pieces:
  `{"mic": {...}}`, the voice's delay by stage.

Who may open it: the lab may be public through a tunnel, so a connection needs a widget's token (unguessable,
issued per widget, handed to the page through the widget's traitlets), must come from loopback (the TCP
peer, a loopback Host, and none of a proxy's forwarding headers: the ngrok agent connects from loopback too,
but names the tunnel's host and adds X-Forwarded-For), and must carry an http(s) Origin (a browser's; kept
in `origins`). Limits: `MAX_SOCKETS` open, a message at most `MAX_MESSAGE_BYTES`, voice at most 1.5x real
time over any second (else close 1008). A newer connection with the same token replaces the older one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
from collections import deque
from typing import Any, Protocol
from urllib.parse import parse_qs, urlparse

log = logging.getLogger("labkit.server")

__all__ = ["PATH", "AudioPeer", "BrowserAudioHub", "BrowserAudioSocket"]

PATH = "/browser-audio"
MAX_SOCKETS = 16  # open at once in one lab (a panel holds one per page showing it)
MAX_MESSAGE_BYTES = 16 * 1024  # the page sends 20 ms (320-960 bytes)
REPLACED = 4000  # the close code that tells a page not to reconnect (static/wstransport.js)
RATE_FACTOR = 1.5  # voice may arrive this much faster than real time, with a one-second burst
BACKLOG_FRAMES = 25  # call audio kept for a slow page (0.5 s); older frames are dropped
META_EVERY = 5  # a {"t"} message before every 5th frame: the page's delay figures, ten a second
SEND_TIMEOUT = 2.0  # seconds a send may wait for a page that stopped reading (the lab's LABKIT_SEND_TIMEOUT default)
MIC_EVERY = 25  # {"mic": figures} back after every 25 pieces of voice
LOOPBACK_PEERS = ("127.", "::1", "::ffff:127.")
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})
FORWARDED = (b"x-forwarded-for", b"forwarded", b"x-real-ip", b"x-forwarded-host")


class AudioPeer(Protocol):
    """The kernel side a token opens (labkit.widgets.call_audio.CallAudio): called on the server's loop."""

    rate: int

    def direct_opened(self, conn: BrowserAudioSocket) -> None: ...
    def direct_closed(self, conn: BrowserAudioSocket) -> None: ...
    def direct_voice(self, samples: bytes, sent_ms: float | None) -> None: ...
    def direct_figures(self) -> dict: ...


class BrowserAudioSocket:
    """One page's connection. `send_audio` may be called from any thread (it never waits)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, send: Any, origin: str) -> None:
        self.loop, self._send, self.origin = loop, send, origin
        self.listening = False  # the page asked for the call's audio
        self.opened = time.time()
        self.frames_sent = 0
        self.frames_dropped = 0
        self._frames: deque[tuple[bytes, float, int]] = deque(maxlen=BACKLOG_FRAMES)
        self._texts: deque[dict] = deque(maxlen=8)  # text messages for the page, sent by the writer
        self._wake = asyncio.Event()
        self._closing: tuple[int, str] | None = None
        self._rate = 0
        self._tokens, self._refilled = 1.0, time.monotonic()
        self._next_t: float | None = None
        self._pieces = 0

    # -- out (any thread) -------------------------------------------------------------------------
    def send_audio(self, data: bytes, made_ms: float, rate: int) -> None:
        """Queue one frame of call audio (`made_ms`: when the call had it, epoch ms) for the page."""
        if self.listening and not self.loop.is_closed():
            try:
                self.loop.call_soon_threadsafe(self._put, data, made_ms, rate)
            except RuntimeError:  # the loop closed under us (the lab stopping)
                pass

    def _put(self, data: bytes, made_ms: float, rate: int) -> None:
        if len(self._frames) == self._frames.maxlen:
            self.frames_dropped += 1
            self._rate = 0  # the next frame out says so (a gap)
        self._frames.append((data, made_ms, rate))
        self._wake.set()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close from any thread."""
        try:
            self.loop.call_soon_threadsafe(self._close_now, code, reason)
        except RuntimeError:
            pass

    def _close_now(self, code: int, reason: str) -> None:
        self._closing = self._closing or (code, reason)
        self._wake.set()

    async def _out(self, message: dict) -> None:
        """Send within SEND_TIMEOUT: a page that stops reading is closed (TimeoutError), not waited for."""
        await asyncio.wait_for(self._send(message), SEND_TIMEOUT)

    async def _text(self, obj: dict) -> None:
        await self._out({"type": "websocket.send", "text": json.dumps(obj)})

    async def write(self) -> None:
        """The writer task: frames out as they come, then the close when asked for."""
        try:
            await self._write()
        except asyncio.TimeoutError:
            log.debug("browser audio: a page stopped reading for %g s; closing its socket", SEND_TIMEOUT)

    async def _write(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._texts and self._closing is None:
                await self._text(self._texts.popleft())
            while self._frames and self._closing is None:
                data, made, rate = self._frames.popleft()
                if self.frames_sent % META_EVERY == 0 or rate != self._rate:
                    # age: half a 20 ms frame (its mean sample's) + the hand-off to this loop
                    now = time.time() * 1000
                    await self._text({"t": round(now, 1), "age_ms": round(10 + now - made, 1), "rate": rate})
                    self._rate = rate
                await self._out({"type": "websocket.send", "bytes": data})
                self.frames_sent += 1
            if self._closing is not None:
                code, reason = self._closing
                await self._out({"type": "websocket.close", "code": code, "reason": reason})
                return

    # -- in (the loop) ----------------------------------------------------------------------------
    def on_message(self, peer: AudioPeer, data: bytes | None, text: str | None) -> bool:
        """Handle one message from the page; False when the connection must close (`_closing` says why)."""
        size = len(data) if data is not None else len((text or "").encode())
        if size > MAX_MESSAGE_BYTES:
            self._close_now(1009, f"a message is at most {MAX_MESSAGE_BYTES} bytes")
            return False
        rate = max(8000, int(peer.rate or 16000))
        now = time.monotonic()
        self._tokens = min(1.0, self._tokens + (now - self._refilled) * RATE_FACTOR)
        self._refilled = now
        self._tokens -= max(0.01, size / 2 / rate) if data is not None else 0.002
        if self._tokens < 0:
            self._close_now(1008, "more voice than real time: send 20 ms of audio every 20 ms")
            return False
        if text is not None:
            try:
                msg = json.loads(text)
            except ValueError:
                self._close_now(1007, "text messages are JSON")
                return False
            if isinstance(msg, dict):
                if isinstance(msg.get("listen"), bool):
                    self.listening = msg["listen"]
                    if not self.listening:
                        self._frames.clear()
                if isinstance(msg.get("t"), (int, float)):
                    self._next_t = float(msg["t"])
            return True
        if size % 2:
            self._close_now(1007, "voice is 16-bit PCM: an even number of bytes")
            return False
        sent, self._next_t = self._next_t, None
        if data:
            peer.direct_voice(bytes(data), sent)
            self._pieces += 1
            if self._pieces % MIC_EVERY == 0:
                self._texts.append({"mic": peer.direct_figures()})
                self._wake.set()
        return True


class BrowserAudioHub:
    """The tokens issued to widgets, and the open connections (see the module docstring)."""

    def __init__(self, refusals: Any = None) -> None:
        self.refusals = refusals  # labkit.server.limits.Refusals (set by the runner when None)
        self.origins: deque[tuple[float, str]] = deque(maxlen=50)  # (epoch s, Origin) of accepted connections
        self._peers: dict[str, AudioPeer] = {}
        self._open: dict[str, BrowserAudioSocket] = {}
        self._count = 0
        self._lock = threading.Lock()

    def register(self, peer: AudioPeer) -> str:
        """A fresh token that opens `peer` (a widget); hand it to that widget's page only."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._peers[token] = peer
        return token

    def unregister(self, token: str) -> None:
        """The token opens nothing from now on; its open connection is closed."""
        with self._lock:
            self._peers.pop(token, None)
            conn = self._open.pop(token, None)
        if conn is not None:
            conn.close(1000, "the widget closed")

    @staticmethod
    def url(host: str, port: int, token: str) -> str:
        return f"ws://{host}:{port}{PATH}?token={token}"

    def _refusal(self, scope: dict[str, Any], headers: dict[bytes, bytes]) -> str | None:
        peer = (scope.get("client") or ("", 0))[0] or ""
        if not peer.startswith(LOOPBACK_PEERS):
            return f"from {peer or 'an unknown peer'}, not loopback"
        host = headers.get(b"host", b"").decode("latin-1").lower()
        name = host.split("]")[0] + "]" if host.startswith("[") else host.rsplit(":", 1)[0]
        if name not in LOOPBACK_NAMES:
            return f"Host {host[:100]!r} is not a loopback name (a tunnel's request)"
        if any(h in headers for h in FORWARDED):
            return "forwarded by a proxy (a tunnel's request)"
        origin = urlparse(headers.get(b"origin", b"").decode("latin-1"))
        if origin.scheme not in ("http", "https") or not origin.netloc:
            return "no http(s) Origin (only a notebook page may open it)"
        return None

    async def serve(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Check, accept and serve one connection (uvicorn's ASGI WebSocket scope)."""
        if (await receive())["type"] != "websocket.connect":
            return
        headers = dict(scope.get("headers", ()))
        token = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
        why = self._refusal(scope, headers)
        with self._lock:
            peer = self._peers.get(token)
            if why is None and peer is None:
                why = "no valid token"
            if why is None and self._count >= MAX_SOCKETS:
                why = f"{MAX_SOCKETS} browser audio sockets are open already"
            if why is None:
                self._count += 1
        if why is not None or peer is None:
            if self.refusals is not None:
                self.refusals.count("browser-audio-refused", f"a browser audio socket refused: {why}", source="socket")
            await send({"type": "websocket.close", "code": 1008})
            return
        origin = headers.get(b"origin", b"").decode("latin-1")[:200]
        self.origins.append((time.time(), origin))
        conn = BrowserAudioSocket(asyncio.get_running_loop(), send, origin)
        try:
            await send({"type": "websocket.accept"})
            with self._lock:
                voided = token not in self._peers  # unregistered (or the lab stopping) since the check
                old = None if voided else self._open.get(token)
                if not voided:
                    self._open[token] = conn
            if voided:
                await send({"type": "websocket.close", "code": 1001, "reason": "the widget closed"})
                return
            if old is not None:
                old.close(REPLACED, "a newer connection from a page took its place")
            await conn._text({"event": "audio", "rate": int(peer.rate or 16000)})
            peer.direct_opened(conn)
            writer = asyncio.ensure_future(conn.write())
            try:
                await self._read(conn, peer, receive, writer)
            finally:
                conn._close_now(1000, "")
                try:
                    await asyncio.wait_for(writer, 1.0)
                except Exception:  # noqa: BLE001 - a timeout, or the peer is gone: nothing to tell it
                    writer.cancel()
                peer.direct_closed(conn)
        except (OSError, asyncio.TimeoutError):  # the page went away, or stopped reading
            pass
        finally:
            with self._lock:
                self._count -= 1
                if self._open.get(token) is conn:
                    del self._open[token]

    async def _read(self, conn: BrowserAudioSocket, peer: AudioPeer, receive: Any, writer: asyncio.Future) -> None:
        while not writer.done():
            get = asyncio.ensure_future(receive())
            await asyncio.wait({get, writer}, return_when=asyncio.FIRST_COMPLETED)
            if not get.done():  # the writer ended (a close was sent): stop reading
                get.cancel()
                return
            message = get.result()
            if message["type"] == "websocket.disconnect":
                return
            try:
                if not conn.on_message(peer, message.get("bytes"), message.get("text")):
                    await writer
                    return
            except Exception:  # noqa: BLE001 - a bug in the peer must not take the loop; the page falls back
                log.exception("browser audio: handling a message failed")
                conn._close_now(1011, "the lab failed on this message")

    def close_all(self) -> None:
        """The lab is stopping: no token opens anything any more, and every connection closes."""
        with self._lock:
            self._peers.clear()
            conns, self._open = list(self._open.values()), {}
        for conn in conns:
            conn.close(1001, "the lab stopped")

    @property
    def open_count(self) -> int:
        return self._count
