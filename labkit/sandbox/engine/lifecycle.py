"""Call lifecycles: what happens to each kind of leg, from `started` to its final status.

Each leg runs this straight-line code on its own thread ("runner"), waiting on the platform clock, so
the state machine reads like the call-flow guide:

- outbound to a phone: started -> (busy | failed) or ringing -> (answered | rejected | unanswered |
  timeout after ringing_timer | cancelled if hung up first); answered -> the answer_url is fetched (when
  given instead of an NCCO) -> `answered` event -> NCCO runs -> completed when it runs out.
- inbound (`Sandbox.dial`): started, ringing -> the application's answer_url -> answered -> NCCO.
- connect children (a phone or a WebSocket dialled by `connect`): join the parent's conversation when
  answered; with eventType synchronous their failure event (and always a WebSocket's `disconnected`)
  is an instruction event whose NCCO replaces the rest of the parent's.

UNCONFIRMED choices, kept here: ringing_timer expiry gives `timeout`; a phone set to "unanswered" gives
`unanswered` with detail `unavailable`; the WebSocket leg's own events are started, ringing, answered,
(disconnected), completed; when the answer URL cannot be fetched (after retry and fallback) the call
gets an `error` event with `ANSWER_FAILED_REASON` and ends.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from labkit.errors import SandboxError
from labkit.media.frames import content_type, parse_content_type
from labkit.sandbox.audio.websocket_leg import WebsocketEndpoint
from labkit.sandbox.engine import machine
from labkit.sandbox.engine.clock import Clock
from labkit.sandbox.engine.legs import LegEnded, SandboxCall, Transferred, iso, utcnow
from labkit.sandbox.engine.ncco import NccoRunner
from labkit.sandbox.engine.phones import HEAR_RATE, VirtualPhone
from labkit.sandbox.engine.platform import Platform
from labkit.sandbox.engine.regions import region_url_for
from labkit.signing import sign_webhook

log = logging.getLogger("labkit.sandbox.engine.lifecycle")

BUSY_DELAY = 0.5  # seconds of call time before a busy signal is reported
WS_OPEN_TIMEOUT = 10.0  # real seconds to open the app's WebSocket
ANSWER_FAILED_REASON = "Failed to get an NCCO from the answer_url"


# ---------------------------------------------------------------------------------------- helpers


def start(p: Platform, leg: SandboxCall, target: Any, *args: Any) -> None:
    """Register `leg` and run `target(p, leg, *args)` on its own thread (always ending the leg)."""
    p.add_leg(leg)

    def body() -> None:
        try:
            target(p, leg, *args)
        except LegEnded:
            pass
        except Exception:
            log.exception("sandbox call %s crashed", leg.uuid)
            with p.lock:
                leg.errors.append("the sandbox hit an internal error running this call (see the log)")
            p.end_leg(leg, "failed" if leg.answered_at is None else "completed", "internal_error")
        finally:
            p.end_leg(leg, "completed", by="ncco")  # the NCCO ran out of actions
            with p.lock:
                leg.finished = True
                leg.cond.notify_all()
                if leg.parent is not None:
                    leg.parent.cond.notify_all()

    leg.thread = threading.Thread(target=body, name=f"sandbox-call-{leg.uuid[:8]}", daemon=True)
    leg.thread.start()


def answer_payload(p: Platform, leg: SandboxCall) -> dict:
    leg.region_url = region_url_for(p, leg)
    return {
        "to": leg.to_address,
        "from": leg.from_address,
        "uuid": leg.uuid,
        "conversation_uuid": leg.conversation.uuid,
        "region_url": leg.region_url,
    }


def fetch_ncco(p: Platform, leg: SandboxCall, url: str, method: str) -> Any:
    """GET/POST the answer URL (retry, then fallback) and return the parsed body (or end the call)."""
    result = p.webhooks.send("answer", url, method or "GET", answer_payload(p, leg), fallback=True,
                             settings=p.leg_settings(leg))
    if leg.ended:  # (a transfer meanwhile is picked up by the NCCO runner's first wait)
        raise LegEnded()
    body = result.json() if result.ok else None
    if body is None:
        why = result.error if not result.ok else "the reply is not JSON"
        with p.lock:
            leg.errors.append(f"answer_url {url}: {why}")
        p.post(leg, {"reason": f"{ANSWER_FAILED_REASON} ({why})", "conversation_uuid": leg.conversation.uuid,
                     "timestamp": iso(utcnow())})
        p.end_leg(leg, "completed" if leg.answered_at else "failed")
        raise LegEnded()
    return body


def post_answered(p: Platform, leg: SandboxCall) -> None:
    p.post_status(leg, "answered", start_time=None, rate=None, network=None)


def run_script(p: Platform, leg: SandboxCall, ncco: Any, *, transfer: Transferred | None = None) -> None:
    """Run the leg's NCCO; a REST transfer swaps in a new one (in a new conversation)."""
    runner = NccoRunner(p, leg, connect_child=start_connect_child)
    current = ncco
    pending = transfer
    while True:
        if pending is not None:
            current = _apply_transfer(p, leg, pending)
            pending = None
        try:
            runner.run(current)
            return
        except Transferred as tr:
            pending = tr


