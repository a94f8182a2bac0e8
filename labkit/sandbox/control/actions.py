"""The sandbox's own control surface (like moto's `moto_api`): phones, calls and reset, free of HTTP.

Each function works on the same model the Python `Sandbox`/`VirtualPhone` API uses (the platform, its
phones and legs), so the control API over HTTP (routes.py) and Python are two faces of one thing.
Views are plain JSON-able dicts; their schemas are in openapi.py.
"""

from __future__ import annotations

import io
import math
import time
from typing import Any

import numpy as np

from labkit import validate
from labkit.errors import InvalidInput, SandboxNotFound
from labkit.sandbox.control import long_polls
from labkit.sandbox.control.problems import problem
from labkit.sandbox.engine.legs import SandboxCall, iso
from labkit.sandbox.engine.phones import HEAR_RATE, KEEP, VirtualPhone, check_settings
from labkit.sandbox.engine.platform import Platform

PHONE_FIELDS = ("answer_after", "outcome", "hangup_after", "machine")
LIVE_CHUNK = HEAR_RATE * 40 // 1000  # heard.wav?wait= answers once this much new audio is there (40 ms)
MAX_WAIT = 10.0  # seconds a heard.wav?wait= request may be held
MAX_KEY_MS = 10_000  # the longest key press a phone makes (the sandbox's own bound)


# ---------------------------------------------------------------------------------------- views


def phone_view(phone: VirtualPhone) -> dict:
    """What `GET /_labkit/phones` shows of one phone."""
    call = phone.call
    return {
        "number": phone.number,
        "state": phone.state,
        "outcome": phone.outcome,
        "answer_after": phone.answer_after,
        "hangup_after": phone.hangup_after,
        "machine": phone.machine,
        "call": call.uuid if call is not None else None,
        "calls": [c.uuid for c in list(phone.calls)],
        "speaking": phone.speaking,
        "position": phone.position,
        "heard_rate": HEAR_RATE,
        "received_dtmf": phone.received_dtmf,
    }


def _webhooks_of(p: Platform, leg: SandboxCall) -> list[dict]:
    out = []
    for record in list(p.webhooks.log):
        payload = record.payload or {}
        mine = payload.get("uuid") == leg.uuid or payload.get("call_uuid") == leg.uuid
        if not mine and "uuid" not in payload and "call_uuid" not in payload:
            mine = payload.get("conversation_uuid") == leg.conversation.uuid  # error events carry only this
        if not mine:
            continue
        out.append(webhook_view(record))
    return out


def webhook_view(record: Any) -> dict:
    """One webhook sent (a `WebhookRecord`) and what the app answered (null while pending)."""
    result = record.result
    answer = None
    if result is not None:
        body: Any = result.json()
        if body is None and result.body:
            body = result.body[:2000].decode("utf-8", "replace")
        answer = {"ok": result.ok, "status": result.status, "body": body, "error": result.error,
                  "attempts": result.attempts, "url": result.url, "ms": round(result.elapsed * 1000, 1)}
    return {"kind": record.kind, "url": record.url, "method": record.method, "payload": record.payload or {},
            "sent_at": record.sent_at, "answer": answer}


def call_view(p: Platform, leg: SandboxCall) -> dict:
    """What `GET /_labkit/calls` shows of one leg: status, NCCO progress, webhooks and their answers."""
    with p.lock:
        script = list(leg.script) if leg.script is not None else None
        view = {
            "uuid": leg.uuid,
            "conversation_uuid": leg.conversation.uuid,
            "direction": leg.direction,
            "kind": leg.kind,
            "status": leg.status,
            "detail": leg.detail,
            "from": dict(leg.from_),
            "to": dict(leg.to),
            "phone": leg.phone.number if leg.phone is not None else None,
            "parent": leg.parent.uuid if leg.parent is not None else None,
            "children": [c.uuid for c in leg.children],
            "created_at": iso(leg.created_at),
            "answered_at": iso(leg.answered_at),
            "ended_at": iso(leg.ended_at),
            "duration": leg.duration,
            "ncco": {"actions": script, "current": leg.step},
            "errors": list(leg.errors),
            "problem": problem(leg.errors),  # the first error, in the app author's words (control/problems.py)
            "region_url": leg.region_url,
            "control_hosts": dict(leg.control_hosts),
            "played": [dict(item) for item in leg.played],
            "ended_by": leg.ended_by,
            "finished": leg.finished,  # (the view adds: and every webhook answered)
            "time": round(long_polls.call_time(p, leg), 3),
        }
    view["webhooks"] = _webhooks_of(p, leg)
    view["finished"] = view["finished"] and leg.hooks.delivered and all(w["answer"] is not None
                                                                         for w in view["webhooks"])
    return view


