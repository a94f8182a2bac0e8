"""NCCO validation like the platform's, with string-typed values read as Vonage reads them.

`validate` rejects what the platform rejects: unknown actions, missing required fields, wrong value
types, `streamUrl` not a one-URL array, more than one `connect` endpoint, `bargeIn` not followed by an
`input` before any other non-talk/stream action, `canSpeak` together with `mute`, DTMF settings on an
asynchronous `input`. It returns a *normalised copy*: values sent as strings are turned into the
booleans and numbers the engine uses.

Strings for booleans and numbers: Vonage's PHP SDK serialises `bargeIn`, `loop`, `level`, `premium`
(talk), `beepStart`, `endOnSilence`, `channels`, `timeOut` (record), `startOnEnter`, `endOnExit`,
`record` (conversation) and `submitOnHash` (input) as strings, and the PHP commit eb73c22 shows a
string `"7200"` `timeOut` changing the platform's behaviour, i.e. strings are honoured
(vonage-platform.md section 4, "Values as strings?"). UNCONFIRMED: no Vonage document says so, and
which other fields accept strings; the list is `STRING_BOOLS`/`STRING_NUMBERS` below (change it there).
"""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import urlsplit

from labkit import validate as validate_input
from labkit.errors import NccoError, SocketError
from labkit.media.frames import RATES, content_type, parse_content_type
from labkit.sandbox.audio.sources import plain_text

NCCO_ERROR_REASON = "Syntax error in NCCO. Invalid value type or action."
# "text (required, at most 1500 characters excluding SSML)": NCCO reference, talk action
# (/work/shared/reference/vonage-voice-api.md section 4). One limit, held in labkit.validate.
TALK_TEXT_LIMIT = validate_input.TALK_TEXT_LIMIT
# The largest NCCO taken, as compact JSON. Vonage documents no size limit (UNCONFIRMED: the number is the
# sandbox's own, generous for any hand-written script: 170 talks of 1500 characters); a 10 MB NCCO was
# accepted and held in memory for the call's life (issue 19). Change it here.
NCCO_MAX_BYTES = 256 * 1024
# Webhook and audio URLs in an NCCO are fetched by Vonage over the internet: http or https only
# (the NCCO reference's eventUrl/streamUrl examples; file:// and the like have no meaning there).
URL_SCHEMES = ("http", "https")
ACTIONS = ("talk", "stream", "connect", "conversation", "input", "record", "notify", "wait", "transfer")
ENDPOINT_TYPES = ("phone", "websocket", "sip", "app", "vbc")

# which fields of which action may come as strings ("true"/"false", "3", "0.5"): see the docstring
STRING_BOOLS: dict[str, tuple[str, ...]] = {
    "talk": ("bargeIn", "premium"),
    "stream": ("bargeIn",),
    "connect": ("randomFromNumber",),
    "conversation": ("startOnEnter", "endOnExit", "record", "mute"),
    "record": ("beepStart",),
    "input.dtmf": ("submitOnHash",),
    "transfer": ("mute",),
}
STRING_NUMBERS: dict[str, tuple[str, ...]] = {
    "talk": ("loop", "level", "style"),
    "stream": ("loop", "level"),
    "connect": ("timeout", "limit"),
    "record": ("channels", "timeOut", "endOnSilence"),
    "input.dtmf": ("timeOut", "maxDigits"),
    "input.speech": ("endOnSilence", "startTimeout", "maxDuration"),
    "wait": ("timeout",),
}


def _as_bool(v: Any) -> Any:
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    return v


def _as_number(v: Any) -> Any:
    if not isinstance(v, str):
        return v
    text = v.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return v
    return int(number) if number.is_integer() and "." not in text else number


def _coerce(obj: dict, where: str) -> None:
    """Turn the string-typed values Vonage accepts in `obj` (one action or sub-object) into values."""
    for key in STRING_BOOLS.get(where, ()):
        if key in obj:
            obj[key] = _as_bool(obj[key])
    for key in STRING_NUMBERS.get(where, ()):
        if key in obj:
            obj[key] = _as_number(obj[key])


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool))


def _level_ok(v: Any) -> bool:
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            return False
    return _is_num(v) and -1.0 <= float(v) <= 1.0


def web_url(u: Any) -> bool:
    """An absolute http(s) URL with a host."""
    if not isinstance(u, str) or not u.strip():
        return False
    try:
        parts = urlsplit(u.strip())
    except ValueError:
        return False
    return parts.scheme.lower() in URL_SCHEMES and bool(parts.netloc)


def _url_list(v: Any, one: bool = True) -> bool:
    return (isinstance(v, list) and len(v) >= 1 and (len(v) == 1 or not one)
            and all(web_url(u) for u in v))


