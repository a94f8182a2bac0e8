"""`GET /_labkit/phones/{number}/audio` as a WebSocket: a virtual phone's ears and voice, live, both ways
on one connection (the softphone page's Listen and Talk; any language's client).

Out: each 20 ms the phone hears, as one binary message of 16-bit little-endian PCM at 16 kHz (640 bytes),
sent the moment the sandbox's clock mixes it (the phone's listener), and now and then a text message
`{"t": epoch_ms, "age_ms": ms, "position": n}` describing the binary message after it (when it was sent,
how old its mean sample was then, its first sample's position in the phone's heard.wav): a page measures
the wire with it, and a client too slow for 0.5 s, which loses the oldest frames, sees where the next one
starts. In: binary messages of the same format are the phone's voice, put into the call live
(labkit.media.jitter.LiveVoice: a cushion as long as the measured jitter, pieces dropped to stay live);
`{"listen": false}` pauses the audio out, `{"t": epoch_ms}` dates the next piece of voice. Back to the
client every 25 pieces: `{"mic": {...}}`, the voice's delay by stage.

Why a WebSocket and not long polls: a listening page held one of the browser's ~6 connections per origin
per phone, and waited for 40 ms pieces; this pushes each frame as it is mixed. The sandbox's server is
werkzeug's threaded one, so the handshake and frames are websockets' sans-I/O protocol on the request's own
socket (`werkzeug.socket`), in the request's thread. The connection passed the control API's rule
(loopback, or the application's JWT) in `before_request`; a browser's `Origin` must also be the sandbox's
own (another site's page on this machine must not open a phone's microphone). Limits: a message is at
most 16 KB, voice arrives at most 1.5x real time over any second (else close 1008), at most 32 sockets.
"""

from __future__ import annotations

import json
import logging
import os
import select
import socket
import ssl
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from labkit.errors import InvalidInput
from labkit.media.jitter import LiveVoice
from labkit.sandbox.engine.phones import HEAR_RATE, VirtualPhone
from labkit.sandbox.engine.platform import Platform

log = logging.getLogger("labkit.sandbox.http")

__all__ = ["MAX_MESSAGE_BYTES", "MAX_SOCKETS", "is_upgrade", "serve"]

MAX_MESSAGE_BYTES = 16 * 1024  # half a second of 16 kHz voice: the page sends 20 ms (640 bytes)
MAX_SOCKETS = 32  # open phone sockets in the sandbox (each holds a thread)
RATE_FACTOR = 1.5  # voice may arrive this much faster than real time, with a one-second burst
BACKLOG_FRAMES = 25  # heard frames kept for a slow client (0.5 s); older ones are dropped
META_EVERY = 25  # a {"t"} message before every 25th heard frame (twice a second)
TAKEN = "labkit.socket_taken"  # set in the WSGI environ: the server must not write a response
_open = [0]
_open_lock = threading.Lock()


def is_upgrade(environ: dict) -> bool:
    return "websocket" in environ.get("HTTP_UPGRADE", "").lower()


def _origin(environ: dict) -> str:
    scheme = "https" if environ.get("wsgi.url_scheme") == "https" else "http"
    return f"{scheme}://{environ.get('HTTP_HOST', '')}"


