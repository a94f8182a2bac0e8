"""When each action of the NCCOs the lab served ran, worked out from the scripts and the events.

The platform reports no "action started/ended" events, so each NCCO is replayed on the clock:
it starts when served (or when the leg is answered, if later), its actions run in order, and each
ends at the event that ends it (an `input` event, a `record` event, the end of the call, a newer
script for the same leg) or after its own length (a talk's text, a served file's length times
`loop`). Lengths that come from an estimate are marked `estimated` and drawn paler.

Vonage's rules used here (reference: vonage-voice-api.md, "NCCO actions"): actions run in order and
"when all the actions in the NCCO are complete, the Call ends"; `talk` and `stream` are synchronous
unless `bargeIn` (then the next action starts with them); `record` is asynchronous (the next action
runs while it records); an NCCO returned by the event webhook replaces the rest of the current one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

from labkit.events import Event

__all__ = ["ScriptSpan", "SERVED", "script_spans"]

SERVED = "ncco-served"  # the "lab" event status the lab writes for every NCCO it gives the platform
TALK_SECONDS_PER_CHAR = 0.07  # UNCONFIRMED: ~150 words a minute, as the sandbox's speech is timed
DTMF_TIMEOUT = 3.0  # input.dtmf.timeOut default (reference table)


@dataclass
class ScriptSpan:
    """One NCCO action on the time axis (seconds from the timeline's start)."""

    uuid: str
    kind: str  # talk | stream | input | record | connect | conversation | notify | ...
    start: float
    end: float | None  # None: still running when drawn
    label: str
    estimated: bool = False
    background: bool = False  # runs beside the next actions (record, bargeIn talk/stream)


def script_spans(items: list[Event], at: dict[int, float], ends: dict[str, float],
                 play_seconds: Callable[[str], float | None]) -> list[ScriptSpan]:
    """The NCCO actions of every "ncco-served" event in `items` (`at`: event seq -> seconds;
    `ends`: leg -> when it ended; `play_seconds(file name)`: one play of a served file)."""
    served = [e for e in items if e.kind == "lab" and e.status == SERVED and e.uuid]
    out: list[ScriptSpan] = []
    for i, e in enumerate(served):
        uuid = e.uuid or ""
        start = at[e.seq]
        answered = next((at[x.seq] for x in items if x.kind == "event" and x.uuid == uuid
                         and x.status == "answered"), None)
        if answered is not None and answered > start:
            start = answered  # a create-call NCCO runs once the leg is answered
        later = [at[x.seq] for x in served[i + 1:] if x.uuid == uuid]
        stop = min([*later, ends[uuid]]) if uuid in ends else (min(later) if later else None)
        after = [x for x in items if x.belongs_to(uuid) and at[x.seq] >= start]
        out.extend(_replay(uuid, list(e.payload.get("ncco") or []), start, stop, after, at, play_seconds))
    return out


def _replay(uuid: str, actions: list[Any], t: float, stop: float | None, after: list[Event],
            at: dict[int, float], play_seconds: Callable[[str], float | None]) -> list[ScriptSpan]:
    """Lay the actions out from `t`; when estimated lengths overrun the time the script really had
    (it ended by itself before `stop`, so every action fit), shrink the estimates to fit."""
    out, fit = _lay_out(uuid, actions, t, stop, after, at, play_seconds, 1.0)
    if fit is not None and stop is not None:
        guessed, exact = fit
        if guessed > 0 and stop - t - exact > 0:
            out, _ = _lay_out(uuid, actions, t, stop, after, at, play_seconds, (stop - t - exact) / guessed)
    return out


def _lay_out(uuid: str, actions: list[Any], t: float, stop: float | None, after: list[Event],
             at: dict[int, float], play_seconds: Callable[[str], float | None],
             scale: float) -> tuple[list[ScriptSpan], tuple[float, float] | None]:
    """(spans, None when the estimates fit, else (estimated seconds of the synchronous actions,
    exact seconds before the overrun) to scale the estimates by)."""
    out: list[ScriptSpan] = []
    fit: tuple[float, float] | None = None
    guessed = exact = 0.0
    for index, action in enumerate(actions):
        if not isinstance(action, dict) or (stop is not None and t >= stop):
            break
        kind = str(action.get("action") or "?")
        last = index == len(actions) - 1
        end, label, estimated = _end(kind, action, t, after, at, play_seconds)
        if estimated and end is not None:
            end = t + (end - t) * scale
        background = kind == "record" or (kind in ("talk", "stream") and bool(action.get("bargeIn")))
        synchronous = not background
        if synchronous and end is not None:
            guessed, exact = (guessed + end - t, exact) if estimated else (guessed, exact + end - t)
        if kind in ("talk", "stream") and action.get("bargeIn"):
            pressed = _first(after, t, lambda x: x.kind == "event" and x.status == "input", at)
            if pressed is not None and (end is None or pressed < end):
                end, estimated = pressed, False  # the key press cut it short
        if stop is not None and end is not None and end > stop and estimated and not last and synchronous:
            fit = (guessed + sum(_guess(a, play_seconds) for a in actions[index + 1:]), exact)
        if end is None or (stop is not None and end > stop) or (last and not background and stop is not None):
            # Unknown length, or cut by the end of the call / a newer script; and the last
            # synchronous action ends with the call, which Vonage ends right after it.
            end, estimated = (stop, False) if stop is not None else (end, estimated)
        out.append(ScriptSpan(uuid, kind, t, end, label, estimated, background))
        if background:
            continue  # the next action starts at the same moment
        if end is None:
            break  # runs until something ends it; nothing after it has started yet
        t = end
    return out, fit


def _guess(action: Any, play_seconds: Callable[[str], float | None]) -> float:
    """The estimated length of an action not laid out yet (0 when it has none)."""
    if not isinstance(action, dict) or action.get("bargeIn") or action.get("action") == "record":
        return 0.0
    end, _label, estimated = _end(str(action.get("action")), action, 0.0, [], {}, play_seconds)
    return end if estimated and end is not None else 0.0


def _end(kind: str, action: dict[str, Any], t: float, after: list[Event], at: dict[int, float],
         play_seconds: Callable[[str], float | None]) -> tuple[float | None, str, bool]:
    """(end or None, label, estimated) of one action starting at `t`."""
    loop = action.get("loop", 1)
    if kind == "talk":
        text = str(action.get("text") or "")
        length = len(text) * TALK_SECONDS_PER_CHAR
        return (t + length * loop if isinstance(loop, int) and loop > 0 else None), f"\u201c{text}\u201d", True
    if kind == "stream":
        url = (action.get("streamUrl") or [""])[0]
        name = _served_name(str(url))
        one = play_seconds(name) if name else None
        label = name or str(url).rsplit("/", 1)[-1]
        if one and isinstance(loop, int) and loop > 0:
            return t + one * loop, label, True
        return None, label, False
    if kind == "input":
        got = _first(after, t, lambda x: x.kind == "event" and x.status == "input", at)
        types = "+".join(action.get("type") or ["?"])
        if got is not None:
            return got, types, False
        timeout = float((action.get("dtmf") or {}).get("timeOut", DTMF_TIMEOUT))
        return t + timeout, types, True
    if kind == "record":
        done = _first(after, t, lambda x: x.kind == "event" and x.status == "record", at)
        return done, "recording", False
    if kind == "connect":
        endpoint = (action.get("endpoint") or [{}])[0]
        kind_of = endpoint.get("type", "?")
        target = endpoint.get("number") or endpoint.get("content-type", "").rpartition("=")[2] or ""
        label = f"{kind_of} {target}".strip() + (" Hz" if kind_of == "websocket" and target else "")
        return None, label, False
    if kind == "conversation":
        return None, str(action.get("name") or ""), False
    if kind == "notify":
        return t, "notify", False
    return None, kind, False


def _first(events: list[Event], t: float, match: Callable[[Event], bool], at: dict[int, float]) -> float | None:
    for e in events:
        if at[e.seq] >= t and match(e):
            return at[e.seq]
    return None


def _served_name(url: str) -> str | None:
    """The lab's audio file name behind a URL the lab serves (`.../audio/<name>`), else None."""
    path = urlparse(url).path
    return unquote(path.split("/audio/", 1)[1]) if "/audio/" in path else None
