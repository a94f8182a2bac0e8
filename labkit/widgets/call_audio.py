"""Hear a call and talk into it from the browser: the kernel side of `static/callaudio.js`.

`CallAudio(lab)` is an anywidget. `follow(call)` picks what to hear and where the microphone goes:

* a call with an open WebSocket (live or sandbox): you hear the socket's audio (the frame listener),
  and the microphone goes back into the call over the same socket, paced (the socket's PacedSender);
* a sandbox call without one: you are the virtual phone that was called: you hear what it hears,
  and the microphone is its voice (`phone.say`, queued in call time).

Audio goes to the browser as 16-bit PCM at the call's rate, one 20 ms frame per binary message the moment
the call has it (the phone's listener, the socket's frame listener), only while the page listens; neither
the sandbox's clock nor the socket's thread waits on the way out (a sender thread for the comm, the server's
loop for the direct socket). The page resamples to and from the call's rate (see callaudio.js's header), so
the microphone arrives at the call's rate, in 20 ms pieces (40 ms through the comm);
`labkit.media.jitter.LiveVoice` puts them into the call with a cushion sized from how they arrive, dropping
pieces only to stay live.

Two ways between kernel and page (static/widgetaudio.js): *direct*, a WebSocket from the page to the lab's
own server (`/browser-audio`, labkit.server.browser_audio), opened with a token this widget alone is given
(the `direct_url` trait); and *through Jupyter*, the widget's comm (kernel -> Jupyter server -> page), used
while the socket is not open (the page cannot reach the lab, or `use_direct(False)`). The direct way skips
two hops and their queues: see the README's live-audio figures. The page reports which it uses
(`audio_path`: "direct" or "jupyter") and says so under the buttons.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import numpy as np
import traitlets as t

from labkit.media.jitter import LiveVoice

if TYPE_CHECKING:  # pragma: no cover
    from labkit.lab.calls import Call
    from labkit.lab.facade import Lab
    from labkit.server.browser_audio import BrowserAudioSocket

__all__ = ["CallAudio"]

STATIC = Path(__file__).with_name("static")
ESM_PARTS = ("wstransport.js", "callaudio.js", "widgetaudio.js")  # the page's modules, in the order they need
_LOCAL_IMPORT = re.compile(r'^import \{[^}]*\} from "\./[a-z]+\.js";$', re.M)


def esm_bundle() -> str:
    """The widget's module: its three files joined as one (anywidget loads one module, which cannot import
    its neighbours), without their imports of each other (the names are then in the same module)."""
    return "\n".join(_LOCAL_IMPORT.sub("", (STATIC / name).read_text()) for name in ESM_PARTS)


FRAME_SECONDS = 0.02  # audio to the browser one call frame at a time
BACKLOG_FRAMES = 25  # frames waiting for the comm (0.5 s); a stalled page loses the oldest, not the newest


class CallAudio(anywidget.AnyWidget):
    """Listen / Talk / mute / volume / level meters for one call (see the module docstring).

    Kernel-side figures: `mic_frames` (20 ms frames of microphone audio put into the call), `mic_delay_ms`
    and `mic_delay_parts` (median, capture in the page to speech in the call, by stage), `last_error`;
    from the page: `frames_played`, `peak` (the AnalyserNode's level), `speaker_delay_ms` and
    `speaker_delay_parts`, `speaker_queue_target_ms` (its jitter buffer), `error`.
    """

    _esm = esm_bundle()
    rate = t.Int(16000).tag(sync=True)
    direct_url = t.Unicode("").tag(sync=True)  # the page's socket to the lab, with this widget's token
    audio_path = t.Unicode("").tag(sync=True)  # set by the page: "direct" or "jupyter"
    source = t.Unicode("").tag(sync=True)  # what you hear, in words
    listening = t.Bool(False).tag(sync=True)  # set by the page
    talking = t.Bool(False).tag(sync=True)  # set by the page
    frames_played = t.Int(0).tag(sync=True)
    frames_dropped = t.Int(0).tag(sync=True)
    mic_frames_sent = t.Int(0).tag(sync=True)
    peak = t.Float(0.0).tag(sync=True)
    speaker_delay_ms = t.Int(0).tag(sync=True)
    speaker_delay_parts = t.Unicode("").tag(sync=True)  # the median of each stage, in words
    speaker_queue_target_ms = t.Int(0).tag(sync=True)  # the page's playback queue, sized from arrival jitter
    speaker_restarts = t.Int(0).tag(sync=True)  # times the page's queue ran dry
    error = t.Unicode("").tag(sync=True)

    def __init__(self, lab: Lab, **kwargs: Any):
        super().__init__(**kwargs)
        self.lab = lab
        self.call: Call | None = None
        self.voice: LiveVoice | None = None  # the microphone into the followed call
        self.max_mic_queue: float | None = None  # seconds: a fixed drop limit instead of the measured one
        self.last_error: BaseException | None = None
        self._lock = threading.Lock()
        self._stop_feed: Any = None
        self._frames: deque[tuple[bytes, float]] = deque(maxlen=BACKLOG_FRAMES)
        self._wake = threading.Event()
        self._closed = False
        self._voice_lock = threading.Lock()  # the microphone may come by the comm and the socket at once
        self._direct: BrowserAudioSocket | None = None  # the page's open socket, if any
        self._token: str | None = None
        self._hub: Any = None
        threading.Thread(target=self._sender, name="labkit-call-audio", daemon=True).start()
        self.on_msg(self._on_page_message)
        self.add_class("labkit-call-audio-widget")
        self.use_direct(True)

    # -- which way -------------------------------------------------------------------------------
    def use_direct(self, on: bool = True) -> None:
        """Carry the audio on the page's own socket to the lab (True, the default), or only through
        Jupyter's comm (False: what a page that cannot reach the lab falls back to by itself)."""
        with self._lock:
            token, hub, self._token, self._direct = self._token, self._hub, None, None
            if token is not None and hub is not None:
                hub.unregister(token)
            url = ""
            hub, runner = getattr(self.lab, "browser_audio", None), getattr(self.lab, "runner", None)
            if on and not self._closed and hub is not None and runner is not None and runner.port:
                self._hub, self._token = hub, hub.register(self)
                url = hub.url(runner.host, runner.port, self._token)
            self.direct_url = url
            self._restart_voice()

    # the socket's side (labkit.server.browser_audio.AudioPeer), on the server's loop
    def direct_opened(self, conn: BrowserAudioSocket) -> None:
        self._direct = conn
        self._restart_voice()

    def direct_closed(self, conn: BrowserAudioSocket) -> None:
        if self._direct is conn:
            self._direct = None
            self._restart_voice()

    def _restart_voice(self) -> None:
        """The microphone's way changed: its jitter and delay figures are of one way at a time."""
        voice = self.voice
        if voice is not None:
            with self._voice_lock:
                voice.restart()

    def direct_voice(self, samples: bytes, sent_ms: float | None) -> None:
        self._push_voice(np.frombuffer(samples, dtype="<i2").astype(np.int16), int(self.rate), sent_ms)

    def direct_figures(self) -> dict:
        voice = self.voice
        return voice.figures() if voice is not None else {}

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
                self._stop_feed = session.add_frame_listener(self._on_frame)
                # a paced sender pads a partial frame: the cushion is whole frames
                self.voice = LiveVoice(lambda x, rate: session.play(x, rate), lambda: session.pacer.queued_seconds,
                                       granule=FRAME_SECONDS)
                self.voice.max_queue = self.max_mic_queue
                return
            phone = self._phone(call)
            if phone is not None:
                from labkit.sandbox.engine.phones import HEAR_RATE

                self.rate = HEAR_RATE
                self.source = f"what {phone.number} hears (you are that phone)" + self._speed_note()
                self._stop_feed = phone.add_listener(self._on_frame)
                self.voice = LiveVoice(lambda x, rate: phone.say(x, rate), lambda: phone.queued_seconds,
                                       short_ticks=lambda: phone.short_ticks)
                self.voice.max_queue = self.max_mic_queue
                return
            self.source = "nothing: this call has no WebSocket to hear (add ncco.websocket(lab))"

    def _speed_note(self) -> str:
        speed = float(getattr(self.lab.sockets, "speed", 1.0) or 1.0)
        if self.lab.mode != "sandbox" or speed == 1.0:
            return ""
        return (f"; the sandbox runs at {speed:g}x, so live audio has gaps: start the lab with "
                "Lab.start(speed=1) to talk")

    def _unfollow(self) -> None:
        stop, self._stop_feed = self._stop_feed, None
        if stop is not None:
            stop()
        self._frames.clear()

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
    def _on_frame(self, frame: Any) -> None:
        """A listener (the sandbox's clock, the socket's listener thread): hand the frame on, never wait."""
        conn = self._direct
        direct = conn is not None and conn.listening
        if direct or self.listening:
            data = frame if isinstance(frame, bytes) else np.asarray(frame, dtype="<i2").tobytes()
            if direct:
                conn.send_audio(data, time.time() * 1000, int(self.rate))
                return
            self._frames.append((data, time.time() * 1000))
            self._wake.set()

    def _sender(self) -> None:
        while not self._closed:
            self._wake.wait(1.0)
            self._wake.clear()
            while self._frames and not self._closed:
                # what waits goes as one message (a busy kernel or page then gets fewer, not later, ones)
                frames = [self._frames.popleft() for _ in range(len(self._frames))]
                now = time.time() * 1000
                try:  # age: the mean sample is half the audio older than the call's having the last frame, + hand-off
                    self.send({"type": "audio", "rate": int(self.rate), "t": now,
                               "age_ms": len(frames) * FRAME_SECONDS * 500 + (now - frames[-1][1])},
                              buffers=[b"".join(f[0] for f in frames)])
                except Exception:  # noqa: BLE001 - the widget was closed under us: stop quietly
                    return

    # -- microphone from the page ----------------------------------------------------------------
    def _on_page_message(self, _widget: Any, content: dict, buffers: list) -> None:
        if not isinstance(content, dict) or content.get("type") != "mic" or not buffers:
            return
        samples = np.frombuffer(bytes(buffers[0]), dtype="<i2").astype(np.int16)
        sent = content.get("t")
        self._push_voice(samples, int(content.get("rate") or self.rate),
                         sent if isinstance(sent, (int, float)) else None)

    def _push_voice(self, samples: np.ndarray, rate: int, sent_ms: float | None) -> None:
        voice = self.voice
        if voice is None or self.call is None:
            return
        try:
            with self._voice_lock:
                voice.max_queue = self.max_mic_queue
                voice.push(samples, rate, sent_ms)
        except Exception as exc:  # noqa: BLE001 - the call ended under us: say so in the page
            self.last_error = exc
            from labkit.errors import plain

            self.error = plain(exc)

    @property
    def mic_frames(self) -> int:
        """20 ms frames of microphone audio put into the call."""
        return self.voice.frames if self.voice is not None else 0

    @property
    def mic_frames_dropped(self) -> int:
        """20 ms frames dropped to keep the voice live (more was waiting than the jitter needs)."""
        return self.voice.dropped if self.voice is not None else 0

    @property
    def mic_delay_ms(self) -> float | None:
        """Median delay from the page capturing microphone audio to the call playing it (ms)."""
        return self.voice.figures()["mic_delay_ms"] if self.voice is not None else None

    @property
    def mic_delay_parts(self) -> str:
        """The median of each stage of `mic_delay_ms`, in words: capture (half a 20 ms piece), the wire to
        the kernel, the audio queued ahead of it in the call, and half the call's 20 ms tick."""
        return self.voice.figures()["mic_delay_parts"] if self.voice is not None else ""

    def close(self) -> None:
        with self._lock:
            self._unfollow()
            self._closed = True
            self._wake.set()
        self.use_direct(False)
        super().close()