# ---------------------------------------------------------------------------------------- phones


def _number(value: Any, home: str | None = None) -> str:
    """A number as a person types it on the page or sends it from any language: the one rule for typed
    numbers (labkit.validate.typed_phone_number, as in the notebook panel): separators, + and 00 understood,
    a national number met with the number meant in the country of `home` (the application's number)."""
    return validate.typed_phone_number(str(value or ""), "phone number", home=home)


def find_phone(p: Platform, number: str) -> VirtualPhone:
    number = _number(number)
    with p.lock:
        phone = p.phones.get(number)
    if phone is None:
        raise SandboxNotFound(f"No phone {number}: create it with POST /_labkit/phones {{\"number\": \"{number}\"}}.")
    return phone


def list_phones(p: Platform) -> dict:
    with p.lock:
        phones = list(p.phones.values())
    return {"phones": [phone_view(ph) for ph in phones]}


def put_phone(p: Platform, body: Any) -> tuple[dict, bool]:
    """Create or update a phone from {number, answer_after, outcome, hangup_after, machine}; (view, created)."""
    if not isinstance(body, dict):
        raise InvalidInput('the body must be a JSON object like {"number": "447700900001", "outcome": "answer"}')
    unknown = set(body) - {"number", *PHONE_FIELDS}
    if unknown:
        raise InvalidInput(f"unknown phone fields {sorted(unknown)}: use number, {', '.join(PHONE_FIELDS)}")
    if not isinstance(body.get("number"), str):
        raise InvalidInput(f"number must be a string like \"447700900001\" (E.164 without '+'), not "
                           f"{body.get('number')!r:.40}")
    number = _number(body.get("number"), p.number)
    settings = {"answer_after": body.get("answer_after"), "outcome": body.get("outcome"),
                "hangup_after": body["hangup_after"] if "hangup_after" in body else KEEP,
                "machine": body.get("machine")}
    check_settings(**settings)  # before the phone is made: a refused body creates no phone
    with p.lock:
        created = number not in p.phones
    phone = p.phone(number)
    phone.set(**settings)
    return phone_view(phone), created


def dial(p: Platform, number: str, body: Any) -> dict:
    """The phone calls `to` (default: the application's number): an inbound call to the application.

    Routed through the sandbox's one inbound-call function (lifecycle.dial).
    """
    from labkit.sandbox.engine import lifecycle

    phone = find_phone(p, number)  # an unknown phone is 404, as GET /_labkit/phones/{number} says
    if not isinstance(body, dict):
        raise InvalidInput('the body must be a JSON object like {"to": "447700900000"} (or empty)')
    to = body.get("to")
    if to is not None and not isinstance(to, str):
        raise InvalidInput(f"to must be a string like \"447700900000\", not {to!r:.40}")
    leg = lifecycle.dial(p, phone.number, _number(to, p.number) if to else None)
    return call_view(p, leg)


def say(p: Platform, number: str, *, text: str | None, audio: bytes | None) -> dict:
    """Queue what the phone says: synthesized `text`, or a WAV/MP3 (with `text` as its transcript)."""
    phone = find_phone(p, number)
    if audio is None and not text:
        raise InvalidInput('say needs {"text": "..."} or a WAV/MP3 body (Content-Type audio/wav or audio/mpeg)')
    seconds = phone.say(audio, text=text) if audio is not None else phone.say(text=text)
    # queued_seconds: how far behind live this speech runs (a live microphone keeps it small)
    return {"seconds": seconds, "queued_seconds": phone.queued_seconds, "starts_at": phone.said_at}


