"""Virtual phones: the people at the other end of sandbox calls.

A phone rings when called and answers (or is busy, rejects, never answers, fails) as `set()` says; once
in a call it speaks what `say()` queued, in real (call) time, presses keys with `press()`, and keeps
everything it heard (`heard`, a labkit Recording at 16 kHz). The audio clock drives it: the phone is the
leg's audio endpoint (`pull48` gives the clock its speech, `deliver` hands it what it hears).

Why speech is kept at 48 kHz: a WAV at 8, 16 or 24 kHz is upsampled exactly (every original sample kept),
so a WebSocket at the WAV's own rate receives it sample for sample.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from labkit.errors import AudioError, InvalidInput, SandboxError
from labkit.media.audio import load as load_audio
from labkit.media.audio import native_rate
from labkit.media.recording import Recording
from labkit.sandbox.audio.heard_audio import HeardAudio
from labkit.sandbox.audio.mixer import BUS_FRAME, BUS_RATE, LEG_RATES, to_int16, upsample
from labkit.validate import talk_text

if TYPE_CHECKING:  # pragma: no cover
    from labkit.sandbox.engine.legs import SandboxCall
    from labkit.sandbox.engine.platform import Platform

HEAR_RATE = 16000
OUTCOMES = ("answer", "busy", "reject", "unanswered", "fail", "manual")
DTMF_DIGITS = set("0123456789*#ABCD")
DTMF_DURATION_MS = 260  # how long each key is held (reported to WebSockets as `duration`)
DTMF_SPACING = 0.3  # seconds of call time from one key press to the next
KEEP: Any = type("Keep", (), {"__repr__": lambda self: "<keep>"})()  # "argument not given" in set()
# The longest a phone may ring before answering, or stay in a call before hanging up: Vonage's longest call
# (`length_timer` at most 86400 s, Voice API POST /v1/calls). A phone is the sandbox's own; the bound keeps
# the clock's timers finite (1e308 s overflowed them). UNCONFIRMED as a Vonage behaviour: there is none.
MAX_PHONE_SECONDS = 86400.0
# Speech a phone may have queued and not yet spoken, in call seconds (48 kHz float32 on the bus: 300 s is
# 58 MB). The sandbox's own limit (UNCONFIRMED, no Vonage counterpart): queued speech is memory held
# until spoken, and a client that queues without end would grow the sandbox without end.
MAX_QUEUED_SECONDS = 300.0


def seconds(value: Any, name: str, *, low: float = 0.0, allow_zero: bool = True) -> float:
    """`value` as a finite number of seconds within [low, MAX_PHONE_SECONDS]; InvalidInput otherwise
    (a string, a boolean, a list, NaN, infinity and 1e308 are all refused, with the field's name)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(f"{name} is a finite number of seconds, not {value!r:.40}")
    if value < low or (value == low and not allow_zero) or value > MAX_PHONE_SECONDS:
        bound = f"more than {low:g}" if not allow_zero else f"at least {low:g}"
        raise InvalidInput(f"{name} must be {bound} and at most {MAX_PHONE_SECONDS:g} seconds, not {value!r}")
    return float(value)


_SILENCE: dict[int, np.ndarray] = {}


def _silence(n: int) -> np.ndarray:
    """A shared read-only frame of zeros (silence is most of what phones hear)."""
    frame = _SILENCE.get(n)
    if frame is None:
        frame = np.zeros(n, dtype=np.int16)
        frame.flags.writeable = False
        _SILENCE[n] = frame
    return frame


def check_settings(answer_after: Any = None, outcome: Any = None, hangup_after: Any = KEEP,
                   machine: Any = None) -> tuple[float | None, Any]:
    """Check `set()`'s arguments (None/KEEP = left out); (answer_after, hangup_after) as floats."""
    if machine is not None and not isinstance(machine, bool):
        raise InvalidInput(f"machine must be true or false, not {machine!r:.40}")
    if outcome is not None and (not isinstance(outcome, str) or outcome not in OUTCOMES):
        raise InvalidInput(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r:.40}")
    if answer_after is not None:
        answer_after = seconds(answer_after, "answer_after")
    if hangup_after is not KEEP and hangup_after is not None:
        hangup_after = seconds(hangup_after, "hangup_after", allow_zero=False)
    return answer_after, hangup_after


class VirtualPhone:
    """A phone number in the sandbox's little telephone network.

    `set(answer_after=1.0, outcome="answer", hangup_after=None)` says how it behaves when called:
    outcome "answer" picks up after `answer_after` seconds, "busy" is engaged, "reject" declines after
    ringing, "unanswered" rings out as unreachable, "fail" cannot be routed, and "manual" rings until
    `answer()` or `reject()` (a softphone widget). `hangup_after` hangs up that many seconds after answer.
    """

    def __init__(self, platform: Platform, number: str, *, answer_after: float = 1.0, outcome: str = "answer",
                 hangup_after: float | None = None, machine: bool = False) -> None:
        self._platform = platform
        self.number = number
        self.answer_after = 1.0
        self.outcome = "answer"
        self.hangup_after: float | None = None
        self.machine = False
        self.set(answer_after=answer_after, outcome=outcome, hangup_after=hangup_after, machine=machine)
        self._lock = threading.Lock()
        self._call: SandboxCall | None = None
        self._state = "idle"
        self._speech: deque[list[Any]] = deque()  # [samples48 float32, position, transcript]
        self._heard = HeardAudio()
        self._segments: dict[str, list[int]] = {}  # call uuid -> [start, end] sample positions in heard
        self._ring_callbacks: list[Callable[[SandboxCall], Any]] = []
        self._listeners: tuple[Callable[[np.ndarray], Any], ...] = ()  # see add_listener
        self._state_cv = threading.Condition(self._lock)
        self.calls: list[SandboxCall] = []
        self.received_dtmf = ""
        self.said_at: float | None = None  # see say()
        self.short_ticks = 0  # call ticks that found less than 20 ms of speech queued (a live voice ran dry)

    # ------------------------------------------------------------------ behaviour

    def set(self, answer_after: float | None = None, outcome: str | None = None,
            hangup_after: Any = KEEP, machine: bool | None = None) -> VirtualPhone:
        """Change how the phone behaves when called (arguments left out keep their value).

        `hangup_after=None` turns an earlier hang-up time off. `machine=True` makes it an answering
        machine: it plays a greeting and a beep when it answers, and machine detection reports it.
        """
        # every value checked before any is applied: a refused set() changes nothing
        answer_after, hangup_after = check_settings(answer_after, outcome, hangup_after, machine)
        if machine is not None:
            self.machine = bool(machine)
            if self.machine:
                from labkit.sandbox.engine.machine import prepare

                prepare(self)
        if outcome is not None:
            self.outcome = outcome
        if answer_after is not None:
            self.answer_after = answer_after
        if hangup_after is not KEEP:
            self.hangup_after = hangup_after
        return self

    def on_ring(self, callback: Callable[[SandboxCall], Any]) -> Callable[[SandboxCall], Any]:
        """Call `callback(call)` when an incoming call starts ringing (usable as a decorator)."""
        self._ring_callbacks.append(callback)
        return callback

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> str:
        """'idle', 'ringing' (being called, or calling and waiting for an answer) or 'answered'."""
        return self._state

    @property
    def call(self) -> SandboxCall | None:
        """The call the phone is in (or ringing for), if any."""
        return self._call

    def wait_for_state(self, state: str, timeout: float = 10.0) -> bool:
        """Block until `state` (real seconds); True when reached."""
        with self._state_cv:
            return self._state_cv.wait_for(lambda: self._state == state, timeout)

    def _set_state(self, state: str, call: SandboxCall | None) -> None:
        with self._state_cv:
            self._state = state
            self._call = call
            self._state_cv.notify_all()

    def _ringing(self, call: SandboxCall, *, incoming: bool = True) -> list[Callable[[SandboxCall], Any]]:
        """The platform rings this phone, or (incoming=False) this phone is calling out and waiting.

        Returns the on_ring callbacks to run (outside any lock) for an incoming call.
        """
        if call not in self.calls:
            self.calls.append(call)
        self._set_state("ringing", call)
        return list(self._ring_callbacks) if incoming else []

    def _answered(self, call: SandboxCall) -> None:
        with self._lock:
            self._segments[call.uuid] = [self._heard.length, self._heard.length]
        self._set_state("answered", call)
        if self.machine:
            from labkit.sandbox.engine.machine import play_greeting

            play_greeting(self)
        if self.hangup_after is not None:
            call.timers.append(self._platform.clock.call_later(
                self.hangup_after, lambda: self._platform.end_leg(call, "completed", by="phone")))

    def _call_ended(self, call: SandboxCall) -> None:
        if self._call is call:
            self._set_state("idle", None)

    @property
    def busy(self) -> bool:
        return self._state != "idle"

    # ------------------------------------------------------------------ actions

    def answer(self) -> None:
        """Pick up the ringing call (for outcome='manual'; also answers any ringing call early)."""
        call = self._call
        if call is None or self._state != "ringing" or call.phone is not self:
            raise SandboxError(f"{self.number} is {self._state}: there is no ringing call to answer.")
        with call.cond:
            call.phone_decision = "answer"
            call.cond.notify_all()

    def reject(self) -> None:
        """Decline the ringing call (the caller gets 'rejected', detail 'declined')."""
        call = self._call
        if call is None or self._state != "ringing" or call.phone is not self:
            raise SandboxError(f"{self.number} is {self._state}: there is no ringing call to reject.")
        with call.cond:
            call.phone_decision = "reject"
            call.cond.notify_all()

    def hangup(self) -> None:
        """Put the phone down: ends the call it is in (a ringing incoming call is rejected instead)."""
        call = self._call
        if call is None:
            return
        if self._state == "ringing" and call.direction == "outbound":
            self.reject()
            return
        self._platform.end_leg(call, "completed", by="phone")

    def say(self, source: Any = None, rate: int | None = None, *, text: str | None = None) -> float:
        """Queue audio the person speaks into the call; returns its length in seconds.

        `source` is a path, file bytes, a Recording, `(samples, rate)`, or samples with `rate` (default 16000).
        With only `text`, the phone speaks that text (synthesized); with `text` and a source, `text` is what the
        sandbox's speech recognition will report for it (input type speech). Played in call time after anything
        queued before it; `said_at` becomes the call second it starts at (in the call's `heard`; None if no call).
        """
        if source is None and text is None:
            raise InvalidInput("say() needs audio (a file, bytes, samples) or text=")
        if text is not None:
            # The same limit as Vonage's talk (1500 characters, SSML not counted; labkit.validate holds it
            # for the lab's call.say() too): checked before synthesis, so a refused say costs no memory.
            text = talk_text(text, "a phone's say()")
        if self.queued_seconds >= MAX_QUEUED_SECONDS:
            raise InvalidInput(f"{self.number} already has {self.queued_seconds:.0f} s of speech queued (at most "
                               f"{MAX_QUEUED_SECONDS:g} s): wait until it has spoken some of it")
        if source is None:
            samples, src_rate = self._platform.sources.talk(text or "", HEAR_RATE), HEAR_RATE
        else:
            if isinstance(source, np.ndarray):
                source = (source, int(rate or HEAR_RATE))
            try:
                src_rate = native_rate(source) or BUS_RATE
                if src_rate not in LEG_RATES:
                    src_rate = BUS_RATE
                samples = load_audio(source, src_rate)
            except InvalidInput:
                raise
            except (AudioError, RuntimeError, ValueError) as exc:  # soundfile's LibsndfileError is a RuntimeError
                raise InvalidInput(f"the audio for say() could not be decoded as WAV or MP3: {exc}"[:300]) from None
        if samples.size / src_rate + self.queued_seconds > MAX_QUEUED_SECONDS:
            raise InvalidInput(f"{samples.size / src_rate:.0f} s of audio would queue more than "
                               f"{MAX_QUEUED_SECONDS:g} s of speech on {self.number}")
        bus = upsample(np.asarray(samples, dtype=np.float32), BUS_RATE // src_rate)
        with self._lock:
            ahead = sum(item[0].size - item[1] for item in self._speech) / BUS_RATE
            self._speech.append([bus, 0, text])
            seg = self._segments.get(getattr(self._call, "uuid", "")) if self._state == "answered" else None
            self.said_at = None if seg is None else (self._heard.length - seg[0]) / HEAR_RATE + ahead  # next tick
        return bus.size / BUS_RATE

    @property
    def speaking(self) -> bool:
        """True while queued speech has not been played yet."""
        with self._lock:
            return bool(self._speech)

    @property
    def queued_seconds(self) -> float:
        """Call-time seconds of speech queued and not yet spoken (how far behind live speech runs)."""
        with self._lock:
            return sum(item[0].size - item[1] for item in self._speech) / BUS_RATE

    def press(self, digits: str, duration_ms: int = DTMF_DURATION_MS) -> None:
        """Press keys during the call, one every 0.3 s of call time (feeds input, bargeIn, WebSockets)."""
        digits = str(digits).upper()
        bad = [d for d in digits if d not in DTMF_DIGITS]
        if bad:
            raise InvalidInput(f"press() takes 0-9 * # A-D, not {''.join(bad)!r}")
        call = self._call
        if call is None or self._state != "answered":
            raise SandboxError(f"{self.number} is {self._state}: key presses need an answered call.")
        clock = self._platform.clock
        for i, digit in enumerate(digits):
            clock.call_later(DTMF_SPACING * i, lambda d=digit: self._platform.dtmf_from(call, d, duration_ms))

    # ------------------------------------------------------------------ what it heard

    @property
    def position(self) -> int:
        """Samples heard so far (16 kHz): a mark for `heard_since`."""
        return self._heard.length

    @property
    def heard(self) -> Any:
        """Everything the phone heard in its calls, as a Recording at 16 kHz (`.samples`, `.save()`)."""
        return self.heard_since(0)

    def heard_since(self, position: int = 0) -> Any:
        """What the phone heard after sample `position` (see `position`) as a Recording."""
        with self._lock:
            data = self._heard.range(int(position), self._heard.length)
        return Recording(data, HEAR_RATE, label=f"heard by {self.number}")

    def heard_in(self, call: SandboxCall | str) -> Any:
        """What the phone heard during one call (a call object or uuid)."""
        uid = call if isinstance(call, str) else call.uuid
        with self._lock:
            seg = self._segments.get(uid)
            data = self._heard.range(seg[0], seg[1]) if seg is not None else np.zeros(0, dtype=np.int16)
        return Recording(data, HEAR_RATE, call_uuid=uid, label=f"heard by {self.number}")

    def add_listener(self, fn: Callable[[np.ndarray], Any]) -> Callable[[], None]:
        """Call `fn(frame)` with each 20 ms the phone hears (int16, 16 kHz) the moment the clock mixes it (a
        live page or panel: no polling delay). It runs on the clock's thread: hand the frame on, never block.
        Returns the function that removes it."""
        self._listeners = (*self._listeners, fn)
        return lambda: setattr(self, "_listeners", tuple(f for f in self._listeners if f is not fn))

    def clear_heard(self) -> None:
        """Forget what was heard so far (positions restart at 0)."""
        with self._lock:
            self._heard.close()
            self._heard = HeardAudio()
            self._segments = {}

    # ------------------------------------------------------------------ clock side (under the platform lock)

    def pull48(self) -> np.ndarray | None:
        """The next 20 ms of this phone's speech on the 48 kHz bus, or None when it is silent. A tick that
        finds less than a frame is counted (`short_ticks`): a live voice tells a dry call by it."""
        if not self._speech:
            self.short_ticks += 1
            return None
        done_texts: list[str] = []
        out, filled = None, 0
        with self._lock:
            while filled < BUS_FRAME and self._speech:
                item = self._speech[0]
                samples, pos = item[0], item[1]
                take = min(BUS_FRAME - filled, samples.size - pos)
                if take == BUS_FRAME:  # the whole frame from one piece: a view, no copy
                    out = samples[pos:pos + take]
                else:
                    out = np.zeros(BUS_FRAME, dtype=np.float32) if out is None else out
                    out[filled:filled + take] = samples[pos:pos + take]
                filled += take
                item[1] = pos + take
                if item[1] >= samples.size:
                    self._speech.popleft()
                    if item[2]:
                        done_texts.append(item[2])
            self.short_ticks += filled < BUS_FRAME
        call = self._call
        if done_texts and call is not None:
            for text in done_texts:
                self._platform.speech_from(call, text)
        return out

    def deliver(self, heard: np.ndarray | None, n: int) -> None:
        """The clock hands the phone 20 ms of what it hears (int16 or float at 16 kHz; None = silence)."""
        frame = _silence(n) if heard is None else to_int16(heard)
        call = self._call
        with self._lock:
            self._heard.append(frame)
            if call is not None:
                seg = self._segments.get(call.uuid)
                if seg is not None:
                    seg[1] = self._heard.length
        for fn in self._listeners:
            fn(frame)

    def _dtmf_heard(self, digits: str) -> None:
        self.received_dtmf += digits

    def __repr__(self) -> str:
        """A sentence, as a notebook shows it: what the phone is doing and what it does when called."""
        what = "an answering machine" if self.machine else "a virtual phone"
        does = {"answer": f"answers after {self.answer_after:g} s", "busy": "is busy to every call",
                "reject": "rejects calls", "manual": "rings until someone answers it on the softphone",
                "unanswered": "rings without answering",
                "fail": "fails to connect"}.get(self.outcome, f"does '{self.outcome}' when called")
        hangs = f", hangs up {self.hangup_after:g} s after answering" if self.hangup_after else ""
        return f"{self.number}: {what}, {self._state}; {does}{hangs}"