def _apply_transfer(p: Platform, leg: SandboxCall, tr: Transferred) -> Any:
    """Move the leg to a new conversation, post the `transfer` event, return the new NCCO."""
    old = leg.conversation.uuid
    with p.lock:
        p.move_to_fresh_conversation(leg)
        player = leg.players.pop("script", None)
        if player is not None:
            player.stop()
    p.post(leg, {
        "conversation_uuid_from": old,
        "conversation_uuid_to": leg.conversation.uuid,
        "uuid": leg.uuid,
        "timestamp": iso(utcnow()),
    })
    return tr.ncco if tr.ncco is not None else fetch_ncco(p, leg, tr.url or "", "GET")


def finish_unanswered(p: Platform, leg: SandboxCall, status: str, detail: str | None, *,
                      instruction: bool = False) -> None:
    """End a leg that was never answered; for synchronous connects the event may return an NCCO."""
    if not instruction:
        p.end_leg(leg, status, detail)
        return
    fields = {"detail": detail} if detail else {}
    payload = p.event(leg, status, **fields)
    p.end_leg(leg, status, detail, event=False)
    leg.reply_ncco = p.instruction_reply(None, p.post(leg, payload, instruction=True))


def ring_phone(p: Platform, leg: SandboxCall, phone: VirtualPhone, *, synchronous: bool = False) -> bool:
    """Ring `phone` for `leg` per its settings; True once answered (events posted), else ended."""
    p.post_status(leg, "started")
    with p.lock:
        engaged = phone.busy
    if engaged or phone.outcome == "busy":
        p.sleep(leg, BUSY_DELAY)
        finish_unanswered(p, leg, "busy", None, instruction=synchronous)
        return False
    if phone.outcome == "fail":
        finish_unanswered(p, leg, "failed", "cannot_route", instruction=synchronous)
        return False
    with p.lock:
        leg.phone = phone
        leg.endpoint = phone
        callbacks = phone._ringing(leg, incoming=True)
        leg.status = "ringing"
    p.post_status(leg, "ringing")
    for callback in callbacks:
        try:
            callback(leg)
        except Exception:
            log.exception("on_ring callback for %s failed", phone.number)
    now = p.clock.ticks
    ring_end = now + max(1, Clock.to_ticks(leg.ringing_timer))
    decide_at = None if phone.outcome == "manual" else now + Clock.to_ticks(phone.answer_after)
    until = ring_end if decide_at is None else min(ring_end, decide_at)
    p.wait(leg, lambda: leg.phone_decision is not None, until_tick=until)
    decision = leg.phone_decision
    if decision is None and decide_at is not None and p.clock.ticks >= decide_at and decide_at < ring_end:
        decision = {"answer": "answer", "reject": "reject", "unanswered": "unanswered"}[phone.outcome]
    if decision == "answer":
        p.answer_leg(leg)
        return True
    if decision == "reject":
        finish_unanswered(p, leg, "rejected", "declined", instruction=synchronous)
    elif decision == "unanswered":
        finish_unanswered(p, leg, "unanswered", "unavailable", instruction=synchronous)
    else:
        finish_unanswered(p, leg, "timeout", None, instruction=synchronous)
    return False