def press(p: Platform, number: str, body: Any) -> dict:
    phone = find_phone(p, number)
    digits = body.get("digits") if isinstance(body, dict) else None
    if not isinstance(digits, str) or not digits:
        raise InvalidInput(f'press needs {{"digits": "123#"}} (a string), not {digits!r:.40}')
    duration = body.get("duration_ms")
    if duration is None:
        phone.press(digits)
    elif isinstance(duration, bool) or not isinstance(duration, int) or not 1 <= duration <= MAX_KEY_MS:
        raise InvalidInput(f"duration_ms is a whole number of milliseconds, 1-{MAX_KEY_MS}, not {duration!r:.40}")
    else:
        phone.press(digits, duration)
    return phone_view(phone)


def _wait_for_audio(p: Platform, phone: VirtualPhone, start: int, wait: Any) -> None:
    """Hold a `?wait=` request until 40 ms were heard after `start`, `wait` seconds pass, or the sandbox
    stops: a long poll, so a page hears the call live without asking 50 times a second. A phone whose
    position is behind `start` forgot what it heard (reset): answer at once so the client can catch up."""
    try:
        seconds = float(wait)
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds):
        raise InvalidInput(f"wait is a number of seconds (at most {MAX_WAIT:g}), not {wait!r}")
    seconds = min(MAX_WAIT, max(0.0, seconds))
    deadline = time.monotonic() + seconds
    while start <= phone.position < start + LIVE_CHUNK and not p.stopping and time.monotonic() < deadline:
        time.sleep(0.005)  # the clock adds 20 ms at a time; 5 ms keeps the added delay small


