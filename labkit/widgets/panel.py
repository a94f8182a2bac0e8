"""`lab.panel()`: buttons for everything the tutorials do to a live call, and what came back.

Everything that changes while a call runs (status, event log, waveform, recordings) is updated by
setting widget traits from the thread that learned about it (webhook, WebSocket, renderer): that is
safe in ipywidgets, unlike printing into Output widgets from threads. Every click goes through
`guarded`, so mistakes show in the panel's error line, never as tracebacks. The half that reacts to
webhooks and WebSockets (events, status, audio following, recordings) is `LivePanel` in panel_live.py.

The inner widgets are attributes (`p.to`, `p.call_button`, `p.stream_toggle`, `p.status`,
`p.events_html`, `p.waveform`, `p.error`, ...) so that tests and notebooks can drive the panel
without a browser: `p.call_button.click()` runs the same code as a click.
"""

from __future__ import annotations

import html
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from labkit import validate
from labkit.errors import CallEndedError, InvalidInput
from labkit.events import Event
from labkit.widgets._common import (
    ERROR_STYLE,
    OK_STYLE,
    error_line,
    guarded,
    keypad,
    show_error,
)
from labkit.widgets.lines import TOGGLE_LABELS, TOGGLE_TIPS, TOGGLE_WORDS, WaitLine, call_audio, clip, events_html, pick
from labkit.widgets.panel_controls import PanelControls
from labkit.widgets.panel_history import HistoryView
from labkit.widgets.panel_live import LivePanel
from labkit.widgets.softphone import Softphone
from labkit.widgets.waveform import LiveWaveform

if TYPE_CHECKING:  # pragma: no cover
    from labkit.lab.calls import Call
    from labkit.lab.facade import Lab

__all__ = ["ControlPanel", "DEFAULT_PHONE", "panel"]

DEFAULT_PHONE = "447700900001"  # the virtual phone the sandbox notebooks call


def say_text(value: str) -> str:
    """The Say box's text, or why it cannot be said."""
    text = str(value).strip()
    if not text:
        raise InvalidInput("Type what to say in the Say box first.")
    return validate.talk_text(text, "the Say box")


def panel(lab: Lab, **kwargs: Any) -> ControlPanel:
    """The control panel for `lab` (see `ControlPanel` for the options)."""
    return ControlPanel(lab, **kwargs)


