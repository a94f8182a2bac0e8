"""The control panel's lines of text and the helpers behind them: the events box (newest line in view),
the waiting line (what a notebook cell waits for, ticking), the trace words, the file pick, and
the live-audio pieces a panel plugs in.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from labkit.events import Event
from labkit.widgets.softphone import follow_heard
from labkit.widgets.waveform import LiveWaveform

if TYPE_CHECKING:  # pragma: no cover
    from labkit.lab.facade import Lab

KIND_COLOURS = {"event": "#1f4e79", "answer": "#6a1b9a", "socket": "#00695c", "lab": "#8a6d00"}


class WaitLine(widgets.HTML):
    """One line saying what the lab waits for and for how long (labkit.waits), ticking every second
    while a wait runs, then how it ended."""

    def __init__(self) -> None:
        super().__init__(value="")
        self.add_class("labkit-waiting")
        self._ticker: threading.Event | None = None
        from labkit import waits

        self._unwatch = waits.watch(self._on_wait)

    def _on_wait(self, wait: Any) -> None:
        """A notebook cell started or ended a wait: show it, and tick the seconds while it runs."""
        from labkit import waits

        running = waits.current()
        if not running:
            if self._ticker is not None:
                self._ticker.set()
                self._ticker = None
            self.value = f"<small>{html.escape(wait.line())}</small>"
            return
        self.value = "<small>" + "<br>".join(html.escape(w.line()) for w in running) + "</small>"
        if self._ticker is None:
            stop = self._ticker = threading.Event()

            def tick() -> None:
                while not stop.wait(1.0):
                    now = waits.current()
                    if now:
                        self.value = "<small>" + "<br>".join(html.escape(w.line()) for w in now) + "</small>"

            threading.Thread(target=tick, name="labkit-wait-line", daemon=True).start()

    def close(self) -> None:
        self._unwatch()
        if self._ticker is not None:
            self._ticker.set()
        super().close()


# Mute and earmuff act on the leg to the phone, and read from the phone's side (Vonage: mute stops the
# leg's audio reaching the call; earmuff: "the user cannot hear other participants, but other participants
# can hear the user", the earmuff code snippet page). (label when off, label when on) per toggle:
TOGGLE_LABELS = {"mute": ("Mute phone", "Phone muted"), "earmuff": ("Earmuff phone", "Phone earmuffed")}
TOGGLE_TIPS = {
    "mute": "the phone's voice is cut from the call (the phone still hears everything)",
    "earmuff": "the phone hears nothing from the call (its voice still reaches the call)",
}
TOGGLE_WORDS = {
    "mute": "phone muted: its voice is cut from the call; it still hears the call",
    "unmute": "phone unmuted: its voice reaches the call again",
    "earmuff": "phone earmuffed: it hears nothing from the call; its voice still reaches the call",
    "unearmuff": "earmuff off: the phone hears the call again",
}


def clip(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def pick(files: list[str]) -> str | None:
    for preferred in ("music.mp3", "music.wav"):
        if preferred in files:
            return preferred
    audible = [f for f in files if not f.startswith("silence")]
    return (audible or files or [None])[0]


def events_html(events: list[Event], uuid: str | None) -> str:
    """The last events, one line each, the current call's in bold."""
    if not events:
        return "<div style='font-family:monospace;font-size:12px;color:#888'>no events yet</div>"
    lines = []
    for e in reversed(events):  # newest first in the markup; column-reverse puts it at the bottom
        colour = KIND_COLOURS.get(e.kind, "#333")
        weight = "bold" if uuid and e.uuid == uuid else "normal"
        lines.append(f"<div style='color:{colour};font-weight:{weight};white-space:pre'>"
                     f"{html.escape(e.summary())}</div>")
    # A column-reverse scroll box starts scrolled to its end, so the newest line is in view without
    # anyone scrolling, however many lines there are (the browser keeps it there as lines arrive).
    return ("<div class='labkit-events-scroll' style='font-family:monospace;font-size:12px;max-height:240px;"
            "overflow:auto;display:flex;flex-direction:column-reverse;border:1px solid #eee;padding:3px'>"
            + "".join(lines) + "</div>")


def call_audio(lab: Lab) -> Any:
    """The browser audio widget, or None when anywidget is missing (the panel works without it)."""
    try:
        from labkit.widgets.call_audio import CallAudio
    except ImportError:
        return None
    return CallAudio(lab)


def follow_phone(lab: Lab, number: str, waveform: LiveWaveform) -> Callable[[], None] | None:
    """Sandbox: feed `waveform` with what the virtual phone at `number` hears; returns a stop function."""
    try:
        phone = lab.phone(number)
    except Exception:  # noqa: BLE001 - not a virtual phone: nothing to show
        return None
    return follow_heard(phone, waveform, title=f"what {number} hears")
