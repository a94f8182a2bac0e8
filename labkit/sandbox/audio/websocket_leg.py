"""WebSocket legs: the platform dials the lab's WebSocket server and exchanges 20 ms L16 frames.

As on Vonage (reference section 5): the platform is the *client*; the first message is text
`{"event":"websocket:connected","content-type":...}` with the endpoint's `headers` flattened to the top
level; then binary frames of 20 ms s16le mono (320/640/960 bytes at 8/16/24 kHz) carrying the mix of the
other parties, paced by the audio clock. What the app sends back is buffered (at most 3072 frames, ~60 s;
extra frames are dropped and counted) and played into the call one frame per tick. Key presses arrive
as `{"event":"websocket:dtmf","digit":"5","duration":260}`.

UNCONFIRMED (no primary source; one place to change, `labkit.protocol`, shared with the lab): the control commands
`{"action":"clear"}` (drop queued audio, reply `{"event":"websocket:cleared"}`) and
`{"action":"notify","payload":{...}}` (reply `{"event":"websocket:notify","payload":...}` once all audio
queued before it has played). After `clear`, notify markers that were waiting are answered at once
(the audio they waited for is gone). Headers are not sent on the HTTP upgrade, only in the first
message; `authorization` is: `{"type":"vonage"}` sends `Bearer <signed-webhook JWT>` (needs a signature
secret), `{"type":"custom","value":v}` sends `v` verbatim. The platform closes with code 1000 on hangup.

Threads: one reader (messages from the app) and one writer (frames and events to the app), so a slow app
can never stall the shared audio clock: the writer's queue is bounded and overflow is counted.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from labkit import protocol
from labkit.media.frames import content_type
from labkit.sandbox.audio.mixer import BUS_RATE, to_int16, upsample

log = logging.getLogger("labkit.sandbox.websocket")

PLAYBACK_BUFFER_FRAMES = 3072  # "Vonage will only buffer 3072 messages" (current tutorial)
# Jitter buffer (UNCONFIRMED depth: any real platform has one, Vonage does not document its size):
# after running dry, playback waits until this many frames are queued (or no new frame came for that
# many ticks), so an app pacing at exactly 20 ms never hears a gap from a late frame. 60 ms.
JITTER_FRAMES = 3
SEND_QUEUE_FRAMES = 3000  # frames waiting for a slow app before new ones are dropped
CLOSE_CODE = 1000
_CLOSE = object()


class _NotifyMarker:
    __slots__ = ("payload",)

    def __init__(self, payload: Any) -> None:
        self.payload = payload


class WebsocketEndpoint:
    """The audio endpoint of a WebSocket leg (the clock calls `pull48` and `deliver` once per tick)."""

    def __init__(self, uri: str, rate: int, *, headers: dict | None = None,
                 authorization: dict | None = None, signer: Callable[[], str | None] | None = None,
                 on_app_closed: Callable[[], None] | None = None) -> None:
        self.uri = uri
        self.rate = rate
        self.headers = dict(headers or {})
        self.authorization = authorization
        self._signer = signer
        self._on_app_closed = on_app_closed
        self.frame_bytes = rate // 50 * 2
        self._ws: Any = None
        self._inbound: deque[bytes | _NotifyMarker] = deque()
        self._inbound_frames = 0
        self._partial = b""
        self._playing = False  # the jitter buffer has filled and frames are being played out
        self._since_arrival = 0  # ticks since the app last sent audio
        self._in_lock = threading.Lock()
        self._out: queue.Queue[Any] = queue.Queue()
        self._closing = threading.Event()  # no more frames to the app (either side closed)
        self._platform_closed = False  # the platform (hangup) closed, not the app
        self._reader: threading.Thread | None = None
        self._writer: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.frames_sent = 0
        self.frames_received = 0
        self.frames_dropped = 0  # beyond the 3072-frame playback buffer
        self.frames_unsent = 0  # our frames a slow app did not take in time
        self.messages_malformed = 0  # binary messages that were not exactly one frame
        self.texts_received: list[Any] = []
        self.close_code: int | None = None
        self.error: str | None = None

    # ------------------------------------------------------------------ connection

    def open(self, timeout: float = 10.0) -> bool:
        """Connect and send websocket:connected; False (with `error`) when the app is unreachable."""
        from websockets.sync.client import connect

        extra: dict[str, str] = {}
        auth = self.authorization or {}
        if auth.get("type") == "custom" and auth.get("value"):
            extra["Authorization"] = str(auth["value"])
        elif auth.get("type") == "vonage" and self._signer is not None:
            token = self._signer()
            if token:
                extra["Authorization"] = f"Bearer {token}"
        try:
            self._ws = connect(
                self.uri, additional_headers=extra or None, open_timeout=timeout, close_timeout=2,
                max_size=None, compression=None, user_agent_header="labkit-sandbox/1.0",
            )
        except Exception as exc:  # refused, DNS, HTTP status, handshake time-out ...
            self.error = f"{exc.__class__.__name__}: {exc}"
            return False
        extra_fields = {k: v for k, v in self.headers.items() if k not in ("event", "content-type")}
        # queued first, sent when `start_streaming` starts the writer: after the leg has joined the call,
        # so an app that reacts to websocket:connected never misses the first frames
        self._out.put(protocol.connected(content_type(self.rate), extra_fields))
        self._reader = threading.Thread(target=self._read_loop, name="sandbox-ws-reader", daemon=True)
        self._reader.start()
        return True

    def start_streaming(self) -> None:
        """Send websocket:connected, then the frames the clock queues (call once the leg is answered)."""
        with self._start_lock:
            if self._writer is not None or self._ws is None:
                return
            self._writer = threading.Thread(target=self._write_loop, name="sandbox-ws-writer", daemon=True)
            self._writer.start()

    def close(self) -> None:
        """Platform-side close (hangup): flush queued frames, then close with code 1000. Non-blocking."""
        if self._platform_closed:
            return
        self._platform_closed = True
        self._closing.set()
        with self._start_lock:
            never_started = self._writer is None and self._ws is not None
        if never_started:  # hung up before it was answered: no hello, no frames, just close
            with self._out.mutex:
                self._out.queue.clear()
        self._out.put(_CLOSE)
        if never_started:
            self.start_streaming()

    def join(self, timeout: float = 2.0) -> None:
        for thread in (self._writer, self._reader):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout)

    @property
    def open_(self) -> bool:
        return self._ws is not None and not self._closing.is_set()

    # ------------------------------------------------------------------ threads

    def _write_loop(self) -> None:
        ws = self._ws
        while True:
            item = self._out.get()
            if item is _CLOSE:
                try:
                    ws.close(CLOSE_CODE)
                except Exception:
                    pass
                return
            try:
                ws.send(item)
            except Exception:
                # the app went away; the reader reports it
                self._closing.set()
                return
            if isinstance(item, bytes):
                self.frames_sent += 1

    def _read_loop(self) -> None:
        ws = self._ws
        try:
            for message in ws:
                if isinstance(message, bytes):
                    self._take_audio(message)
                else:
                    self._take_text(message)
        except Exception:
            pass
        finally:
            try:
                self.close_code = ws.close_code
            except Exception:
                self.close_code = None
            app_closed = not self._platform_closed
            self._closing.set()
            self._out.put(_CLOSE)
            if app_closed and self._on_app_closed is not None:
                try:
                    self._on_app_closed()
                except Exception:
                    log.exception("websocket close handler failed")

    def _take_audio(self, data: bytes) -> None:
        self.frames_received += 1
        if len(data) != self.frame_bytes:
            self.messages_malformed += 1
        with self._in_lock:
            self._since_arrival = 0
            buf = self._partial + data
            size = self.frame_bytes
            whole = len(buf) - len(buf) % size
            for i in range(0, whole, size):
                if self._inbound_frames >= PLAYBACK_BUFFER_FRAMES:
                    self.frames_dropped += 1
                    continue
                self._inbound.append(buf[i:i + size])
                self._inbound_frames += 1
            self._partial = buf[whole:]

    def _take_text(self, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            self.texts_received.append(text)
            return
        self.texts_received.append(msg)
        if not isinstance(msg, dict):
            return
        action = msg.get("action")
        if action == protocol.CLEAR_ACTION:
            with self._in_lock:
                markers = [m for m in self._inbound if isinstance(m, _NotifyMarker)]
                self._inbound.clear()
                self._inbound_frames = 0
                self._partial = b""
                self._playing = False
            self._send(protocol.cleared())
            for marker in markers:
                self._send(protocol.notified(marker.payload))
        elif action == protocol.NOTIFY_ACTION:
            payload = msg.get("payload")
            with self._in_lock:
                if self._inbound_frames:
                    self._inbound.append(_NotifyMarker(payload))
                    return
            self._send(protocol.notified(payload))

    def _send(self, text: str) -> None:
        if not self._closing.is_set():
            self._out.put(text)

    def send_dtmf(self, digit: str, duration_ms: int) -> None:
        """Forward a key press from the call."""
        self._send(protocol.dtmf(digit, int(duration_ms)))

    # ------------------------------------------------------------------ clock side

    def pull48(self) -> np.ndarray | None:
        """The next frame the app sent (on the 48 kHz bus), or None when its buffer is empty."""
        if not self._inbound:
            self._playing = False
            return None
        notify: list[Any] = []
        frame = None
        with self._in_lock:
            self._since_arrival += 1
            while self._inbound and isinstance(self._inbound[0], _NotifyMarker):
                notify.append(self._inbound.popleft().payload)  # type: ignore[union-attr]
            if not self._playing and (self._inbound_frames >= JITTER_FRAMES
                                      or (self._inbound_frames and self._since_arrival >= JITTER_FRAMES)):
                self._playing = True
            if self._inbound and self._playing:
                frame = self._inbound.popleft()
                self._inbound_frames -= 1
                while self._inbound and isinstance(self._inbound[0], _NotifyMarker):
                    notify.append(self._inbound.popleft().payload)  # type: ignore[union-attr]
        for payload in notify:
            self._send(protocol.notified(payload))
        if frame is None:
            return None
        samples = np.frombuffer(frame, dtype="<i2").astype(np.float32)
        return upsample(samples, BUS_RATE // self.rate)

    def deliver(self, heard: np.ndarray | None, n: int) -> None:
        """Send 20 ms of the call's audio to the app as one binary frame."""
        if self._ws is None or self._closing.is_set():
            return
        if self._out.qsize() >= SEND_QUEUE_FRAMES:
            self.frames_unsent += 1
            return
        if heard is None:
            data = bytes(n * 2)
        else:
            data = to_int16(heard).astype("<i2", copy=False).tobytes()
        self._out.put(data)

    @property
    def queued_frames(self) -> int:
        """Frames from the app waiting to be played into the call."""
        return self._inbound_frames

    def stats(self) -> dict[str, int]:
        return {
            "frames_sent": self.frames_sent,
            "frames_received": self.frames_received,
            "frames_dropped": self.frames_dropped,
            "frames_unsent": self.frames_unsent,
            "messages_malformed": self.messages_malformed,
            "queued_frames": self._inbound_frames,
        }
