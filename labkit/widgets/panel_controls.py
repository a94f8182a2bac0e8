"""The control panel's controls kept honest: a control that needs a call is disabled until there is one,
a toggle's label says what it did and from whose side, a refusal never reads as a tick, an input's error
clears once the input is fixed, and a re-run cell takes over the call the old panel steered.

`PanelControls` is mixed into `ControlPanel` (panel.py), which builds the widgets it reads.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import ipywidgets as widgets

from labkit.errors import InvalidInput
from labkit.events import FINAL_STATUSES
from labkit.widgets._common import OK_STYLE, show_error
from labkit.widgets.lines import TOGGLE_LABELS, pick

if TYPE_CHECKING:  # pragma: no cover
    from labkit.lab.calls import Call

T = TypeVar("T")
REFUSED_STYLE = "color:#8a6d00"


class PanelControls:
    """Mixed into ControlPanel: which controls are live, what their labels and trace lines say."""

    call: Call | None
    lab: Any
    last_error: BaseException | None

    # -- which controls work now -------------------------------------------------------------------
    def call_controls(self) -> list[widgets.Widget]:
        """Everything that acts on a call: disabled while there is none (or it has ended)."""
        return [self.hangup_button, self.stream_toggle, self.say_button, self.mute_toggle, self.earmuff_toggle,
                *self.dtmf_keys.values()]

    def _call_live(self) -> bool:
        call = self.call
        return call is not None and not call.ended and (call.status or "") not in FINAL_STATUSES

    def _sync_controls(self) -> None:
        """Enable the call controls while the panel's call is up, and only then (Call the other way round)."""
        live = self._call_live()
        for control in self.call_controls():
            control.disabled = not live
        self.call_button.disabled = live or self._placing

    def _adopt_running_call(self) -> None:
        """A panel made while a call is up (its cell re-run mid-call) steers that call, so Hang up works.

        The newest call of the lab that has not ended and that this panel would have steered: one placed
        to its number, or one that came in to the lab's number."""
        if self.call is not None:
            return
        wanted = str(self.to.value).lstrip("+")
        for call in reversed(list(self.lab.calls.values())):
            if call.ended or (call.status or "") in FINAL_STATUSES:
                continue
            to = str(call.to or "").lstrip("+")
            if call.direction == "inbound" or not wanted or to == wanted:
                self.attach(call)
                self._say_done(f"took over call {call.uuid[:8]}, already in progress")
                return

    # -- what a click left behind --------------------------------------------------------------------
    def _say_done(self, text: str) -> None:
        """The trace line: what the last click did, so no button leaves a person guessing."""
        self.trace.value = f"<small style='{OK_STYLE}'>&#10003; {html.escape(text)}</small>"

    def _refuse(self, text: str) -> None:
        """The trace line for a click that did nothing on purpose (never a tick)."""
        self.trace.value = f"<small style='{REFUSED_STYLE}'>&#8856; {html.escape(text)}</small>"

    def _show_toggle(self, widget: widgets.ToggleButton) -> None:
        """A toggle that is on says so in its label and colour ("Phone muted"), not only its shade."""
        off, on = TOGGLE_LABELS["mute" if widget is self.mute_toggle else "earmuff"]
        widget.description = on if widget.value else off
        widget.button_style = "warning" if widget.value else ""

    # -- inputs whose errors clear once fixed ----------------------------------------------------------
    def _check_field(self, field: widgets.Widget, check: Callable[[Any], T]) -> T:
        """`check(field.value)`; when it refuses, remember the field, so fixing it clears the error."""
        try:
            return check(field.value)
        except InvalidInput:
            self._bad_field = (field, check)
            raise

    def _on_field_change(self, change: dict) -> None:
        bad = getattr(self, "_bad_field", None)
        if bad is None or change.get("owner") is not bad[0] or self.last_error is None:
            return
        try:
            bad[1](change["new"])
        except InvalidInput:
            return  # still wrong: the error stays
        self._bad_field = None
        show_error(self, None)

    # -- toggles the panel resets itself ---------------------------------------------------------------
    def _set_quietly(self, widget: widgets.ToggleButton, value: bool) -> None:
        self._quiet = True
        try:
            widget.value = value
        finally:
            self._quiet = False
        if widget is self.stream_toggle and not value:
            self._set_stream_idle()
        elif widget is not self.stream_toggle:
            self._show_toggle(widget)

    def _set_stream_idle(self) -> None:
        self.stream_toggle.icon = "play"
        self.stream_toggle.description = "Stream"

    def _reset_toggles(self) -> None:
        for widget in (self.stream_toggle, self.mute_toggle, self.earmuff_toggle):
            if widget.value:
                self._set_quietly(widget, False)

    def _hide_player(self) -> None:
        self.player.layout.display = "none"
        self.player.autoplay = False
        self.player.value = b""

    def _refresh_files(self) -> None:
        files = self.lab.audio_files()
        if list(self.stream_file.options) != files:
            current = self.stream_file.value
            self.stream_file.options = files
            self.stream_file.value = current if current in files else pick(files)
