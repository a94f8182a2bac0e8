"""The control panel's live side: what webhooks and WebSockets tell it, on their own threads.

`LivePanel` is the half of `ControlPanel` (panel.py) that reacts instead of acting: it keeps the event
lines, follows inbound calls while idle, refreshes the status (and Call's disabled state), points the
waveform and Listen/Talk at the call's audio, and lists recordings. Everything here sets widget traits
only (safe from any thread in ipywidgets); the widgets themselves are built in panel.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from labkit.errors import LabkitError
from labkit.events import FINAL_STATUSES, Event
from labkit.lab.history import problem_of
from labkit.widgets._common import guarded, recording_wav, show_error
from labkit.widgets.lines import events_html, follow_phone
from labkit.widgets.panel_history import problem_html

if TYPE_CHECKING:  # pragma: no cover
    from labkit.lab.calls import Call

__all__ = ["LivePanel"]


class LivePanel:
    """Mixed into ControlPanel: the handlers for events, status, audio following and recordings."""

    call: Call | None
    lab: Any

    def _on_event(self, event: Event) -> None:
        with self._lock:  # webhooks arrive on several threads at once
            self._handle_event(event)

    def _handle_event(self, event: Event) -> None:
        try:
            self._recent.append(event)
            call = self.call
            if call is None or call.ended:
                self._maybe_follow(event)
                call = self.call
            if call is not None and event.belongs_to(call.uuid, call.conversation_uuid):
                self._refresh_status()  # (an error event names only the conversation)
                if event.kind == "socket" and event.payload.get("event") == "websocket:connected":
                    self._follow_audio()
            self._refresh_history(event)
            if event.kind == "socket" and event.status == "socket-closed":
                self._refresh_recordings()
            self._render_events()
        except Exception as exc:  # noqa: BLE001 - never break the webhook thread; say it in the panel
            show_error(self, exc)

    def _maybe_follow(self, event: Event) -> None:
        """While idle, take over an inbound call (someone called the lab's number)."""
        if not self.follow_inbound or self._placing or not event.uuid or event.kind != "answer":
            return
        if str(event.payload.get("to", "")).lstrip("+") != str(self.lab.number):
            return  # an outbound call placed by other code: not ours to steer
        if self.call is not None and self.call.uuid == event.uuid:
            return
        from labkit.lab.calls import Call

        call = self.lab.calls.get(event.uuid) or Call(
            self.lab, event.uuid, conversation_uuid=event.conversation_uuid, to=event.payload.get("from"),
            direction="inbound")
        self.attach(call)

    def _refresh_status(self) -> None:
        call = self.call
        if call is None:
            self.status.value = "no call"
            self.problem.value = ""
            self._sync_controls()
            return
        status = call.status or "placed"
        self.problem.value = problem_html(problem_of(call))  # at once, beside the status
        if status in FINAL_STATUSES:
            self._reset_toggles()
            self._stop_phone_feed()
            if self.audio is not None and self.audio.call is call:
                self.audio.follow(None)
        self._sync_controls()
        self.status.value = status  # last: when it reads "completed", the buttons already say so too

    def _refresh_history(self, event: Event) -> None:
        """The history row of the call `event` is about (its conversation's, for an event naming no leg)."""
        for call in self.history.history.calls:
            if event.uuid == call.uuid or (event.uuid is None and event.conversation_uuid
                                           and event.conversation_uuid == call.conversation_uuid):
                self.history.refresh(call.uuid)
                return

    def _follow_audio(self) -> None:
        """The waveform shows the call's WebSocket audio when it has one, else (sandbox) what the
        called virtual phone hears."""
        call = self.call
        if call is None or self.lab.sockets is None:
            return
        sessions = [s for s in list(self.lab.sockets.sessions) if s.call_uuid == call.uuid and s.open]
        if sessions:
            self._stop_phone_feed()
            self.waveform.follow(sessions[-1])
            if self.audio is not None and self.audio.call is call and "WebSocket" not in self.audio.source:
                self.audio.follow(call)  # the socket is up now: hear it, talk into it
            return
        if self.lab.mode == "sandbox" and self._phone_feed is None and call.to:
            self._phone_feed = follow_phone(self.lab, call.to, self.waveform)

    def _stop_phone_feed(self) -> None:
        stop, self._phone_feed = self._phone_feed, None
        if stop is not None:
            stop()

    def _render_events(self) -> None:
        if self.call is None:
            self._sync_controls()
        with self._lock:
            call = self.call
            self.events_html.value = events_html(list(self._recent), call.uuid if call else None)

    def _refresh_recordings(self) -> None:
        try:
            recordings = self.lab.recordings
        except LabkitError:
            return
        if len(recordings) == self._shown_recordings:
            return
        self._shown_recordings = len(recordings)
        rows = []
        for i, rec in enumerate(recordings):
            button = widgets.Button(description=f"Play {rec.duration:.1f} s", icon="play",
                                    tooltip=f"play recording {i + 1} ({rec.path})",
                                    layout=widgets.Layout(width="120px"))
            button.on_click(lambda _b, i=i: self._play_recording(i))
            call = (rec.call_uuid or "")[:8]
            what = f"recording {i + 1}: call {call}" if call else f"recording {i + 1}"
            rows.append(widgets.HBox([button, widgets.Label(f"{what}, {rec.rate / 1000:g} kHz")]))
        self.recordings_box.children = rows or [widgets.Label("none yet (a WebSocket call makes one)")]

    @guarded
    def _play_recording(self, index: int) -> None:
        recordings = self.lab.recordings
        recording = recordings[index]
        self.player.value = recording_wav(recording)
        self.player.autoplay = True
        self.player.layout.display = None
