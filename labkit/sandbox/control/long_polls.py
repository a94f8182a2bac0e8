"""The control API's long polls: `GET /_labkit/calls/{uuid}?wait=S&until=...` and
`GET /_labkit/phones/{number}?wait=S&state=...&calls=N` are held until the call or phone gets there,
woken by the change itself (the leg's and the phone's conditions), so a test in any language waits on the
sandbox instead of asking ten times a second. The answer is the view as it is then: callers check it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labkit.errors import InvalidInput
from labkit.sandbox.engine.clock import FRAME_SECONDS
from labkit.sandbox.engine.legs import SandboxCall
from labkit.sandbox.engine.phones import VirtualPhone
from labkit.sandbox.engine.platform import Platform

__all__ = ["CALL_UNTIL", "MAX_STATE_WAIT", "call_time", "wait_call", "wait_phone"]

MAX_STATE_WAIT = 25.0  # seconds one request may be held
# besides a status the call went through: ended (hung up), finished (ended and every webhook answered),
# action:NAME (its NCCO runs NAME now), played:KIND (a talk, stream or dtmf played to its end),
# time:T (T call seconds after answer)
CALL_UNTIL = ("ended", "finished", "action:", "played:", "time:")


def _seconds(value: Any, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{what} is a number of seconds, not {value!r}") from None


def call_time(p: Platform, leg: SandboxCall) -> float:
    """Call seconds since the leg was answered (its audio clock; -1 before answer, frozen at its end)."""
    if leg.answered_tick is None:
        return -1.0
    end = leg.ended_tick if leg.ended_tick is not None else p.clock.ticks
    return (end - leg.answered_tick) * FRAME_SECONDS


def _running(leg: SandboxCall, action: str) -> bool:
    """The leg's NCCO is at `action` (an `input` once it listens for keys and speech, a `connect` once
    the leg it dials exists)."""
    script, step = leg.script, leg.step
    if not script or step is None or step >= len(script) or script[step].get("action") != action:
        return False
    if action == "connect":
        return bool(leg.children)
    return action != "input" or leg.input is not None


def _played(p: Platform, leg: SandboxCall, kind: str) -> bool:
    """Something of `kind` (talk, stream, dtmf) was played to the leg to its end."""
    now = call_time(p, leg)
    return any(item["kind"] == kind and item["seconds"] is not None and item["at"] + item["seconds"] <= now
               for item in list(leg.played))


def wait_call(p: Platform, leg: SandboxCall, wait: Any, until: str,
              answered: Callable[[SandboxCall], bool]) -> None:
    """Hold until the leg reached `until` (see CALL_UNTIL), ended, or `wait` seconds passed.
    `answered(leg)`: every webhook of the leg answered (what `finished` adds to the runner being done)."""
    seconds = min(MAX_STATE_WAIT, max(0.0, _seconds(wait, "wait")))
    if until == "ended":
        leg.wait(lambda c: c.ended, seconds)
    elif until == "finished":
        leg.wait(lambda c: c.finished and answered(c), seconds)
    elif until.startswith("action:"):
        leg.wait(lambda c: c.ended or _running(c, until[7:]), seconds)
    elif until.startswith("time:"):
        target = _seconds(until[5:], "until=time:")
        leg.wait(lambda c: c.ended or call_time(p, c) >= target, seconds)
    elif until.startswith("played:"):
        leg.wait(lambda c: c.ended or _played(p, c, until[7:]), seconds)
    else:
        leg.wait(until, seconds)


def wait_phone(p: Platform, phone: VirtualPhone, wait: Any, state: str | None, calls: Any) -> None:
    """Hold until the phone is in `state` (idle, ringing, answered) and/or has been in more than `calls`
    calls (a call the app placed to it arrived), or `wait` seconds passed."""
    seconds = min(MAX_STATE_WAIT, max(0.0, _seconds(wait, "wait")))
    if state and state not in ("idle", "ringing", "answered"):
        raise InvalidInput(f"state is idle, ringing or answered, not {state!r}")
    try:
        known = None if calls is None else int(calls)
    except ValueError:
        raise InvalidInput(f"calls is a whole number, not {calls!r}") from None

    def reached() -> bool:
        return (not state or phone.state == state) and (known is None or len(phone.calls) > known)

    with phone._state_cv:
        phone._state_cv.wait_for(lambda: reached() or p.stopping, seconds)
