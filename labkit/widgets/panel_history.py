"""The panel's call history and call inspector: one row per call it steered (direction, other party, status,
start, duration, call id), newest first; opening a row shows that call's exchange with the app in order
(each webhook with URL, method, status and time taken, the app's NCCO pretty-printed with the platform's
verdict, each NCCO action as it ran) and, where there is one, the audio the phone heard.

The rows and the steps come from `labkit.lab.history` and `labkit.lab.exchange` (the same record the
sandbox page reads in sandbox mode; in live mode only what the lab's webhooks received). Every update sets
widget traits, so webhook threads may call `refresh` directly.
"""

from __future__ import annotations

import html
import threading
from typing import TYPE_CHECKING

import ipywidgets as widgets

from labkit.lab.history import CallHistory
from labkit.widgets._common import ERROR_STYLE, guarded, recording_wav, show_error

if TYPE_CHECKING:  # pragma: no cover
    from labkit.lab.calls import Call
    from labkit.lab.facade import Lab

__all__ = ["HistoryView", "exchange_html", "problem_html"]

PENDING = "waiting for the app's answer"  # (labkit.lab.exchange's words for a webhook still in flight)
PENDING_TRIES, PENDING_WAIT = 20, 0.25  # an open call's view looks again while a webhook is in flight
# Long URLs wrap inside the panel's width instead of running under its edge; lines sit close together.
WRAP = "white-space:normal;overflow-wrap:anywhere;line-height:1.35"
STEP_COLOURS = {"webhook": "#1f4e79", "script": "#6a1b9a", "action": "#00695c", "lab": "#8a6d00"}


def problem_html(problem: str | None) -> str:
    """The panel's problem line: why the call went wrong, in red, or nothing."""
    if not problem:
        return ""
    return (f"<div class='labkit-problem-text' style='{ERROR_STYLE};{WRAP}'>&#9888; "
            f"{html.escape(problem)}</div>")


def exchange_html(call: Call) -> str:
    """One call's exchange with the app, oldest step first."""
    from labkit.lab.exchange import exchange

    rows = []
    for step in exchange(call):
        colour = ERROR_STYLE if not step.ok else f"color:{STEP_COLOURS.get(step.kind, '#333')}"
        body = ""
        if step.body:
            body = ("<pre style='margin:2px 0 4px 16px;padding:3px;background:#f6f6f6;max-height:160px;"
                    "overflow:auto;white-space:pre-wrap;overflow-wrap:anywhere'>"
                    f"{html.escape(step.body)}</pre>")
        when = f"{step.at.astimezone():%H:%M:%S.%f}"[:-3]
        rows.append(f"<li class='labkit-step labkit-step-{step.kind}' style='{colour}'><code>{when}</code> "
                    f"{html.escape(step.title)}{body}</li>")
    if not rows:
        return "<i>nothing yet: the platform has not sent this call's first webhook</i>"
    return (f"<ol class='labkit-exchange-steps' style='font-size:12px;padding-left:20px;margin:2px 0;{WRAP}'>"
            + "".join(rows) + "</ol>")


