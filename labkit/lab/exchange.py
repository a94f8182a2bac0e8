"""One call's exchange with the app, in order: each webhook (URL, method, status, time taken), each script
the app answered (pretty-printed, with the platform's verdict), each NCCO action as it ran.

Sandbox mode reads the sandbox's own record of the leg (every webhook it sent and what came back, timed
by the sandbox, as the softphone page shows them). Live mode has no such record: the steps are what the
lab received (each webhook with its arrival time, the scripts the lab served), and no step claims a
status or a time the lab could not see. The actions come from `labkit.lab.ncco_timing` in both modes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from labkit.events import FINAL_STATUSES, Event
from labkit.lab.history import fallback_of, sandbox_view
from labkit.lab.ncco_timing import SERVED, script_spans
from labkit.readable import readable

if TYPE_CHECKING:  # pragma: no cover
    from labkit.lab.calls import Call

__all__ = ["Step", "exchange"]


@dataclass(frozen=True)
class Step:
    """One thing that happened between the platform and the app."""

    at: datetime
    kind: str  # "webhook" | "script" | "action" | "lab"
    title: str  # one line
    body: str | None = None  # a pretty-printed NCCO, when there is one
    ok: bool = True  # False: this step is where it went wrong


def pretty(ncco: Any) -> str:
    return json.dumps(ncco, indent=2, ensure_ascii=False)


def exchange(call: Call) -> list[Step]:
    """The call's steps, oldest first."""
    events = sorted(call.events, key=lambda e: e.seq)
    view = sandbox_view(call)
    steps = _sandbox_steps(view) if view is not None else _live_steps(events)
    steps += _lab_steps(events, skip_served=view is not None)
    steps += _action_steps(call, events if view is None else _with_app_scripts(call, events, view))
    return sorted(steps, key=lambda s: s.at)


