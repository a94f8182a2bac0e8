"""Hear a call and talk into it from the browser: the kernel side of `static/callaudio.js`.

`CallAudio(lab)` is an anywidget. `follow(call)` picks what to hear and where the microphone goes:

* a call with an open WebSocket (live or sandbox): you hear the socket's audio (the frame listener),
  and the microphone goes back into the call over the same socket, paced (the socket's PacedSender);
* a sandbox call without one: you are the virtual phone that was called: you hear what it hears,
  and the microphone is its voice (`phone.say`, queued in call time).

Audio goes to the browser as 16-bit PCM at the call's rate in 40 ms binary messages, only while the
page listens. The browser's AudioContext runs at that same rate, so the microphone arrives already
resampled (see the JS module's header for why the browser resamples).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import numpy as np
import traitlets as t

if TYPE_CHECKING:  # pragma: no cover
    from labkit.lab.calls import Call
    from labkit.lab.facade import Lab

__all__ = ["CallAudio"]

ESM = Path(__file__).with_name("static") / "callaudio.js"
CHUNK_SECONDS = 0.04  # audio to the browser in 40 ms pieces (two call frames)
POLL_SECONDS = 0.02  # how often a sandbox phone's ears are read
# Microphone audio is held until this much is waiting whenever the call has run out of it (at the
# start, and after a hiccup): the page sends 40 ms pieces with jitter, and a paced sender that runs
# dry between two pieces would put a gap into the voice each time.
MIC_PREBUFFER_SECONDS = 0.08
# ...and dropped while more than this is already waiting: after a stall (a busy kernel delivers a
# burst of pieces at once) the voice would otherwise stay that much late for the rest of the call.
MIC_MAX_QUEUE_SECONDS = 0.16


class CallAudio(anywidget.AnyWidget):
    """Listen / Talk / mute / volume / level meters for one call (see the module docstring).

    Kernel-side figures: `mic_frames` (20 ms frames of microphone audio received), `mic_delay_ms`
    (median, capture in the page to speech in the call: wire + queue), `last_error`; from the page:
    `frames_played`, `peak` (the AnalyserNode's level), `speaker_delay_ms`, `error`.
    """

    _esm = ESM
    rate = t.Int(16000).tag(sync=True)
    source = t.Unicode("").tag(sync=True)  # what you hear, in words
    listening = t.Bool(False).tag(sync=True)  # set by the page
    talking = t.Bool(False).tag(sync=True)  # set by the page
    frames_played = t.Int(0).tag(sync=True)
    frames_dropped = t.Int(0).tag(sync=True)
    mic_frames_sent = t.Int(0).tag(sync=True)
    peak = t.Float(0.0).tag(sync=True)
    speaker_delay_ms = t.Int(0).tag(sync=True)
    speaker_delay_parts = t.Unicode("").tag(sync=True)  # the median of each stage, in words
    error = t.Unicode("").tag(sync=True)

    def __init__(self, lab: Lab, **kwargs: Any):
        super().__init__(**kwargs)
        self.lab = lab
        self.call: Call | None = None
        self.mic_frames = 0
        self.mic_frames_dropped = 0  # 20 ms frames dropped to keep the voice live (see MIC_MAX_QUEUE_SECONDS)
        self.max_mic_queue = MIC_MAX_QUEUE_SECONDS  # seconds; larger keeps every word but lets delay grow
        self.last_error: BaseException | None = None
        self._mic_delays: deque[float] = deque(maxlen=200)
        self._lock = threading.Lock()
        self._stop_feed: Any = None
        self._sink: Any = None  # fn(samples int16, rate) -> seconds already queued before them
        self._pending = bytearray()
        self._mic_hold: list[np.ndarray] = []  # microphone audio waiting for the prebuffer to fill
        self._sink_queued: Any = lambda: 0.0  # seconds of microphone audio the call has yet to play
        self.on_msg(self._on_page_message)
        self.add_class("labkit-call-audio-widget")

    # -- which call -------------------------------------------------------------------------------
    def follow(self, call: Call | None) -> None:
        """Hear `call` and talk into it from now on (None: nothing)."""
        with self._lock:
            self._unfollow()
            self.call = call
            if call is None:
                self.source = ""
                return
            session = self._open_session(call)
            if session is not None:
                self.rate = int(session.rate)
                self.source = f"the call's WebSocket ({session.rate // 1000} kHz)" + self._speed_note()
                self._stop_feed = session.add_frame_listener(self._on_socket_frame)

                def to_socket(samples: np.ndarray, rate: int) -> float:
                    queued = session.pacer.queued_seconds
                    session.play(samples, rate)
                    return queued

                self._sink, self._sink_queued = to_socket, lambda: session.pacer.queued_seconds
                return
            phone = self._phone(call)
            if phone is not None:
                from labkit.sandbox.engine.phones import HEAR_RATE

                self.rate = HEAR_RATE
                self.source = f"what {phone.number} hears (you are that phone)" + self._speed_note()
                self._stop_feed = self._poll_phone(phone)

                def as_phone(samples: np.ndarray, rate: int) -> float:
                    queued = phone.queued_seconds
                    phone.say(samples, rate)
                    return queued

                self._sink, self._sink_queued = as_phone, lambda: phone.queued_seconds
                return
            self.source = "nothing: this call has no WebSocket to hear (add ncco.websocket(lab))"

    def _speed_note(self) -> str:
        speed = float(getattr(self.lab.sockets, "speed", 1.0) or 1.0)
        if self.lab.mode != "sandbox" or speed == 1.0:
            return ""
        return (f"; the sandbox runs at {speed:g}x, so live audio has gaps: start the lab with "
                "Lab.start(speed=1) to talk")

    def _unfollow(self) -> None:
        stop, self._stop_feed, self._sink = self._stop_feed, None, None
        self._pending.clear()
        self._mic_hold = []
        if stop is not None:
            stop()

    def _open_session(self, call: Call) -> Any:
        sockets = self.lab.sockets
        if sockets is None:
            return None
        found = [s for s in list(sockets.sessions) if s.call_uuid == call.uuid and s.open]
        return found[-1] if found else None

    def _phone(self, call: Call) -> Any:
        if self.lab.mode != "sandbox" or not call.to:
            return None
        try:
            return self.lab.phone(str(call.to))
        except Exception:  # noqa: BLE001 - not a virtual phone
            return None

    # -- call audio to the page -----------------------------------------------------------------
    def _on_socket_frame(self, frame: bytes) -> None:
        if not self.listening:
            return
        self._pending.extend(frame)
        if len(self._pending) >= int(self.rate * CHUNK_SECONDS) * 2:
            data, self._pending = bytes(self._pending), bytearray()
            self._send_audio(data, age_ms=CHUNK_SECONDS * 1000 / 2)

    def _poll_phone(self, phone: Any) -> Any:
        stop = threading.Event()
        position = int(phone.position)

        def run() -> None:
            nonlocal position
            while not stop.wait(POLL_SECONDS):
                now = int(phone.position)
                if now < position:  # the phone forgot what it heard (clear_heard)
                    position = now
                if now - position < int(self.rate * CHUNK_SECONDS):
                    continue
                if not self.listening:
                    position = now
                    continue
                samples = np.asarray(phone.heard_since(position).samples, dtype="<i2")
                position += samples.size
                try:
                    self._send_audio(samples.tobytes(), age_ms=POLL_SECONDS * 1000 / 2)
                except Exception:  # noqa: BLE001 - the widget was closed: stop quietly
                    return

        threading.Thread(target=run, name="labkit-call-audio", daemon=True).start()
        return stop.set

    def _send_audio(self, data: bytes, *, age_ms: float) -> None:
        self.send({"type": "audio", "rate": int(self.rate), "t": time.time() * 1000, "age_ms": age_ms},
                  buffers=[data])

    # -- microphone from the page ----------------------------------------------------------------
    def _on_page_message(self, _widget: Any, content: dict, buffers: list) -> None:
        if not isinstance(content, dict) or content.get("type") != "mic" or not buffers:
            return
        sink = self._sink
        if sink is None:
            return
        samples = np.frombuffer(bytes(buffers[0]), dtype="<i2")
        rate = int(content.get("rate") or self.rate)
        if self._sink_queued() > self.max_mic_queue:
            self.mic_frames_dropped += samples.size // max(1, rate // 50)
            return
        self._mic_hold.append(samples)
        held = sum(x.size for x in self._mic_hold)
        if held < rate * MIC_PREBUFFER_SECONDS and self._sink_queued() < 0.02:
            return  # the call has nothing left to say: gather a little first, then send together
        frame = max(1, rate // 50)
        whole = held - held % frame  # whole 20 ms frames only: a paced sender pads a partial one
        joined = np.concatenate(self._mic_hold)
        samples, rest = joined[:whole], joined[whole:]
        self._mic_hold = [rest] if rest.size else []
        if not samples.size:
            return
        try:
            queued = sink(samples, rate)
        except Exception as exc:  # noqa: BLE001 - the call ended under us: say so in the page
            self.last_error = exc
            from labkit.errors import plain

            self.error = plain(exc)
            return
        self.mic_frames += samples.size // max(1, rate // 50)
        sent = content.get("t")
        if isinstance(sent, (int, float)):
            # capture to send (half a piece on average) + wire + queued ahead + half a 20 ms clock tick
            self._mic_delays.append(CHUNK_SECONDS * 500 + max(0.0, time.time() * 1000 - sent) + queued * 1000 + 10)

    @property
    def mic_delay_ms(self) -> float | None:
        """Median delay from the page capturing microphone audio to the call playing it (ms): gathering
        a 40 ms piece, the wire to the kernel, the audio queued ahead of it, the call's 20 ms tick."""
        return statistics.median(self._mic_delays) if self._mic_delays else None

    def close(self) -> None:
        with self._lock:
            self._unfollow()
        super().close()