class HistoryView(widgets.VBox):
    """The calls, newest first, each with an Open button; the opened call's exchange below them."""

    def __init__(self, lab: Lab, *, limit: int = 50) -> None:
        self.lab = lab
        self.history = CallHistory(limit)
        self.opened: str | None = None
        self.last_error: BaseException | None = None
        self._rows: dict[str, tuple[widgets.HBox, widgets.HTML, widgets.Button]] = {}
        self._lock = threading.RLock()
        self.rows = widgets.VBox([])
        self.rows.add_class("labkit-history-rows")
        self.empty = widgets.HTML("<small>no calls yet</small>")
        self.detail = widgets.HTML("", layout=widgets.Layout(width="100%"))  # wraps inside the panel
        self.detail.add_class("labkit-exchange")
        self.heard = widgets.Audio(format="wav", autoplay=False, controls=True, layout=widgets.Layout(display="none"))
        self.heard_label = widgets.HTML("")
        self.error = widgets.HTML("")
        super().__init__([self.empty, self.rows, self.error, self.detail, self.heard_label, self.heard])
        self.add_class("labkit-history")
        # The history outlives the panel: a re-run cell (which adopts the call in progress) lists the calls
        # the panels of this lab steered before it, as a person expects of a phone's call log.
        before = getattr(lab, "_panel_history", None)
        for call in reversed(before.calls if isinstance(before, CallHistory) else []):
            self.add(call)
        lab._panel_history = self.history  # type: ignore[attr-defined]

    def add(self, call: Call) -> None:
        """A call the panel steers joins the top of the list (once)."""
        with self._lock:
            if not self.history.add(call):
                self.refresh(call.uuid)
                return
            label = widgets.HTML("")
            label.add_class("labkit-call-row")
            button = widgets.Button(description="Open", tooltip="show this call's exchange with the app",
                                    layout=widgets.Layout(width="70px", flex="0 0 auto"))
            button.on_click(lambda _b, uuid=call.uuid: self._on_open(uuid))
            row = widgets.HBox([button, label], layout=widgets.Layout(align_items="center"))
            self._rows[call.uuid] = (row, label, button)
            kept = [c.uuid for c in self.history.calls]
            for gone in set(self._rows) - set(kept):
                self._rows.pop(gone)[0].close()
            self.rows.children = [self._rows[uuid][0] for uuid in kept]
            self.empty.layout.display = "none"
            self.refresh(call.uuid)

    def refresh(self, uuid: str | None = None) -> None:
        """Rewrite the row of call `uuid` (every row when None), and the opened call's exchange."""
        with self._lock:
            for call in self.history.calls:
                if uuid is not None and call.uuid != uuid:
                    continue
                entry = self.history.entry(call)
                _row, label, _button = self._rows[call.uuid]
                colour = f"{ERROR_STYLE};" if entry.problem else ""
                label.value = f"<div style='{colour}font-size:smaller;{WRAP}'>{html.escape(entry.line())}</div>"
            if self.opened is not None and (uuid is None or uuid == self.opened):
                self._show(self.opened)

    @guarded
    def _on_open(self, uuid: str) -> None:
        with self._lock:
            if self.opened == uuid:  # a second click closes it
                self.opened = None
                self._rows[uuid][2].description = "Open"
                self.detail.value, self.heard_label.value = "", ""
                self._hide_heard()
                return
            if self.opened in self._rows:
                self._rows[self.opened][2].description = "Open"
            self.opened = uuid
            self._rows[uuid][2].description = "Close"
            self._show(uuid)
            self._show_heard(uuid)
        show_error(self, None)

    def _show(self, uuid: str, tries: int = 0) -> None:
        call = self.history.get(uuid)
        if call is None:
            return
        entry = self.history.entry(call)
        head = (f"<b>Call {html.escape(call.uuid)}</b> <small>({html.escape(entry.direction)}, "
                f"{html.escape(entry.status)})</small>")
        steps = exchange_html(call)
        self.detail.value = (f"<div class='labkit-exchange-box' style='border:1px solid #ddd;padding:4px;"
                             f"{WRAP}'>{head}"
                             f"{problem_html(entry.problem)}{steps}</div>")
        if html.escape(PENDING) in steps and tries < PENDING_TRIES:
            # The app's answer to the last webhook lands after the lab's event for it: look again shortly.
            timer = threading.Timer(PENDING_WAIT, self._show_again, (uuid, tries + 1))
            timer.daemon = True
            timer.start()

    def _show_again(self, uuid: str, tries: int) -> None:
        with self._lock:
            if self.opened == uuid:
                self._show(uuid, tries)

    def _show_heard(self, uuid: str) -> None:
        """The audio heard on the call: the virtual phone's ears (sandbox), or the call's WebSocket recording."""
        call = self.history.get(uuid)
        recording, what = None, ""
        if call is not None and self.lab.sandbox is not None and call.to:
            try:
                recording = self.lab.phone(str(call.to)).heard_in(uuid)
                what = f"what {call.to} heard"
            except Exception:  # noqa: BLE001 - not a virtual phone, or not in this call: nothing heard
                recording = None
        if recording is None:
            recording = next((r for r in reversed(self.lab.recordings) if r.call_uuid == uuid), None)
            what = "the call's WebSocket recording"
        if recording is None or not getattr(recording, "duration", 0):
            self.heard_label.value = "<small>no audio heard on this call</small>"
            self._hide_heard()
            return
        self.heard.value = recording_wav(recording)
        self.heard.layout.display = None
        self.heard_label.value = f"<small>{html.escape(what)}, {recording.duration:.1f} s</small>"

    def _hide_heard(self) -> None:
        self.heard.layout.display = "none"
        self.heard.value = b""

    def close(self) -> None:
        """Close the rows and the inspector with the list (a container's close leaves its children open)."""
        with self._lock:
            self.opened = None
            for row, label, button in self._rows.values():
                for widget in (button, label, row):
                    widget.close()
            self._rows.clear()
        for widget in (self.rows, self.empty, self.detail, self.heard_label, self.heard, self.error):
            widget.close()
        super().close()

    def __repr__(self) -> str:
        return f"call history: {len(self.history)} call{'s' if len(self.history) != 1 else ''}"