def _when(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


def _sandbox_steps(view: dict) -> list[Step]:
    """Every webhook the sandbox sent for the leg, with its answer as the sandbox timed it."""
    refused = [e for e in view.get("errors") or [] if "NCCO" in e or e.startswith("action ")]
    steps = []
    for hook in view.get("webhooks") or []:
        kind, url, method = hook["kind"], hook["url"], hook["method"]
        what = hook["payload"].get("status") or ("error: " + str(hook["payload"].get("reason"))
                                                 if hook["payload"].get("reason") else "")
        head = f"{kind} {method} {url}" + (f" ({what})" if what and kind != "answer" else "")
        answer = hook.get("answer")
        if answer is None:
            steps.append(Step(_when(hook["sent_at"]), "webhook", head + ": waiting for the app's answer"))
            continue
        took = f"{answer['ms']:g} ms" + (f", {answer['attempts']} attempts" if answer["attempts"] > 1 else "")
        if answer.get("url") and answer["url"] != url:
            result = (f"failed, then the fallback answer URL {answer['url']} answered "
                      f"{answer['status'] or answer['error']} ({took})")
        elif answer["ok"]:
            result = f"answered {answer['status']} ({took})"
        else:
            result = f"failed: {answer['error'] or answer['status']} ({took})"
        body = answer.get("body")
        script = body if isinstance(body, list) and kind in ("answer", "instruction", "event") else None
        ok = answer["ok"] and not (script is not None and refused)
        fell_back = bool(answer.get("url")) and answer["url"] != url
        steps.append(Step(_when(hook["sent_at"]), "webhook", head + ": " + result,
                          ok=bool(answer["ok"]) and not fell_back))
        if script is not None:
            verdict = (f"refused by the sandbox: {refused[0]}" if refused else
                       f"accepted: {readable(script)}")
            whose = "the fallback answer URL's NCCO" if fell_back else "the app's NCCO"
            steps.append(Step(_when(hook["sent_at"]) + timedelta(microseconds=1), "script",
                              f"{whose}, {verdict}", body=pretty(script), ok=ok))
    return steps


def _live_steps(events: list[Event]) -> list[Step]:
    """Live mode: what reached the lab (the platform's own timing and answers are not known here)."""
    steps = []
    for e in events:
        if e.kind == "answer":
            found = fallback_of(e)
            title = ("answer request received by the lab" if found is None else
                     f"fallback answer request received by the lab: the app at {found[0]} failed ({found[1]})")
            steps.append(Step(e.received_at, "webhook", title, ok=found is None))
        elif e.kind == "event":
            detail = e.payload.get("detail") or e.payload.get("reason")
            title = f"event received: {e.status}" + (f" ({readable(detail)})" if detail else "")
            steps.append(Step(e.received_at, "webhook", title, ok=e.status != "error"))
    return steps


def _lab_steps(events: list[Event], *, skip_served: bool) -> list[Step]:
    """The scripts the lab served (live mode: the only record of them; sandbox mode: those no webhook answer
    carried, given with the call or a transfer) and the lab's own errors."""
    steps = []
    for e in events:
        if e.kind != "lab":
            continue
        if e.status == SERVED and not (skip_served and e.payload.get("via") in ("answer_url", "event_url")):
            ncco = e.payload.get("ncco")
            steps.append(Step(e.received_at, "script", f"the lab served an NCCO ({e.payload.get('via')}): "
                              f"{readable(ncco)}", body=pretty(ncco)))
        elif "error" in (e.status or "") or "refused" in (e.status or ""):
            steps.append(Step(e.received_at, "lab", f"{e.status}: {e.payload.get('reason')}", ok=False))
    return steps


def _with_app_scripts(call: Call, events: list[Event], view: dict) -> list[Event]:
    """Sandbox mode: the scripts every webhook answer carried (the app's, which the lab never saw) as
    "ncco-served" events, in place of the lab's own notes of those it answered, so each one's actions are
    laid out as they ran. A script the sandbox refused ran no action."""
    if any("NCCO" in e or e.startswith("action ") for e in view.get("errors") or []):
        return [e for e in events if not (e.kind == "lab" and e.status == SERVED)]
    kept = [e for e in events if not (e.kind == "lab" and e.status == SERVED
                                      and e.payload.get("via") in ("answer_url", "event_url"))]
    for hook in view.get("webhooks") or []:
        answer = hook.get("answer") or {}
        if answer.get("ok") and isinstance(answer.get("body"), list) and answer["body"]:
            kept.append(Event(kind="lab", payload={"uuid": call.uuid, "status": SERVED, "via": hook["kind"],
                                                   "ncco": answer["body"]},
                              received_at=_when(hook["sent_at"] + answer["ms"] / 1000)))
    return sorted(kept, key=lambda e: e.received_at)


def _action_steps(call: Call, events: list[Event]) -> list[Step]:
    """Each NCCO action of the scripts the lab knows of, as it ran (`ncco_timing`: ends it could not
    see are estimated and marked so)."""
    from labkit.lab.timeline import play_seconds_from

    served = [e for e in events if e.kind == "lab" and e.status == SERVED]
    if not served:
        return []
    t0 = events[0].received_at
    at = {e.seq: (e.received_at - t0).total_seconds() for e in events}
    ends = {e.uuid: at[e.seq] for e in reversed(events) if e.kind == "event" and e.status in FINAL_STATUSES
            and e.uuid}
    steps = []
    for n, span in enumerate(script_spans(events, at, ends, play_seconds_from(call.lab.audio_path))):
        if span.uuid != call.uuid:
            continue
        end = "still running" if span.end is None else f"to {span.end:.1f} s" + (" (estimated)"
                                                                               if span.estimated else "")
        steps.append(Step(t0 + timedelta(seconds=span.start, microseconds=2 + n), "action",
                          f"{span.kind}: {span.label}, from {span.start:.1f} s {end}"))
    return steps