def heard_wav(p: Platform, number: str, *, since: Any = None, call: str | None = None,
              wait: Any = None) -> tuple[bytes, int, int]:
    """What the phone heard as WAV bytes (16 kHz mono): all, since sample `since`, or in one call.

    Returns (wav, start position, end position) in samples, so a client can ask for the rest later
    (a `since` beyond what the phone heard, after a reset, starts at its position now). With `wait`
    (seconds) and no `call`, the answer waits for new audio first (see _wait_for_audio).
    """
    import soundfile as sf

    phone = find_phone(p, number)
    if call:
        if call not in [c.uuid for c in phone.calls]:
            raise SandboxNotFound(f"Phone {phone.number} was not in call {call}.")
        samples = phone.heard_in(call).samples
        start, end = 0, int(samples.size)
    else:
        try:
            start = max(0, int(since or 0))
        except (TypeError, ValueError):
            raise InvalidInput(f"since is a sample position (a whole number), not {since!r}") from None
        if wait is not None:
            _wait_for_audio(p, phone, start, wait)
        start = min(start, phone.position)  # it forgot what it heard (reset): where it is now
        samples = phone.heard_since(start).samples
        end = start + int(samples.size)
    buf = io.BytesIO()
    sf.write(buf, np.asarray(samples, dtype=np.int16), HEAR_RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue(), start, end


# ---------------------------------------------------------------------------------------- calls, reset


def list_calls(p: Platform) -> dict:
    with p.lock:
        legs = list(p.order)
    return {"calls": [call_view(p, leg) for leg in legs]}


def get_call(p: Platform, uuid: str, *, wait: Any = None, until: str | None = None) -> dict:
    """One call's view; with `wait` and `until`, first held until the call gets there (long_polls.py)."""
    leg = p.get_leg(uuid)
    if wait is not None and until:
        long_polls.wait_call(p, leg, wait, until, answered=lambda c: _all_answered(p, c))
    return call_view(p, leg)


def _all_answered(p: Platform, leg: SandboxCall) -> bool:
    """Every webhook of the leg sent and answered (chaos delivery may hold some back after the end)."""
    return leg.hooks.delivered and all(view["answer"] is not None for view in _webhooks_of(p, leg))


def get_phone(p: Platform, number: str, *, wait: Any = None, state: str | None = None,
              calls: Any = None) -> dict:
    """One phone's view; with `wait`, first held until it is in `state` or had more than `calls` calls."""
    phone = find_phone(p, number)
    if wait is not None and (state or calls is not None):
        long_polls.wait_phone(p, phone, wait, state, calls)
    return phone_view(phone)


def application(p: Platform) -> dict:
    """The sandbox application as the control API shows it (read-only; configure with the CLI/Python)."""
    s = p.settings
    return {
        "application_id": p.application_id,
        "api_key": p.api_key,
        "number": p.number,
        "base_url": p.base_url,
        "answer_url": s.answer_url,
        "answer_method": s.answer_method,
        "event_url": s.event_url,
        "event_method": s.event_method,
        "fallback_answer_url": s.fallback_answer_url,
        "signed_webhooks": bool(s.signature_secret),
    }


def webhooks(p: Platform) -> dict:
    """Every webhook sent (the last 2000, oldest first), the chaos delivery setting, and what it did.

    `sent`: webhooks sent (each once, whatever its retries); `failed`: those the app never answered with a
    2xx (after Vonage's one retry and, for answer and instruction webhooks, the fallback URL); `pending`:
    those still in flight. `duplicates`: webhooks sent again with the same kind, URL and payload (Vonage's
    retries and chaos duplicates look alike to an app). `out_of_order`: status events sent after an event
    of the same leg whose `timestamp` is later (chaos jitter lets events overtake one another).
    """
    import json

    records = list(p.webhooks.log)
    chaos = p.webhooks.chaos
    seen: set[str] = set()
    duplicates = out_of_order = failed = pending = 0
    latest: dict[str, str] = {}
    for record in records:
        result = record.result
        pending += result is None
        failed += result is not None and not result.ok  # no 2xx after the retry (and the fallback URL)
        payload = record.payload or {}
        key = json.dumps([record.kind, record.url, payload], sort_keys=True, default=str)
        duplicates += key in seen
        seen.add(key)
        uuid, stamp = payload.get("uuid"), payload.get("timestamp")
        if record.kind == "event" and payload.get("status") and uuid and isinstance(stamp, str):
            out_of_order += stamp < latest.get(uuid, "")
            latest[uuid] = max(stamp, latest.get(uuid, ""))
    return {
        "chaos": None if chaos is None else {"jitter": chaos.jitter, "duplicate": chaos.duplicate,
                                             "seed": chaos.seed},
        "sent": len(records),
        "failed": failed,
        "pending": pending,
        "duplicates": duplicates,
        "out_of_order": out_of_order,
        "webhooks": [webhook_view(r) for r in records],
    }


# What POST /_labkit/reset forgets and what it keeps (its answer says so, and openapi.json).
RESET_CLEARS = ("calls (live ones end without further webhooks)", "virtual phones and what they heard",
                "recordings (GET /v1/files/{id} answers 404; the files stay under the sandbox home)",
                "the webhook log")
RESET_KEEPS = ("the account (API key and secret, signature secret)",
               "applications, their keys and webhooks (those made with the Application API are also kept "
               "on disk, across restarts)", "numbers and the applications they are linked to",
               "the TLS certificate and CA", "chaos delivery settings")


def reset(p: Platform) -> dict:
    """Forget every call, phone, recording and webhook (live calls end without further webhooks); keep the
    account, its applications and numbers: what a test needs to start clean against the same app."""
    p.end_all(events=False)
    with p.lock:
        p.legs.clear()
        p.order.clear()
        p.conversations.clear()
        p.named.clear()
        p.phones.clear()
        p.files.clear()
        p.live = 0
        p.phone_defaults = {"answer_after": 1.0, "outcome": "answer", "hangup_after": None}
    p.webhooks.log.clear()
    return {"reset": True, "cleared": list(RESET_CLEARS), "kept": list(RESET_KEEPS)}