class ControlPanel(LivePanel, PanelControls, widgets.HBox):
    """Place a call, steer it (stream, say, keys, mute, earmuff, hang up) and watch what happens.

    Options: `to` (number to call; default TO_NUMBER, or the sandbox's virtual phone), `ncco` (the
    script for calls placed here: models/dicts, or a zero-argument callable returning them, which is
    needed for WebSocket scripts since each call needs its own socket link), `answer_url`,
    `max_events` (lines in the live log), `softphone` (sandbox: show the called phone beside the
    panel; default True in sandbox mode), `follow_inbound` (take over inbound calls while idle).
    """

    def __init__(self, lab: Lab, *, to: str | None = None, ncco: Any = None, answer_url: str | None = None,
                 max_events: int = 12, softphone: bool | None = None, follow_inbound: bool = True,
                 waveform_seconds: float = 3.0):
        self.lab = lab
        self.ncco = ncco
        self.answer_url = answer_url
        self.follow_inbound = follow_inbound
        self.call: Call | None = None
        self.last_error: BaseException | None = None
        self._recent: deque[Event] = deque(maxlen=max_events)
        self._lock = threading.RLock()
        self._placing = False
        self._quiet = False  # True while the panel itself resets toggles (their observers stay still)
        self._shown_recordings = -1
        self._phone_feed: Callable[[], None] | None = None
        self._keys_sent = ""  # the keys pressed on this call, shown in the trace line

        default_to = to or lab.settings.to_number or (DEFAULT_PHONE if lab.mode == "sandbox" else "")
        # -- dialling
        self.to = widgets.Text(value=default_to, description="To", placeholder="447700900001",
                               continuous_update=True, layout=widgets.Layout(width="260px"))
        self.to_hint = widgets.HTML()
        self.call_button = widgets.Button(description="Call", icon="phone", button_style="success",
                                          tooltip="place a call to this number")
        self.hangup_button = widgets.Button(description="Hang up", icon="phone-slash", button_style="danger",
                                            tooltip="end the call")
        self.status = widgets.Label(value="no call")
        self.status.add_class("labkit-status")
        # what the last click did ("sent key 5", "muted: ..."), so every button leaves a visible trace
        self.trace = widgets.HTML(value="")
        self.trace.add_class("labkit-trace")
        # what the lab is waiting for (a notebook cell's wait_for), with the seconds it has waited
        self.waiting = WaitLine()
        self.call_label = widgets.HTML(value="")
        # why the call went wrong, in the app author's words, with what to do (labkit.lab.history.problem_of)
        self.problem = widgets.HTML(value="")
        self.problem.add_class("labkit-problem")
        # -- audio into the call
        files = lab.audio_files()
        self.stream_file = widgets.Dropdown(options=files, value=pick(files), description="File",
                                            layout=widgets.Layout(width="260px"))
        self.stream_loop = widgets.IntText(value=0, description="Loop", tooltip="0 repeats until stopped",
                                           layout=widgets.Layout(width="140px"))
        self.stream_level = widgets.FloatSlider(value=0.0, min=-1.0, max=1.0, step=0.1, description="Level",
                                                readout_format=".1f", layout=widgets.Layout(width="260px"))
        self.stream_toggle = widgets.ToggleButton(value=False, description="Stream", icon="play",
                                                  tooltip="start/stop streaming the file into the call")
        self.say_text = widgets.Text(value="Hello from the labkit panel.", description="Say",
                                     layout=widgets.Layout(width="360px"))
        self.say_button = widgets.Button(description="Say", icon="comment", tooltip="text-to-speech into the call")
        self.keypad, self.dtmf_keys = keypad(self._press)
        # Named from the phone's side (Vonage: mute stops the leg's audio reaching the call; earmuff stops the
        # leg hearing it, "the user cannot hear other participants, but other participants can hear the user")
        self.mute_toggle = widgets.ToggleButton(value=False, description=TOGGLE_LABELS["mute"][0],
                                                icon="microphone-slash", tooltip=TOGGLE_TIPS["mute"])
        self.earmuff_toggle = widgets.ToggleButton(value=False, description=TOGGLE_LABELS["earmuff"][0],
                                                   icon="deaf", tooltip=TOGGLE_TIPS["earmuff"])
        # -- what came back
        self.events_html = widgets.HTML(value=events_html([], None))
        self.events_html.add_class("labkit-events")
        self.waveform = LiveWaveform(seconds=waveform_seconds, title="call audio")
        self.audio = call_audio(lab)  # Listen / Talk in the browser (None without anywidget)
        self.player = widgets.Audio(format="wav", autoplay=False, controls=True,
                                    layout=widgets.Layout(display="none"))
        self.recordings_box = widgets.VBox([])
        self.history = HistoryView(lab)  # every call this panel steered; open one for its exchange with the app
        self.error = error_line()

        self.to.observe(self._on_to_change, names="value")
        for field in (self.stream_loop, self.stream_level, self.say_text):
            field.observe(self._on_field_change, names="value")
        self.call_button.on_click(self._on_call)
        self.hangup_button.on_click(self._on_hangup)
        self.stream_toggle.observe(self._on_stream_toggle, names="value")
        self.say_button.on_click(self._on_say)
        self.mute_toggle.observe(self._on_mute_toggle, names="value")
        self.earmuff_toggle.observe(self._on_earmuff_toggle, names="value")
        self._on_to_change({"new": self.to.value})

        title = widgets.HTML(f"<b>labkit control panel</b> <small>({html.escape(lab.mode)} mode, "
                             f"from {html.escape(str(lab.number))})</small>")
        self.main = widgets.VBox([
            title,
            widgets.HBox([self.to, self.call_button, self.hangup_button]),
            self.to_hint,
            widgets.HBox([widgets.HTML("<b>Status:</b>&nbsp;"), self.status, self.call_label]),
            self.problem,
            widgets.HBox([self.stream_file, self.stream_loop]),
            widgets.HBox([self.stream_level, self.stream_toggle]),
            widgets.HBox([self.say_text, self.say_button]),
            widgets.HBox([self.keypad, widgets.VBox([self.mute_toggle, self.earmuff_toggle])]),
            self.trace,
            self.waiting,
            self.error,
            widgets.HTML("<b>Events</b> (newest last)"),
            self.events_html,
            widgets.HTML("<b>Calls</b> (newest first: open one for its exchange with the app)"),
            self.history,
            widgets.HTML("<b>Live audio</b>"),
            *([self.audio] if self.audio is not None else []),
            self.waveform,
            widgets.HTML("<b>Recordings</b>"),
            self.recordings_box,
            self.player,
        ], layout=widgets.Layout(width="560px", padding="6px", border="1px solid #ccc"))
        self.main.add_class("labkit-panel")

        self.softphone = None
        if softphone is None:
            softphone = lab.mode == "sandbox"
        children: list[widgets.Widget] = [self.main]
        if softphone and lab.mode == "sandbox":
            number = validate.typed_phone_number(self.to.value or DEFAULT_PHONE)
            self.softphone = Softphone(lab, number)
            children.append(self.softphone)
        super().__init__(children=children, layout=widgets.Layout(align_items="flex-start", grid_gap="12px"))

        for event in list(lab.events)[-max_events:]:
            self._recent.append(event)
        self._unsubscribe = lab.events.subscribe(self._on_event)
        self._adopt_running_call()  # a re-run cell takes over the call the old panel steered
        self._render_events()
        self._refresh_recordings()
        self._sync_controls()

    # -- which call ------------------------------------------------------------------------------
    def attach(self, call: Call) -> None:
        """Steer `call` from now on (the panel does this itself for calls it places)."""
        with self._lock:
            self.call = call
            self._reset_toggles()
            self.waveform.unfollow()
            self._stop_phone_feed()
            self.waveform.reset()
            self._hide_player()  # the last call's recording is not this call's
            self._keys_sent = ""
            if self.audio is not None:
                self.audio.follow(call)
        self.history.add(call)
        if isinstance(self.last_error, (InvalidInput, CallEndedError)):
            show_error(self, None)  # "no call yet" / "the call has ended" are fixed by having a call
        self.call_label.value = (f"&nbsp;<small><code>{html.escape(call.uuid[:8])}</code> "
                                 f"{html.escape(call.direction)} {html.escape(str(call.to or ''))}</small>")
        self._refresh_status()
        self._follow_audio()
        self._render_events()
        self._sync_controls()

    def _use_softphone(self, number: str) -> None:
        """Sandbox: show the handset of the phone about to be called (the old one goes back to normal)."""
        old = self.softphone
        self.softphone = Softphone(self.lab, number)
        self.children = [self.main, self.softphone]
        if old is not None:
            old.close()

    def _require_call(self) -> Call:
        call = self.call
        if call is None:
            raise InvalidInput("There is no call yet: press Call first.")
        if call.ended:
            raise CallEndedError(f"The call has ended ({call.status}): press Call to place a new one.")
        return call

    # -- handlers (each runs through `guarded`) -------------------------------------------------------
    @guarded
    def _on_to_change(self, change: dict) -> None:
        text = str(change.get("new") or "")
        try:
            number = validate.typed_phone_number(text, "number to call", home=self.lab.number)
        except InvalidInput as exc:
            self.to_hint.value = f"<small style='{ERROR_STYLE}'>&#10007; {html.escape(str(exc))}</small>"
            return
        self.to_hint.value = f"<small style='{OK_STYLE}'>&#10003; will call {number}</small>"

    def call_is_up(self) -> bool:
        """True while the panel's call is being placed or has not ended (Call is disabled then)."""
        return self._placing or (self.call is not None and not self.call.ended)

    @guarded
    def _on_call(self, _button: Any = None) -> None:
        with self._lock:
            if self.call_is_up():
                # A second click that arrived before the button was disabled: one click, one call.
                self._refuse("a call is already up: hang it up before placing another")
                return
            self._placing = True
            self.call_button.disabled = True
        try:
            try:
                number = validate.typed_phone_number(self.to.value, "number to call", home=self.lab.number)
            except InvalidInput:
                raise InvalidInput("Fix the number in To first (the red hint under it says what is wrong).") from None
            self._refresh_files()
            script = self.ncco() if callable(self.ncco) else self.ncco
            if self.softphone is not None and self.softphone.number != number:
                self._use_softphone(number)
            self._say_done(f"calling {number}\u2026")
            call = self.lab.call(number, ncco=script, answer_url=self.answer_url)
        except BaseException:
            with self._lock:
                self._placing = False
                self.call_button.disabled = False
            raise
        with self._lock:
            self.call = call  # before _placing drops, so webhooks of this call never see an idle panel
            self._placing = False
        self.attach(call)
        self._say_done(f"placed call {call.uuid[:8]} to {number}")

    @guarded
    def _on_hangup(self, _button: Any = None) -> None:
        call = self._require_call()
        call.hangup()
        self._say_done(f"hang-up sent for call {call.uuid[:8]}")

    @guarded
    def _on_stream_toggle(self, change: dict) -> None:
        if self._quiet:
            return
        try:
            call = self._require_call()
            if change["new"]:
                if not self.stream_file.value:
                    raise InvalidInput("No audio file to stream: put MP3/WAV files in the lab's audio folder "
                                       "(lab.add_audio_dir(...)).")
                loop = self._check_field(self.stream_loop, validate.loop)
                level = self._check_field(self.stream_level, validate.level)
                call.stream(self.stream_file.value, loop=loop, level=level)
                self.stream_toggle.icon = "stop"
                self.stream_toggle.description = "Stop stream"
                self._say_done(f"streaming {self.stream_file.value} into the call")
            else:
                call.stop_stream()
                self._set_stream_idle()
                self._say_done("stream stopped")
        except Exception:
            self._set_quietly(self.stream_toggle, not change["new"])
            raise

    @guarded
    def _on_say(self, _button: Any = None) -> None:
        text = self._check_field(self.say_text, say_text)
        self._require_call().say(text)
        self._say_done(f"saying \u201c{clip(text)}\u201d")

    @guarded
    def _press(self, digit: str) -> None:
        self._require_call().dtmf(digit)
        self._keys_sent += digit
        self._say_done(f"sent key {digit} (keys sent on this call: {self._keys_sent})")

    @guarded
    def _on_mute_toggle(self, change: dict) -> None:
        self._toggle(change, self.mute_toggle, "mute", "unmute")

    @guarded
    def _on_earmuff_toggle(self, change: dict) -> None:
        self._toggle(change, self.earmuff_toggle, "earmuff", "unearmuff")

    def _toggle(self, change: dict, widget: widgets.ToggleButton, on: str, off: str) -> None:
        if self._quiet:
            return
        try:
            call = self._require_call()
            getattr(call, on if change["new"] else off)()
        except Exception:
            self._set_quietly(widget, not change["new"])
            raise
        self._show_toggle(widget)
        self._say_done(TOGGLE_WORDS[on if change["new"] else off])

    # -- cleanup -----------------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop listening to the lab and close every inner widget."""
        self._unsubscribe()
        self.waiting.close()
        self._stop_phone_feed()
        self.waveform.close()
        self.history.close()
        if self.audio is not None:
            self.audio.close()
        if self.softphone is not None:
            self.softphone.close()
        super().close()

    def __repr__(self) -> str:
        call = f"call {self.call.uuid[:8]}, {self.status.value}" if self.call else "no call"
        return f"control panel ({self.lab.mode} mode): {call}; {self.history!r}"
