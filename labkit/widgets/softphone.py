"""A softphone for one of the sandbox's virtual phones: see it ring, answer or reject, press keys,
hang up, and see and hear what it heard.

The phone is put in "manual" mode, so calls to it ring until someone clicks (or until the caller's
ringing timer runs out), just like a real handset in your hand. State changes come from the
sandbox's threads (`on_ring`) and the lab's event log; the widget only ever sets traits from them.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import numpy as np

from labkit.errors import LabkitError
from labkit.events import Event
from labkit.widgets._common import OK_STYLE, error_line, guarded, keypad, show_error, wav_bytes
from labkit.widgets.waveform import LiveWaveform

if TYPE_CHECKING:  # pragma: no cover
    from labkit.lab.facade import Lab

__all__ = ["Softphone", "follow_heard", "softphone"]

POLL_SECONDS = 0.25  # how often a live view re-reads what the phone heard


def softphone(lab: Lab, number: str) -> Softphone:
    """The softphone widget for the virtual phone at `number` (sandbox mode only)."""
    return Softphone(lab, number)


def _heard(phone: Any, since: int = 0) -> tuple[np.ndarray, int]:
    """(samples, rate) of what `phone` heard after sample `since` (empty before its first call)."""
    rec = phone.heard_since(since) if hasattr(phone, "heard_since") else getattr(phone, "heard", None)
    if rec is None:
        return np.zeros(0, np.int16), 16000
    return np.asarray(rec.samples, dtype=np.int16), int(rec.rate)


def follow_heard(phone: Any, waveform: LiveWaveform, *, title: str | None = None) -> Callable[[], None]:
    """Mirror the last seconds of what `phone` hears from now on into `waveform`, until stopped.

    Polls the phone a few times a second on a daemon thread (it has no audio callback) and asks only
    for the tail the waveform shows; returns the stop function.
    """
    stop = threading.Event()
    if title:
        waveform.title = title
    since = int(getattr(phone, "position", 0))

    def run() -> None:
        last = -1
        while not stop.is_set():
            try:
                now = int(getattr(phone, "position", -2))
                if now != last:
                    last = now
                    window = int(waveform.seconds * waveform.rate)
                    samples, rate = _heard(phone, max(since, now - window))
                    waveform.set_tail(samples, rate)
            except Exception:  # noqa: BLE001 - keep polling: the phone may be between calls
                pass
            stop.wait(POLL_SECONDS)

    threading.Thread(target=run, name="labkit-follow-phone", daemon=True).start()
    return stop.set


class Softphone(widgets.VBox):
    """The virtual phone at `number`, as a handset: `state`, `answer_button`, `reject_button`,
    `hangup_button`, `dtmf_keys` (keypad buttons by digit), `waveform` and `player` (what it heard), `error`."""

    def __init__(self, lab: Lab, number: str):
        self.lab = lab
        self.phone = lab.phone(number)
        self.number = getattr(self.phone, "number", number)
        self.last_error: BaseException | None = None
        self.rings = 0
        self.ringing_call: Any = None
        self._start = int(getattr(self.phone, "position", 0))  # where "what it heard" starts
        self._last_state = "idle"
        self._closed = False
        self._stop_follow: Callable[[], None] | None = None
        self._lock = threading.Lock()

        self.title = widgets.HTML(f"<b>virtual phone {html.escape(self.number)}</b>")
        self.state = widgets.Label(value="idle")
        self.state.add_class("labkit-phone-state")
        self.caller = widgets.HTML(value="")
        self.answer_button = widgets.Button(description="Answer", icon="phone", button_style="success",
                                            disabled=True)
        self.reject_button = widgets.Button(description="Reject", icon="times", button_style="warning",
                                            disabled=True)
        self.hangup_button = widgets.Button(description="Hang up", icon="phone-slash", button_style="danger",
                                            disabled=True)
        self.keypad, self.dtmf_keys = keypad(self._press)
        self.say_file = widgets.Dropdown(options=lab.audio_files(), value=None, description="Say file",
                                         layout=widgets.Layout(width="240px"))
        if "prompt.wav" in self.say_file.options:
            self.say_file.value = "prompt.wav"
        self.say_button = widgets.Button(description="Speak", icon="microphone",
                                         tooltip="the phone says this file into the call")
        self.waveform = LiveWaveform(seconds=3.0, title="what it hears", width=320, height=70)
        self.player = widgets.Audio(format="wav", autoplay=False, controls=True,
                                    layout=widgets.Layout(display="none"))
        self.error = error_line()
        self.trace = widgets.HTML(value="")  # what the last click did: "pressed 5", "speaking prompt.wav"
        self.trace.add_class("labkit-trace")
        self._keys = ""

        self.answer_button.on_click(self._on_answer)
        self.reject_button.on_click(self._on_reject)
        self.hangup_button.on_click(self._on_hangup)
        self.say_button.on_click(self._on_say)

        super().__init__(children=[
            self.title,
            widgets.HBox([widgets.HTML("<b>State:</b>&nbsp;"), self.state]),
            self.caller,
            widgets.HBox([self.answer_button, self.reject_button]),
            self.hangup_button,
            self.keypad,
            widgets.HBox([self.say_file, self.say_button]),
            self.trace,
            self.error,
            widgets.HTML("<b>What it heard</b>"),
            self.waveform,
            self.player,
        ], layout=widgets.Layout(width="360px", padding="6px", border="1px solid #ccc"))
        self.add_class("labkit-softphone")

        self._outcome_before = getattr(self.phone, "outcome", "answer")
        self.phone.set(outcome="manual")
        self.phone.on_ring(self._on_ring)
        self._unsubscribe = lab.events.subscribe(self._on_event)
        self._refresh()

    # -- sandbox callbacks (sandbox threads) ---------------------------------------------------------
    def _on_ring(self, call: Any = None) -> None:
        """The phone rings (`call` is the sandbox's call leg): show who calls, offer Answer / Reject."""
        if self._closed:
            return
        self.rings += 1
        self.ringing_call = call
        caller = getattr(call, "from_address", "") if call is not None else ""
        self.caller.value = f"<small>call from {html.escape(str(caller))}</small>" if caller else ""
        self._refresh(ringing=True)

    def _on_event(self, event: Event) -> None:
        if self._closed:
            return
        payload = event.payload
        if event.kind != "event" or self.number not in (payload.get("to"), payload.get("from")):
            return
        self._refresh()

    # -- handlers ----------------------------------------------------------------------------------
    @guarded
    def _on_answer(self, _button: Any = None) -> None:
        self._act(self.phone.answer, "answered")
        self._keys = ""
        self._say_done("answered")

    @guarded
    def _on_reject(self, _button: Any = None) -> None:
        self._act(self.phone.reject, "idle")
        self._say_done("rejected the call")

    @guarded
    def _on_hangup(self, _button: Any = None) -> None:
        self._act(self.phone.hangup, "idle")
        self._say_done("hung up")

    def _say_done(self, text: str) -> None:
        self.trace.value = f"<small style='{OK_STYLE}'>&#10003; {html.escape(text)}</small>"

    def _act(self, action: Callable[[], Any], settles_in: str) -> None:
        """Do `action` to the phone, give it a moment to reach `settles_in`, then redraw."""
        action()
        if hasattr(self.phone, "wait_for_state"):
            self.phone.wait_for_state(settles_in, timeout=2.0)
        self._refresh()

    @guarded
    def _press(self, digit: str) -> None:
        self.phone.press(digit)
        self._keys += digit
        self._say_done(f"pressed {digit} (keys pressed on this call: {self._keys})")

    @guarded
    def _on_say(self, _button: Any = None) -> None:
        if not self.say_file.value:
            raise LabkitError("Pick an audio file for the phone to say.")
        if getattr(self.phone, "state", "") != "answered":
            raise LabkitError("The phone can speak only in an answered call: answer it first.")
        seconds = self.phone.say(str(self.lab.audio_path(self.say_file.value)))
        self._say_done(f"speaking {self.say_file.value} into the call ({seconds:.1f} s)")

    # -- display -----------------------------------------------------------------------------------
    def _refresh(self, ringing: bool = False) -> None:
        with self._lock:
            state = str(getattr(self.phone, "state", "") or "idle")
            if ringing and state == "idle":
                state = "ringing"
            previous, self._last_state = self._last_state, state
            if previous == "idle" and state != "idle":
                self._start = int(getattr(self.phone, "position", 0))  # a new call: hear it from here
                self._new_call()
            self.state.value = state
            is_ringing = state == "ringing"
            in_call = state == "answered"
            self.answer_button.disabled = not is_ringing
            self.reject_button.disabled = not is_ringing
            self.hangup_button.disabled = not (in_call or is_ringing)
            for control in (*self.dtmf_keys.values(), self.say_button):
                control.disabled = not in_call  # keys and speech need an answered call
            if in_call:
                self._follow()
            elif state == "idle" and previous != "idle":
                self.caller.value = ""
                self._show_heard()

    def _new_call(self) -> None:
        """A new call rings: nothing of the last one stays (its trace, error, waveform and player)."""
        self.trace.value = ""
        if self.last_error is not None:
            show_error(self, None)
        self._keys = ""
        self.waveform.reset()
        self.player.layout.display = "none"
        self.player.value = b""

    def _follow(self) -> None:
        if self._stop_follow is None:
            self._stop_follow = follow_heard(self.phone, self.waveform, title="what it hears")

    def _show_heard(self) -> None:
        """The call is over (or none yet): stop following and show all it heard, with a player."""
        stop, self._stop_follow = self._stop_follow, None
        if stop is not None:
            stop()
        try:
            samples, rate = _heard(self.phone, self._start)
        except Exception:  # noqa: BLE001 - nothing heard yet
            return
        if samples.size:
            self.waveform.show(samples, rate, title="what it heard")
            self.player.value = wav_bytes(samples, rate)
            self.player.layout.display = None

    def close(self) -> None:
        """Stop listening, and let the phone answer by itself again as it did before."""
        self._closed = True
        if self.phone.outcome == "manual":
            self.phone.set(outcome=self._outcome_before if self._outcome_before != "manual" else "answer")
        self._unsubscribe()
        if self._stop_follow is not None:
            self._stop_follow()
        callbacks = getattr(self.phone, "_ring_callbacks", None)  # VirtualPhone has no public off_ring
        if isinstance(callbacks, list) and self._on_ring in callbacks:
            callbacks.remove(self._on_ring)
        self.waveform.close()
        super().close()

    def __repr__(self) -> str:
        return f"<Softphone {self.number} state={self.state.value!r}>"