# ---------------------------------------------------------------------------------------- top level


def run_outbound(p: Platform, leg: SandboxCall) -> None:
    """A call placed with POST /v1/calls."""
    if leg.ncco is not None:
        NccoRunner(p, leg).prefetch_early(leg.ncco)  # its audio is ready by the time it is answered
    if leg.kind == "phone":
        phone = p.phone(leg.to["number"])
        if not ring_phone(p, leg, phone):
            return
    elif leg.kind == "websocket":
        p.post_status(leg, "started")
        p.post_status(leg, "ringing")
        endpoint = _websocket(p, leg, leg.to, parent=None)
        if not endpoint.open(WS_OPEN_TIMEOUT):
            with p.lock:
                leg.errors.append(f"could not open {leg.to.get('uri')}: {endpoint.error}")
            p.end_leg(leg, "failed", "cannot_route")
            return
        p.answer_leg(leg)
        endpoint.start_streaming()
    else:
        p.post_status(leg, "started")
        with p.lock:
            leg.errors.append(f"the sandbox cannot route {leg.kind} endpoints (only phone and websocket)")
        p.end_leg(leg, "failed", "cannot_route")
        return
    ncco = leg.ncco if leg.ncco is not None else fetch_ncco(p, leg, leg.answer_url or "", leg.answer_method)
    post_answered(p, leg)
    machine.detect(p, leg)  # human/machine events from the phone's `machine` behaviour (machine.py)
    run_script(p, leg, ncco)


def run_inbound(p: Platform, leg: SandboxCall, phone: VirtualPhone) -> None:
    """A virtual phone calls the application's number (`Sandbox.dial`)."""
    with p.lock:
        leg.phone = phone
        leg.endpoint = phone
        phone._ringing(leg, incoming=False)
    p.post_status(leg, "started")
    p.post_status(leg, "ringing")
    settings = p.leg_settings(leg)
    if not settings.answer_url:
        raise SandboxError("no answer_url configured")
    ncco = fetch_ncco(p, leg, settings.answer_url, settings.answer_method)
    NccoRunner(p, leg).prefetch_early(ncco, first_now=True)  # while it rings: not in the audio
    p.answer_leg(leg)
    post_answered(p, leg)
    run_script(p, leg, ncco)


def dial(p: Platform, from_number: str, to: str | None = None) -> SandboxCall:
    """Start an inbound call from the virtual phone `from_number` to the application's number."""
    number = str(to or p.number).lstrip("+")
    owned, app = p.account.app_for_number(number)  # routed by the application linked to the number
    if owned is None:
        raise SandboxError(f"{number} is not one of the sandbox account's numbers ({p.number}): dial that one.")
    if app is None:
        raise SandboxError(
            f"{number} is not linked to an application, so nothing answers it: link it with the Numbers "
            "API (POST /number/update app_id=...), as on Vonage's dashboard."
        )
    settings = app.settings
    if not settings.answer_url:
        raise SandboxError(
            f"The application {app.id} linked to {number} has no voice answer_url: set it with the "
            "Application API (or `labkit sandbox --answer-url`) so inbound calls know what to do."
        )
    phone = p.phone(from_number)
    if phone.busy:
        raise SandboxError(f"{phone.number} is already in a call ({phone.state}): hang it up first.")
    leg = SandboxCall(
        p, direction="inbound", to={"type": "phone", "number": number},
        from_={"type": "phone", "number": phone.number}, kind="phone", rate=HEAR_RATE,
        event_url=settings.event_url, event_method=settings.event_method,
    )
    leg.application_id = app.id
    start(p, leg, run_inbound, phone)
    return leg


# ---------------------------------------------------------------------------------------- connect


def _signer(p: Platform, leg: SandboxCall) -> Any:
    def sign() -> str | None:
        settings = p.leg_settings(leg)
        if not settings.signature_secret:
            return None
        return sign_webhook(b"", settings.signature_secret, api_key=p.api_key,
                            application_id=settings.application_id or p.application_id)

    return sign


