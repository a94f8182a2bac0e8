"""The Voice API's operations on the platform (what each REST endpoint does), free of HTTP.

Each function takes parsed JSON / query values, checks them like the real API (400 with
`invalid_parameters` naming the field), acts on the platform model and returns the response body.
voice_routes.py only routes and serialises; in-call audio (stream, talk, DTMF) is voice_audio.py.

UNCONFIRMED choices, kept here: a REST transfer whose NCCO is invalid is refused with 400 (rather than
an error event later); a second REST stream (or talk) replaces the one playing; DELETE .../stream or
.../talk answers 200 even when nothing is playing; mute/earmuff/hangup work before answer, transfer and
audio need an answered call; audio for a REST stream/talk is fetched or synthesized after the 200 is
sent, so it starts a moment later (like the real platform, which also fetches first).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import urlencode

from labkit.errors import NccoError, SandboxInvalidParameters, SocketError
from labkit.media.frames import content_type, parse_content_type
from labkit.sandbox.engine import lifecycle, machine
from labkit.sandbox.engine.exceptions import invalid
from labkit.sandbox.engine.legs import FINAL_STATUSES, LIVE_STATUSES, SandboxCall, Transferred
from labkit.sandbox.engine.ncco import NCCO_ERROR_REASON, prepare_first_talk, validate
from labkit.sandbox.engine.ncco_schema import web_url
from labkit.sandbox.engine.phones import HEAR_RATE
from labkit.sandbox.engine.platform import Platform

# fullmatch with ASCII classes: `$` also matches before a final newline, and `\d` matches any Unicode digit.
E164 = re.compile(r"[0-9]{7,15}")
UPDATE_ACTIONS = ("hangup", "mute", "unmute", "earmuff", "unearmuff", "transfer")
STATUS_FILTERS = tuple(sorted(LIVE_STATUSES | FINAL_STATUSES | {"machine"}))


# ---------------------------------------------------------------------------------------- checks


def _int(body: dict, name: str, default: int, lo: int, hi: int | None = None) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().lstrip("-").isascii() and value.strip().lstrip("-").isdigit():
            value = int(value)
        else:
            raise invalid(name, "Invalid type parameter provided", f"{name} must be a whole number")
    if value < lo or (hi is not None and value > hi):
        bound = f"{lo}-{hi}" if hi is not None else f">= {lo}"
        raise invalid(name, f"Value out of range ({bound})", f"{name} must be {bound}, not {value}")
    return value


def _level(body: dict) -> float:
    """`level` may be a JSON number (the SDK) or a string (the spec): both are accepted."""
    value = body.get("level", 0)
    if value is None:
        return 0.0
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        raise invalid("level", "Invalid type parameter provided", "level must be a number from -1 to 1") from None
    if not -1.0 <= number <= 1.0:
        raise invalid("level", "Value out of range (-1 to 1)", f"level must be from -1 to 1, not {number}")
    return number


def _url_array(body: dict, name: str, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise invalid(name, "Missing parameter", f"{name} is required (an array with one URL)")
        return None
    if not isinstance(value, list) or not value or not all(isinstance(u, str) and u for u in value):
        raise invalid(name, "Invalid type parameter provided", f"{name} must be an array of URL strings")
    if not all(web_url(u) for u in value):  # Vonage requests them over the internet: http(s) only
        raise invalid(name, "Invalid URL", f"{name} must hold http:// or https:// URLs, not {value[0]!r:.60}")
    return value[0]


def _method(body: dict, name: str, default: str) -> str:
    value = body.get(name) or default
    if not isinstance(value, str) or value.upper() not in ("GET", "POST"):
        raise invalid(name, "Invalid value", f"{name} must be GET or POST")
    return value.upper()


def _parse_time(value: str, name: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(name, "Invalid date-time", f"{name} must be an ISO-8601 date-time") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


# ---------------------------------------------------------------------------------------- calls


def create_call(p: Platform, body: Any, *, application_id: str | None = None) -> dict:
    """POST /v1/calls: check the request, start the call's lifecycle, answer 201's body.

    `application_id` (the JWT's) is the application whose event URL serves a call sent without one.
    """
    if not isinstance(body, dict):
        raise invalid("body", "Invalid JSON body", "the request body must be a JSON object")
    to = body.get("to")
    if not isinstance(to, list) or not to or not isinstance(to[0], dict):
        raise invalid("to", "Invalid type parameter provided", "to must be an array with one endpoint object")
    ep = to[0]
    kind = ep.get("type")
    rate = HEAR_RATE
    if kind == "phone":
        if not isinstance(ep.get("number"), str):  # the spec's EndpointPhoneTo.number is a string
            raise invalid("to", "Invalid type parameter provided", "to[0].number must be a string of digits")
        number = ep["number"].lstrip("+")
        if not E164.fullmatch(number):
            raise invalid("to", "Invalid number", "to[0].number must be an E.164 number (7-15 digits)")
        to_obj = {"type": "phone", "number": number}
    elif kind == "websocket":
        uri = ep.get("uri")
        if not isinstance(uri, str) or not uri.startswith(("ws://", "wss://")):
            raise invalid("to", "Invalid uri", "to[0].uri must be a ws:// or wss:// URI")
        try:
            rate = parse_content_type(ep.get("content-type", ""))
        except SocketError:
            raise invalid("to", "Invalid content-type",
                          "to[0].content-type must be audio/l16;rate=8000|16000|24000") from None
        to_obj = {"type": "websocket", "uri": uri, "content-type": content_type(rate)}
        if isinstance(ep.get("headers"), dict):
            to_obj["headers"] = ep["headers"]
    elif kind in ("sip", "vbc", "app"):
        to_obj = {k: v for k, v in ep.items() if k in ("type", "uri", "extension", "user")}
    else:
        raise invalid("to", "Invalid endpoint type", "to[0].type must be phone, websocket, sip or vbc")

    from_ = body.get("from")
    random_from = body.get("random_from_number")
    if from_ and random_from:
        raise invalid("from", "Invalid parameters", "from and random_from_number cannot be used together")
    if not from_ and not random_from:
        raise invalid("from", "Missing parameter", "from (or random_from_number: true) is required")
    if random_from:
        from_obj = {"type": "phone", "number": p.number}
    elif isinstance(from_, dict):
        if not isinstance(from_.get("number"), str):  # EndpointPhoneFrom.number is a string too
            raise invalid("from", "Invalid type parameter provided", "from.number must be a string of digits")
        number = from_["number"].lstrip("+")
        if from_.get("type", "phone") != "phone" or not number:
            raise invalid("from", "Invalid parameters", "from must be {type: phone, number: ...}")
        from_obj = {"type": "phone", "number": number}
    elif isinstance(from_, str):
        from_obj = {"type": "phone", "number": from_.lstrip("+")}
    else:
        raise invalid("from", "Invalid type parameter provided", "from must be an object or a number")

    ncco = body.get("ncco")
    answer_url = body.get("answer_url")
    if (ncco is None) == (answer_url is None):
        raise invalid("ncco", "Invalid parameters", "send exactly one of ncco and answer_url")
    if ncco is not None:
        # An inline NCCO is checked before the call is made: a create call whose NCCO had a string
        # `eventUrl` was answered 400 Bad Request (vonage-php-sdk-core issue 196). Only an NCCO from an
        # answer URL is reported as the `error` event (webhook reference, Errors). Body: UNCONFIRMED.
        try:
            validate(ncco)
        except NccoError as err:
            raise SandboxInvalidParameters(f"the NCCO is not valid: {err.detail}", invalid_parameters=[
                {"reason": NCCO_ERROR_REASON, "name": "ncco" if err.index is None else f"ncco[{err.index}]"}],
            ) from None
    answer = _url_array(body, "answer_url", required=False) if answer_url is not None else None
    app_settings = p.account.settings_for(application_id)
    event_url = _url_array(body, "event_url", required=False)
    event_default = "POST" if event_url else app_settings.event_method
    event_url = event_url or app_settings.event_url
    if not event_url:
        raise invalid("event_url", "Missing parameter",
                      "event_url is required unless the application has one (set its voice event_url)")
    length_timer = _int(body, "length_timer", 7200, 1, 86400)
    ringing_timer = _int(body, "ringing_timer", 60, 1, 120)
    detection = machine.settings_from(body)

    if ncco is not None:
        prepare_first_talk(p, ncco, rate)  # before the call (and its clock) starts
    leg = SandboxCall(
        p, direction="outbound", to=to_obj, from_=from_obj, kind=kind, rate=rate, event_url=event_url,
        event_method=_method(body, "event_method", event_default),
    )
    leg.application_id = application_id
    leg.ncco = ncco
    leg.answer_url = answer
    leg.answer_method = _method(body, "answer_method", "GET")
    leg.length_timer = float(length_timer)
    leg.ringing_timer = float(ringing_timer)
    leg.machine_detection = detection
    lifecycle.start(p, leg, lifecycle.run_outbound)
    return {"uuid": leg.uuid, "status": "started", "direction": "outbound",
            "conversation_uuid": leg.conversation.uuid}


def list_calls(p: Platform, query: dict[str, str], *, application_id: str | None = None) -> dict:
    """GET /v1/calls with paging (`_links` first/last/self/next/prev) and filters; only the calls of
    `application_id` (the JWT's) when given."""
    page_size = _int(query, "page_size", 10, 1, 100)
    record_index = _int(query, "record_index", 0, 0)
    order = (query.get("order") or "asc").lower()
    if order not in ("asc", "desc"):
        raise invalid("order", "Invalid value", "order must be asc or desc")
    status = query.get("status")
    if status and status not in STATUS_FILTERS:
        raise invalid("status", "Invalid value", f"status must be one of {', '.join(STATUS_FILTERS)}")
    conv = query.get("conversation_uuid")
    start = _parse_time(query["date_start"], "date_start") if query.get("date_start") else None
    end = _parse_time(query["date_end"], "date_end") if query.get("date_end") else None
    with p.lock:
        legs = list(p.order)
        rows = []
        for leg in legs:
            if application_id and not p.account.owns(leg, application_id):
                continue
            if status and leg.status != status:
                continue
            if conv and leg.conversation.uuid != conv:
                continue
            if start and leg.created_at < start:
                continue
            if end and leg.created_at > end:
                continue
            rows.append(leg)
        if order == "desc":
            rows.reverse()
        count = len(rows)
        page = [p.call_object(leg) for leg in rows[record_index:record_index + page_size]]

    extra = {k: v for k, v in (("order", query.get("order")), ("status", status), ("conversation_uuid", conv),
                                ("date_start", query.get("date_start")), ("date_end", query.get("date_end"))) if v}

    def href(index: int) -> dict:
        return {"href": "/v1/calls?" + urlencode({"page_size": page_size, "record_index": index, **extra})}

    last = max(0, (count - 1) // page_size * page_size) if count else 0
    links: dict[str, Any] = {"self": href(record_index), "first": href(0), "last": href(last)}
    if record_index + page_size < count:
        links["next"] = href(record_index + page_size)
    if record_index > 0:
        links["prev"] = href(max(0, record_index - page_size))
    return {"count": count, "page_size": page_size, "record_index": record_index, "_links": links,
            "_embedded": {"calls": page}}


def get_call(p: Platform, uuid: str) -> dict:
    return p.call_object(p.get_leg(uuid))


def update_call(p: Platform, uuid: str, body: Any) -> None:
    """PUT /v1/calls/{uuid}: hangup, mute, unmute, earmuff, unearmuff, transfer (204)."""
    if not isinstance(body, dict) or body.get("action") not in UPDATE_ACTIONS:
        raise invalid("action", "Invalid value", f"action must be one of {', '.join(UPDATE_ACTIONS)}")
    action = body["action"]
    if action == "transfer":
        leg = p.live_leg(uuid)
        dest = body.get("destination")
        if not isinstance(dest, dict) or dest.get("type") != "ncco":
            raise invalid("destination", "Invalid value", "destination must be {type: ncco, ncco: [...]} or "
                          "{type: ncco, url: [...]}")
        if "ncco" in dest:
            try:
                ncco = validate(dest["ncco"])
            except NccoError as err:
                raise SandboxInvalidParameters(
                    f"the NCCO is not valid: {err.detail}",
                    invalid_parameters=[{"reason": "Invalid NCCO", "name": "destination.ncco"}],
                ) from None
            tr = Transferred(ncco)
        else:
            url = _url_array(dest, "url", required=True)
            tr = Transferred(None, url)
        with p.lock:
            leg.transfer = tr
            leg.cond.notify_all()
        return
    leg = p.live_leg(uuid, answered=False)
    if action == "hangup":
        p.end_leg(leg, "completed", by="app")
        return
    with p.lock:
        if action in ("mute", "unmute"):
            leg.muted = action == "mute"
        else:
            leg.earmuffed = action == "earmuff"


def get_file(p: Platform, file_id: str) -> tuple[bytes, str]:
    from labkit.errors import SandboxNotFound

    with p.lock:
        entry = p.files.get(file_id)
    if entry is None or not entry[0].is_file():
        raise SandboxNotFound(f"No recording with id {file_id}.")
    return entry[0].read_bytes(), entry[1]