class _Socket:
    """One phone socket: the protocol, its socket, and the frames waiting to go out."""

    def __init__(self, sock: socket.socket, proto: Any, phone: VirtualPhone, p: Platform) -> None:
        self.sock, self.proto, self.phone, self.p = sock, proto, phone, p
        self.listen = True
        self.frames: deque[tuple[np.ndarray, float, int]] = deque(maxlen=BACKLOG_FRAMES)
        self.sent = 0
        self.position = -1  # where the next frame out starts, in the phone's heard samples
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.voice = LiveVoice(lambda samples, rate: phone.say(samples, rate), lambda: phone.queued_seconds,
                               short_ticks=lambda: phone.short_ticks)
        self.pieces = 0  # pieces of voice received
        self.next_t: float | None = None
        self.tokens = 1.0  # seconds of voice that may arrive now (refills at RATE_FACTOR x real time)
        self.refilled = time.monotonic()
        self.parts: list[bytes] = []
        self.kind: Any = None

    def heard(self, frame: np.ndarray) -> None:
        """The phone's listener (the clock's thread): queue the frame, wake the socket's thread."""
        if self.listen:
            self.frames.append((frame, time.time() * 1000, self.phone.position - frame.size))
            try:
                os.write(self.wake_w, b"\0")
            except OSError:  # the pipe is full (the thread is behind) or closed: it reads the deque anyway
                pass

    def flush(self) -> bool:
        """Write what the protocol has to send; False once the connection is over."""
        data = self.proto.data_to_send()
        if data:
            self.sock.sendall(b"".join(data))
        return not (data and data[-1] == b"")

    def send_text(self, obj: dict) -> None:
        self.proto.send_text(json.dumps(obj).encode())

    def refuse(self, code: int, reason: str) -> None:
        """Close with `code`, once: several messages read in one go can each break a rule, and a second
        close on a closing connection raises (it once ended this socket's thread without its close frame
        reaching the page: the page saw the connection drop, not the 1008 and why)."""
        from websockets.protocol import State

        if self.proto.state is State.OPEN:
            self.proto.send_close(code, reason)

    def on_message(self, opcode: Any, data: bytes) -> None:
        from websockets.frames import Opcode

        now = time.monotonic()
        self.tokens = min(1.0, self.tokens + (now - self.refilled) * RATE_FACTOR)
        self.refilled = now
        cost = max(0.01, len(data) / 2 / HEAR_RATE) if opcode == Opcode.BINARY else 0.002  # 500 small texts a second
        self.tokens -= cost
        if self.tokens < 0:
            self.refuse(1008, "more voice than real time: send 20 ms of audio every 20 ms")
            return
        if opcode == Opcode.TEXT:
            try:
                msg = json.loads(data)
            except ValueError:
                self.refuse(1007, "text messages are JSON")
                return
            if isinstance(msg, dict):
                if isinstance(msg.get("listen"), bool):
                    self.listen = msg["listen"]
                    if not self.listen:
                        self.frames.clear()
                if isinstance(msg.get("t"), (int, float)):
                    self.next_t = float(msg["t"])
            return
        if len(data) % 2:
            self.refuse(1007, "voice is 16-bit PCM: an even number of bytes")
            return
        sent, self.next_t = self.next_t, None
        if self.phone.state != "answered" or not data:
            return  # no call to speak into (as the page's Talk says)
        self.voice.push(np.frombuffer(data, dtype="<i2").astype(np.int16), HEAR_RATE, sent)
        self.pieces += 1
        if self.pieces % 25 == 0:
            self.send_text({"mic": self.voice.figures()})

    def receive(self) -> None:
        from websockets.frames import Opcode
        from websockets.protocol import State

        data = self.sock.recv(65536)
        if data:
            self.proto.receive_data(data)
        else:
            self.proto.receive_eof()
        for frame in self.proto.events_received():
            if self.proto.state is not State.OPEN:
                break  # closing (a rule was broken, or the page said goodbye): the rest is not read
            if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
                self.kind, self.parts = frame.opcode, []
            elif frame.opcode != Opcode.CONT:
                continue  # ping, pong and close: the protocol answers them
            self.parts.append(frame.data)
            if sum(len(x) for x in self.parts) > MAX_MESSAGE_BYTES:
                self.refuse(1009, f"a message is at most {MAX_MESSAGE_BYTES} bytes")
                return
            if frame.fin and self.kind is not None:
                self.on_message(self.kind, b"".join(self.parts))
                self.parts = []

    def send_heard(self) -> None:
        while self.frames:
            frame, t, position = self.frames.popleft()
            if self.sent % META_EVERY == 0 or position != self.position:  # and after a gap (frames dropped)
                # age: half a 20 ms frame (its mean sample's) + the hand-off from the clock; position: its
                # first sample in heard.wav
                now = time.time() * 1000
                self.send_text({"t": round(now, 1), "age_ms": round(10 + now - t, 1), "position": position})
            self.position = position + frame.size
            self.proto.send_binary(frame.astype("<i2", copy=False).tobytes())
            self.sent += 1

    def run(self) -> None:
        from websockets.protocol import State

        self.sock.settimeout(10)  # a client that stops reading for this long is gone
        stop = self.phone.add_listener(self.heard)
        try:
            self.send_text({"event": "phone", "number": self.phone.number, "rate": HEAR_RATE})
            while self.flush() and self.proto.state is not State.CLOSED:
                pending = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending() > 0
                ready = [self.sock] if pending else select.select([self.sock, self.wake_r], [], [], 1.0)[0]
                if self.wake_r in ready:
                    os.read(self.wake_r, 4096)
                if self.sock in ready:
                    self.receive()
                if self.proto.state is State.OPEN:
                    if self.p.stopping:
                        self.proto.send_close(1001, "the sandbox stopped")
                    else:
                        self.send_heard()
        except (OSError, ValueError) as exc:
            log.debug("the audio socket of phone %s ended: %r", self.phone.number, exc)  # the client went away
        except Exception:  # noqa: BLE001 - a bug here must not pass silently, nor take the server with it
            log.exception("the audio socket of phone %s failed", self.phone.number)
        finally:
            stop()
            os.close(self.wake_r)
            os.close(self.wake_w)


def serve(p: Platform, phone: VirtualPhone, environ: dict, headers: Any) -> None:
    """Upgrade this request to the phone's audio socket and serve it until it closes (blocks the request's
    thread). `headers`: the request's headers. Raises InvalidInput (400) when this is not a WebSocket
    request or the server cannot hand its socket over."""
    from websockets.http11 import Request
    from websockets.server import ServerProtocol

    sock = environ.get("werkzeug.socket")
    if not is_upgrade(environ) or sock is None:
        raise InvalidInput("GET /_labkit/phones/{number}/audio is a WebSocket: connect with ws:// or wss:// "
                           "(a request with Upgrade: websocket)")
    with _open_lock:
        if _open[0] >= MAX_SOCKETS:
            raise InvalidInput(f"the sandbox already has {MAX_SOCKETS} phone audio sockets open")
        _open[0] += 1
    environ[TAKEN] = True
    try:
        proto = ServerProtocol(origins=[_origin(environ), None], max_size=MAX_MESSAGE_BYTES)
        # werkzeug has read the request already: the protocol reads it again, so that its parser then
        # expects frames (a Request object given to accept() would leave it waiting for a request line)
        path = environ.get("PATH_INFO", "/") + (f"?{environ['QUERY_STRING']}" if environ.get("QUERY_STRING") else "")
        lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
        proto.receive_data(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        request = next((e for e in proto.events_received() if isinstance(e, Request)), None)
        if request is None:
            raise InvalidInput("the WebSocket request could not be read")
        response = proto.accept(request)
        proto.send_response(response)
        sock.sendall(b"".join(proto.data_to_send()))
        if response.status_code == 101:
            _Socket(sock, proto, phone, p).run()
    except OSError:
        pass
    finally:
        with _open_lock:
            _open[0] -= 1