def _websocket(p: Platform, leg: SandboxCall, ep: dict, parent: SandboxCall | None,
               headers: dict | None = None) -> WebsocketEndpoint:
    def app_closed() -> None:
        with p.lock:
            if leg.ended:
                return
            if parent is not None:
                payload = p.event(leg, "disconnected", headers=dict(ep.get("headers") or {}))
                leg.disconnect_future = p.post(leg, payload, instruction=True)
        p.end_leg(leg, "completed", by="app")  # the app's WebSocket server closed

    endpoint = WebsocketEndpoint(
        ep["uri"], leg.rate, headers=headers if headers is not None else ep.get("headers"),
        authorization=ep.get("authorization"), signer=_signer(p, leg), on_app_closed=app_closed,
    )
    with p.lock:
        leg.endpoint = endpoint
    return endpoint


def start_connect_child(p: Platform, parent: SandboxCall, ep: dict, connect: dict) -> SandboxCall:
    """Create the leg a `connect` action dials, in the parent's conversation, and start it."""
    kind = ep.get("type", "phone")
    from_number = str(connect.get("from") or p.number)
    urls = connect.get("eventUrl")
    event_url = urls[0] if isinstance(urls, list) and urls else parent.event_url
    event_method = connect.get("eventMethod") or ("POST" if urls else parent.event_method)
    rate = HEAR_RATE
    if kind == "websocket":
        rate = parse_content_type(ep.get("content-type"))  # validate() checked it with the same parser
        to = {"type": "websocket", "uri": ep["uri"], "content-type": content_type(rate)}
    elif kind == "phone":
        to = {"type": "phone", "number": ep["number"]}
    else:
        to = {k: v for k, v in ep.items() if k in ("type", "uri", "user", "extension")}
    child = SandboxCall(
        p, direction="outbound", to=to, from_={"type": "phone", "number": from_number}, kind=kind,
        rate=rate, event_url=event_url, event_method=event_method, parent=parent,
        conversation=parent.conversation,
    )
    if connect.get("timeout"):
        child.ringing_timer = float(connect["timeout"])
    if connect.get("limit"):
        child.length_timer = float(connect["limit"])
    child.machine_detection = machine.from_connect(connect)
    synchronous = connect.get("eventType") == "synchronous"
    start(p, child, run_connect_child, parent, ep, synchronous)
    return child


def run_connect_child(p: Platform, leg: SandboxCall, parent: SandboxCall, ep: dict, synchronous: bool) -> None:
    if leg.kind == "phone":
        if not ring_phone(p, leg, p.phone(ep["number"]), synchronous=synchronous):
            return
        post_answered(p, leg)
        machine.detect(p, leg)
        _stay_until_ended(p, leg)
        return
    if leg.kind != "websocket":
        p.post_status(leg, "started")
        with p.lock:
            leg.errors.append(f"the sandbox cannot connect {leg.kind} endpoints (only phone and websocket)")
        finish_unanswered(p, leg, "failed", "cannot_route", instruction=synchronous)
        return
    p.post_status(leg, "started")
    p.post_status(leg, "ringing")
    endpoint = _websocket(p, leg, ep, parent)
    if not endpoint.open(WS_OPEN_TIMEOUT):
        with p.lock:
            leg.errors.append(f"could not open {ep.get('uri')}: {endpoint.error}")
        finish_unanswered(p, leg, "failed", None, instruction=synchronous)
        return
    try:
        p.answer_leg(leg)
    except LegEnded:
        endpoint.close()
        raise
    endpoint.start_streaming()
    post_answered(p, leg)
    _stay_until_ended(p, leg)


def _stay_until_ended(p: Platform, leg: SandboxCall) -> None:
    """A connected leg stays in the conversation until it ends (or is transferred to an NCCO)."""
    try:
        p.wait(leg, lambda: False)
    except LegEnded:
        pass
    except Transferred as tr:
        try:
            run_script(p, leg, None, transfer=tr)
        except LegEnded:
            pass
        p.end_leg(leg, "completed", by="ncco")
    future = leg.disconnect_future
    if future is not None:
        leg.reply_ncco = p.instruction_reply(None, future)