class _Checker:
    def __init__(self, index: int, action: dict) -> None:
        self.index = index
        self.action = action
        self.name = action.get("action")

    def fail(self, why: str) -> None:
        raise NccoError(f"action {self.index} ({self.name}): {why}", index=self.index)

    def require(self, key: str) -> Any:
        if key not in self.action or self.action[key] is None:
            self.fail(f"'{key}' is required")
        return self.action[key]

    def opt(self, key: str, check: Any, what: str) -> None:
        if key in self.action and self.action[key] is not None and not check(self.action[key]):
            self.fail(f"'{key}' must be {what}, not {self.action[key]!r}")

    def common_event(self) -> None:
        self.opt("eventUrl", _url_list, "an array with one http(s) URL")
        self.opt("eventMethod", lambda v: isinstance(v, str) and v.upper() in ("GET", "POST"), "GET or POST")


def _check_endpoint(c: _Checker, ep: Any) -> None:
    if not isinstance(ep, dict):
        c.fail("each endpoint must be an object")
    kind = ep.get("type")
    if kind not in ENDPOINT_TYPES:
        c.fail(f"endpoint type must be one of {', '.join(ENDPOINT_TYPES)}, not {kind!r}")
    if kind == "phone":
        number = ep.get("number")
        if not isinstance(number, str) or not (number.isascii() and number.isdigit()) or not 7 <= len(number) <= 15:
            c.fail("a phone endpoint needs 'number' in E.164 without '+' (7-15 digits)")
    elif kind == "websocket":
        uri = ep.get("uri")
        if not isinstance(uri, str) or not uri.startswith(("ws://", "wss://")):
            c.fail("a websocket endpoint needs 'uri' starting with ws:// or wss://")
        try:
            parse_content_type(ep.get("content-type"))
        except SocketError:
            c.fail(f"a websocket endpoint needs 'content-type' one of {', '.join(map(content_type, RATES))}")
        headers = ep.get("headers")
        if headers is not None and not isinstance(headers, dict):
            c.fail("websocket 'headers' must be an object")
    elif kind == "sip" and not isinstance(ep.get("uri"), str):
        c.fail("a sip endpoint needs 'uri'")
    elif kind == "app" and not isinstance(ep.get("user"), str):
        c.fail("an app endpoint needs 'user'")
    elif kind == "vbc" and not isinstance(ep.get("extension"), str):
        c.fail("a vbc endpoint needs 'extension'")


