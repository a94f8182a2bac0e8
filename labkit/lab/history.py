"""The calls one panel steered, newest first, and why one went wrong, in the app author's words.

`CallHistory` keeps one row per call (direction, other party, status, start, duration, call id), worked
out from the event log each time it is read, so a row is right whichever webhook thread changed it last.
`problem_of` says why a call failed with the sentences the sandbox page shows
(`labkit.sandbox.control.problems`), found in what the lab itself received in either mode (its answer
handler's error, the fallback answer request Vonage sends with a `reason` when the app's answer URL
failed, an `error` event, a final status with its detail) and, in sandbox mode, in the sandbox's own
record of the leg (an NCCO it refused, an audio file it could not fetch). Live mode says only what the
webhooks said.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from labkit.events import FINAL_STATUSES, NEVER_ANSWERED, Event

if TYPE_CHECKING:  # pragma: no cover
    from labkit.lab.calls import Call

__all__ = ["CallEntry", "CallHistory", "fallback_of", "problem_of", "sandbox_view"]

HANDLER_ERRORS = ("answer-handler-error", "event-handler-error")
# What a final status without an answer means to the person calling (Vonage's event webhook reference:
# statuses and their `detail`, vonage-voice-api.md "Event webhook").
ENDED_WORDS = {
    "busy": "the phone was busy",
    "rejected": "the call was rejected",
    "unanswered": "nobody answered",
    "timeout": "nobody answered before the ringing timer ran out",
    "failed": "the call could not be connected",
    "cancelled": "the call was cancelled before it was answered",
}


@dataclass(frozen=True)
class CallEntry:
    """One row of the history, as a person reads it."""

    uuid: str
    direction: str  # "outbound" | "inbound"
    other: str  # the number called, or the number that called
    status: str  # the call's status now ("placed" before the first event)
    started: datetime
    duration: float | None  # seconds: Vonage's `duration` once completed, the time so far while it runs
    problem: str | None  # why it went wrong, in words (None when nothing did)

    @property
    def ended(self) -> bool:
        return self.status in FINAL_STATUSES

    def line(self) -> str:
        """The row in one line: "08:01:02 outbound to 447700900001, completed, 12 s (call 1a2b3c4d)"."""
        way = "to" if self.direction == "outbound" else "from"
        took = "" if self.duration is None else f", {self.duration:.0f} s" + ("" if self.ended else " so far")
        mark = " \u2014 went wrong" if self.problem else ""
        return (f"{self.started.astimezone():%H:%M:%S} {self.direction} {way} {self.other or '?'}, "
                f"{self.status}{took} (call {self.uuid[:8]}){mark}")


class CallHistory:
    """The calls a panel placed, followed or took over, newest first (at most `limit`)."""

    def __init__(self, limit: int = 50) -> None:
        self.limit = limit
        self._calls: list[Call] = []
        self._added: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def add(self, call: Call) -> bool:
        """Remember `call` (once); True when it is new."""
        with self._lock:
            if call.uuid in self._added:
                return False
            self._calls.insert(0, call)
            self._added[call.uuid] = datetime.now(timezone.utc)
            for old in self._calls[self.limit:]:
                self._added.pop(old.uuid, None)
            del self._calls[self.limit:]
            return True

    def __contains__(self, uuid: object) -> bool:
        return uuid in self._added

    def __len__(self) -> int:
        return len(self._calls)

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def get(self, uuid: str) -> Call | None:
        return next((c for c in self.calls if c.uuid == uuid), None)

    def entry(self, call: Call) -> CallEntry:
        """The row for `call`, read from its events now."""
        events = list(call.events)
        statuses = [e for e in events if e.kind == "event" and e.uuid == call.uuid and e.payload.get("status")]
        started = events[0].received_at if events else self._added.get(call.uuid, datetime.now(timezone.utc))
        status = call.status or "placed"
        return CallEntry(uuid=call.uuid, direction=call.direction, other=str(call.to or ""), status=status,
                         started=started, duration=_duration(statuses, started, status),
                         problem=problem_of(call, events))

    def entries(self) -> list[CallEntry]:
        """Every row, newest first."""
        return [self.entry(call) for call in self.calls]


def _duration(statuses: list[Event], started: datetime, status: str) -> float | None:
    """Vonage's `duration` on `completed` (seconds, a string); else the time from the first event to the
    final one, or to now while the call runs."""
    for e in statuses:
        if e.payload.get("status") == "completed" and str(e.payload.get("duration") or "").isdigit():
            return float(e.payload["duration"])
    final = next((e for e in statuses if e.payload.get("status") in FINAL_STATUSES), None)
    end = final.received_at if final is not None else (None if status in FINAL_STATUSES
                                                        else datetime.now(timezone.utc))
    return None if end is None else max(0.0, (end - started).total_seconds())


def fallback_of(event: Event) -> tuple[str, str] | None:
    """(the app's answer URL, why it failed) when `event` is the platform's request to the fallback answer
    URL: Vonage sends "the original payload plus `reason` and `original_request {url, type}`"
    (vonage-voice-api.md, Fallback). A GET request carries `original_request` as JSON text."""
    if event.kind != "answer":
        return None
    original: Any = event.payload.get("original_request")
    if isinstance(original, str):
        try:
            original = json.loads(original)
        except ValueError:
            return None
    if not isinstance(original, dict) or not original.get("url"):
        return None
    return str(original["url"]), str(event.payload.get("reason") or "it failed")


def sandbox_view(call: Call) -> dict | None:
    """Sandbox mode: the sandbox's view of the leg (its webhooks, NCCO, errors, `problem`); else None."""
    sandbox = getattr(call.lab, "sandbox", None)
    if sandbox is None:
        return None
    from labkit.errors import SandboxError
    from labkit.sandbox.control.actions import call_view

    try:
        leg = sandbox.call(call.uuid)
    except SandboxError:
        return None
    return call_view(sandbox.platform, leg)


def problem_of(call: Call, events: list[Event] | None = None) -> str | None:
    """Why `call` went wrong, in one sentence that says what to do, or None when nothing did.

    The most precise cause first: the lab's own handler raising; the app's answer URL failing (the call
    then went on with the fallback answer URL's script: the lab's); the sandbox's verdict on the leg; an
    `error` event; a final status that was never an answer."""
    from labkit.sandbox.control.problems import in_words

    events = list(call.events) if events is None else events
    for e in events:
        if e.kind == "lab" and e.status in HANDLER_ERRORS and e.uuid == call.uuid:
            which = "answer" if e.status == "answer-handler-error" else "event"
            return (f"your {which} handler (lab.on_{which}) raised {e.payload.get('reason')}: fix it and call "
                    f"again (the traceback is in call.events)")
    for e in events:
        found = fallback_of(e)
        if found is not None and e.uuid == call.uuid:
            url, why = found
            return (in_words(f"answer_url {url}: {why}") + " (the platform then fetched the application's "
                    "fallback answer URL, and the call went on with that script: the lab's own)")
    view = sandbox_view(call)
    if view is not None and view.get("problem"):
        return str(view["problem"])
    for e in events:
        if e.kind == "event" and e.status == "error":
            return f"the platform reported an error on this call: {e.payload.get('reason')}"
    status = call.status
    if status in NEVER_ANSWERED:
        detail = next((e.payload.get("detail") for e in reversed(events)
                       if e.kind == "event" and e.status == status and e.payload.get("detail")), None)
        words = ENDED_WORDS.get(status, f"the call ended {status}")
        return words + (f" ({detail})" if detail else "")
    return None