def validate(ncco: Any) -> list[dict]:
    """The NCCO, normalised (string-typed values read as Vonage reads them), or NccoError saying why."""
    if not isinstance(ncco, list):
        raise NccoError(f"an NCCO must be a JSON array of actions, not {type(ncco).__name__}")
    try:
        size = len(json.dumps(ncco, separators=(",", ":")))
    except (TypeError, ValueError):
        raise NccoError("an NCCO must be plain JSON (objects, arrays, strings, numbers, booleans)") from None
    if size > NCCO_MAX_BYTES:
        raise NccoError(f"the NCCO is {size} bytes of JSON; the sandbox takes at most {NCCO_MAX_BYTES}")
    ncco = copy.deepcopy(ncco)
    barge_pending: int | None = None
    for i, action in enumerate(ncco):
        if not isinstance(action, dict):
            raise NccoError(f"action {i} must be an object, not {type(action).__name__}", index=i)
        name = action.get("action")
        if name not in ACTIONS:
            raise NccoError(f"action {i}: unknown action {name!r} (known: {', '.join(ACTIONS)})", index=i)
        _coerce(action, name)
        for sub in ("dtmf", "speech"):
            if name == "input" and isinstance(action.get(sub), dict):
                _coerce(action[sub], f"input.{sub}")
        c = _Checker(i, action)
        if name == "talk":
            text = c.require("text")
            if not isinstance(text, str) or not text.strip():
                c.fail("'text' must be a non-empty string")
            if len(plain_text(text)) > TALK_TEXT_LIMIT:
                c.fail(f"'text' is longer than {TALK_TEXT_LIMIT} characters")
            c.opt("bargeIn", lambda v: isinstance(v, bool), "true or false")
            c.opt("loop", lambda v: _is_int(v) and v >= 0, "a whole number >= 0")
            c.opt("level", _level_ok, "a number from -1 to 1")
            c.opt("language", lambda v: isinstance(v, str), "a language code like en-GB")
            c.opt("style", _is_int, "a whole number")
            c.opt("premium", lambda v: isinstance(v, bool), "true or false")
        elif name == "stream":
            url = c.require("streamUrl")
            if not _url_list(url):
                c.fail("'streamUrl' must be an array containing a single http(s) URL")
            c.opt("bargeIn", lambda v: isinstance(v, bool), "true or false")
            c.opt("loop", lambda v: _is_int(v) and v >= 0, "a whole number >= 0")
            c.opt("level", _level_ok, "a number from -1 to 1")
        elif name == "connect":
            endpoints = c.require("endpoint")
            if not isinstance(endpoints, list) or len(endpoints) != 1:
                c.fail("'endpoint' must be an array with exactly one endpoint")
            _check_endpoint(c, endpoints[0])
            c.opt("from", lambda v: isinstance(v, str) and v.strip(), "a number")
            c.opt("randomFromNumber", lambda v: isinstance(v, bool), "true or false")
            if action.get("from") and action.get("randomFromNumber"):
                c.fail("'from' and 'randomFromNumber' cannot be used together")
            c.opt("eventType", lambda v: v == "synchronous", "'synchronous'")
            c.opt("timeout", lambda v: _is_int(v) and v >= 1, "a whole number of seconds")
            c.opt("limit", lambda v: _is_int(v) and 1 <= v <= 7200, "1-7200 seconds")
            c.opt("machineDetection", lambda v: v in ("continue", "hangup"), "'continue' or 'hangup'")
            amd = action.get("advancedMachineDetection")
            if amd is not None:
                sub = _Checker(i, amd if isinstance(amd, dict) else {})
                sub.name = "connect.advancedMachineDetection"
                if not isinstance(amd, dict):
                    sub.fail("must be an object {behavior, mode, beep_timeout}")
                sub.opt("behavior", lambda v: v in ("continue", "hangup"), "'continue' or 'hangup'")
                sub.opt("mode", lambda v: v in ("default", "detect", "detect_beep"), "default, detect or detect_beep")
                sub.opt("beep_timeout", lambda v: _is_int(v) and 30 <= v <= 120, "30-120 seconds")
            c.opt("ringbackTone", lambda v: web_url(v) or _url_list(v), "an http(s) URL")
            c.common_event()
        elif name == "conversation":
            cname = c.require("name")
            if not isinstance(cname, str) or not cname.strip():
                c.fail("'name' must be a non-empty string")
            c.opt("musicOnHoldUrl", _url_list, "an array containing a single URL")
            for key in ("startOnEnter", "endOnExit", "record", "mute"):
                c.opt(key, lambda v: isinstance(v, bool), "true or false")
            for key in ("canSpeak", "canHear"):
                c.opt(key, lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
                      "an array of leg uuids")
            if action.get("mute") and action.get("canSpeak") is not None:
                c.fail("'mute' cannot be combined with 'canSpeak'")
            c.common_event()
        elif name == "input":
            kinds = c.require("type")
            if (not isinstance(kinds, list) or not kinds
                    or not all(k in ("dtmf", "speech") for k in kinds)):
                c.fail("'type' must be an array of 'dtmf' and/or 'speech'")
            c.opt("mode", lambda v: v in ("synchronous", "asynchronous"), "'synchronous' or 'asynchronous'")
            dtmf = action.get("dtmf")
            # asynchronous input: "all DTMF settings must be left blank" (vonage-platform.md section 6)
            if action.get("mode") == "asynchronous" and isinstance(dtmf, dict) and dtmf:
                c.fail("with mode 'asynchronous' the 'dtmf' settings must be left out (digits are sent one "
                       "at a time)")
            if dtmf is not None:
                if not isinstance(dtmf, dict):
                    c.fail("'dtmf' must be an object")
                sub = _Checker(i, dtmf)
                sub.name = "input.dtmf"
                sub.opt("timeOut", lambda v: _is_num(v) and 0 <= v <= 10, "0-10 seconds")
                sub.opt("maxDigits", lambda v: _is_int(v) and 1 <= v <= 20, "1-20")
                sub.opt("submitOnHash", lambda v: isinstance(v, bool), "true or false")
            speech = action.get("speech")
            if speech is not None and not isinstance(speech, dict):
                c.fail("'speech' must be an object")
            c.common_event()
        elif name == "record":
            c.opt("format", lambda v: v in ("mp3", "wav", "ogg"), "mp3, wav or ogg")
            c.opt("split", lambda v: v == "conversation", "'conversation'")
            c.opt("channels", lambda v: _is_int(v) and 1 <= v <= 32, "1-32")
            c.opt("endOnSilence", lambda v: _is_num(v) and 3 <= v <= 10, "3-10 seconds")
            c.opt("endOnKey", lambda v: isinstance(v, str) and len(v) == 1 and v in "0123456789*#",
                  "one of 0-9 * #")
            c.opt("timeOut", lambda v: _is_int(v) and 3 <= v <= 7200, "3-7200 seconds")
            c.opt("beepStart", lambda v: isinstance(v, bool), "true or false")
            c.common_event()
        elif name == "notify":
            payload = c.require("payload")
            if not isinstance(payload, dict):
                c.fail("'payload' must be an object")
            if not _url_list(c.require("eventUrl")):
                c.fail("'eventUrl' must be an array with one URL")
            c.common_event()
        elif name == "wait":
            c.opt("timeout", _is_num, "a number of seconds")
        elif name == "transfer":
            cid = c.require("conversationId")
            if not isinstance(cid, str):
                c.fail("'conversationId' must be a string")
            if action.get("mute") and action.get("canSpeak") is not None:
                c.fail("'mute' cannot be combined with 'canSpeak'")
        # bargeIn: the next action that is not talk/stream must be an input
        if name in ("talk", "stream"):
            if action.get("bargeIn") is True and barge_pending is None:
                barge_pending = i
        elif name == "input":
            barge_pending = None
        elif barge_pending is not None:
            raise NccoError(
                f"action {barge_pending} has bargeIn, so the next non-talk/stream action must be an input; "
                f"action {i} is {name}", index=i,
            )
    if barge_pending is not None:
        raise NccoError(f"action {barge_pending} has bargeIn but no input action follows it", index=barge_pending)
    return ncco
