"""The NCCO engine: validation like the platform's, and execution of each action on one call leg.

Validation (`validate`) rejects what the platform rejects: unknown actions, missing required fields,
wrong value types, `streamUrl` not a one-URL array, more than one `connect` endpoint, `bargeIn` not
followed by an `input` before any other non-talk/stream action, `canSpeak` together with `mute`.
On the wire an invalid NCCO becomes an `error` event whose reason is Vonage's generic sentence
(`NCCO_ERROR_REASON`); the sandbox keeps the precise why in `SandboxCall.errors` and the log.

UNCONFIRMED choices, kept here:
- an invalid NCCO (inline, from the answer URL, or from an instruction reply) is reported when it would
  start running, then the call is hung up; `POST /v1/calls` itself still answers 201.
- `transfer` (NCCO action, SDK only) moves the leg into the conversation with that id; `wait` pauses.
- speech `input`: the sandbox "recognises" what a phone says with `say(..., text=...)`.
- the `error` event carries only reason, conversation_uuid and timestamp (the reference's field list:
  no uuid), so route it by conversation_uuid.
- `record` honours `format` (mp3 by default, as Vonage; wav; ogg) and writes mono at the leg's rate;
  `split`/`channels` are accepted but not split into channels. `endOnSilence` counts silence from the
  start of the recording.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from labkit.errors import AudioError, NccoError, SocketError
from labkit.media.frames import RATES, content_type, parse_content_type
from labkit.sandbox.clock import Clock
from labkit.sandbox.conversations import Participation
from labkit.sandbox.legs import InputState, LegEnded, iso, utcnow
from labkit.sandbox.mixer import Player, level_to_gain
from labkit.sandbox.recordings import Recorder
from labkit.sandbox.sources import beep, plain_text

if TYPE_CHECKING:  # pragma: no cover
    from labkit.sandbox.legs import SandboxCall
    from labkit.sandbox.platform import Platform

log = logging.getLogger("labkit.sandbox.ncco")

NCCO_ERROR_REASON = "Syntax error in NCCO. Invalid value type or action."
ACTIONS = ("talk", "stream", "connect", "conversation", "input", "record", "notify", "wait", "transfer")
ENDPOINT_TYPES = ("phone", "websocket", "sip", "app", "vbc")
# "text (required, at most 1500 characters excluding SSML)": NCCO reference, talk action
# (/work/shared/reference/vonage-voice-api.md section 4).
TALK_TEXT_LIMIT = 1500
DEFAULT_INPUT_TIMEOUT = 3
DEFAULT_MAX_DIGITS = 4
DEFAULT_SPEECH_SILENCE = 2.0
DEFAULT_SPEECH_START = 10
SPEECH_CONFIDENCE = 0.9


# ---------------------------------------------------------------------------------------- validation


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


def _url_list(v: Any, one: bool = True) -> bool:
    return (isinstance(v, list) and len(v) >= 1 and (len(v) == 1 or not one)
            and all(isinstance(u, str) and u.strip() for u in v))


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
        self.opt("eventUrl", _url_list, "an array with one URL")
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


# The PHP SDK sends these as strings ("loop": "1", "bargeIn": "false", "timeOut": "7200") and Vonage
# honours them (reference/vonage-platform.md, record section: PHP Record/Talk/Stream/Conversation/Input.php
# and commit eb73c22); they are read as the JSON types here, before the checks.
_STRING_BOOLS = {"bargeIn", "premium", "startOnEnter", "endOnExit", "record", "mute", "beepStart",
                 "randomFromNumber", "submitOnHash"}
_STRING_NUMBERS = {"loop", "style", "timeout", "limit", "channels", "timeOut", "endOnSilence", "maxDigits"}


def _from_strings(obj: dict) -> dict:
    """A copy of an action (or its `dtmf` object) with PHP-style string values read as bools and numbers."""
    out = dict(obj)
    for key, value in obj.items():
        if not isinstance(value, str):
            if key == "dtmf" and isinstance(value, dict):
                out[key] = _from_strings(value)
            continue
        text = value.strip()
        if key in _STRING_BOOLS and text.lower() in ("true", "false"):
            out[key] = text.lower() == "true"
        elif key in _STRING_NUMBERS and re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", text):
            out[key] = float(text) if "." in text else int(text)
    return out


def validate(ncco: Any) -> list[dict]:
    """Return the NCCO (a list of action objects) or raise NccoError saying what is wrong."""
    if not isinstance(ncco, list):
        raise NccoError(f"an NCCO must be a JSON array of actions, not {type(ncco).__name__}")
    ncco = [_from_strings(a) if isinstance(a, dict) else a for a in ncco]
    barge_pending: int | None = None
    for i, action in enumerate(ncco):
        if not isinstance(action, dict):
            raise NccoError(f"action {i} must be an object, not {type(action).__name__}", index=i)
        name = action.get("action")
        if name not in ACTIONS:
            raise NccoError(f"action {i}: unknown action {name!r} (known: {', '.join(ACTIONS)})", index=i)
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
                c.fail("'streamUrl' must be an array containing a single URL")
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
            c.opt("ringbackTone", lambda v: isinstance(v, str) or _url_list(v), "a URL")
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
            dtmf = action.get("dtmf")
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


# ---------------------------------------------------------------------------------------- execution


class ReplaceNcco(Exception):  # noqa: N818 - control flow, not an error
    """An instruction event returned an NCCO: it replaces the rest of the current one."""

    def __init__(self, ncco: list) -> None:
        super().__init__("replace")
        self.ncco = ncco


class NccoRunner:
    """Runs NCCO actions on one leg, in its runner thread."""

    def __init__(self, platform: Platform, leg: SandboxCall) -> None:
        self.p = platform
        self.leg = leg

    # the entry point ---------------------------------------------------------------------------

    def run(self, ncco: Any) -> None:
        """Validate and run `ncco`; returns when it runs out (raises LegEnded/Transferred)."""
        actions = self.checked(ncco)
        if actions is None:
            return
        self.prefetch(actions)
        i = 0
        while i < len(actions):
            action = actions[i]
            i += 1
            try:
                self.execute(action)
            except ReplaceNcco as rep:
                actions = self.checked(rep.ncco)
                if actions is None:
                    return
                self.prefetch(actions)
                i = 0

    def prefetch(self, actions: list[dict]) -> None:
        """Start fetching every stream and hold-music file the NCCO names (like Vonage's cache)."""
        for a in actions:
            url = None
            if a["action"] == "stream":
                url = a["streamUrl"][0]
            elif a["action"] == "conversation":
                url = _first(a.get("musicOnHoldUrl"))
            if url:
                self.p.sources.prefetch(url, self.leg.rate)

    def checked(self, ncco: Any) -> list[dict] | None:
        """The validated NCCO, or None after reporting it (error event) and hanging up."""
        try:
            return validate(ncco)
        except NccoError as err:
            self.reject(err.detail)
            return None

    def reject(self, detail: str) -> None:
        """Report an unusable NCCO like Vonage (error event), keep the detail, end the call."""
        leg = self.leg
        with self.p.lock:
            leg.errors.append(detail)
        log.warning("call %s: invalid NCCO: %s", leg.uuid, detail)
        payload = {
            "reason": NCCO_ERROR_REASON,
            "conversation_uuid": leg.conversation.uuid,
            "timestamp": iso(utcnow()),
        }
        self.p.post(leg, payload)
        self.p.end_leg(leg, "completed")
        raise LegEnded()

    def instruction(self, payload: dict, url: str | None, method: str | None) -> None:
        """Send an instruction event and, when it returns an NCCO, replace the rest of this one."""
        future = self.p.post(self.leg, payload, instruction=True, url=url, method=method)
        reply = self.p.instruction_reply(self.leg, future)
        with self.p.lock:
            self.leg.check()
        if reply is not None:
            raise ReplaceNcco(reply)

    def execute(self, a: dict) -> None:
        getattr(self, f"_{a['action']}")(a)

    # audio --------------------------------------------------------------------------------------

    def _play_and_wait(self, samples: Any, a: dict) -> None:
        leg, p = self.leg, self.p
        loop = int(a.get("loop", 1) if a.get("loop") is not None else 1)
        player = p.play(leg, "script", samples, loop=loop, gain=level_to_gain(a.get("level")))
        barge = a.get("bargeIn") is True
        with p.lock:
            if barge:
                leg.barge = True
        try:
            p.wait(leg, lambda: player.done)
        finally:
            with p.lock:
                if barge:
                    leg.barge = False
                if leg.players.get("script") is player:
                    leg.players.pop("script", None)
                player.stop()

    def _talk(self, a: dict) -> None:
        audio = self.p.sources.talk(a["text"], self.leg.rate, a.get("language"), a.get("style"))
        self._play_and_wait(audio, a)

    def _stream(self, a: dict) -> None:
        url = a["streamUrl"][0]
        try:
            audio = self.p.sources.stream(url, self.leg.rate)
        except AudioError as err:
            # the platform skips a stream it cannot fetch or play; the sandbox says why
            with self.p.lock:
                self.leg.errors.append(f"stream {url}: {err}")
            log.warning("call %s: %s", self.leg.uuid, err)
            return
        self._play_and_wait(audio, a)

    # input --------------------------------------------------------------------------------------

    def _input(self, a: dict) -> None:
        leg, p = self.leg, self.p
        kinds = a["type"]
        dtmf = a.get("dtmf") or {}
        speech = a.get("speech") or {}
        timeout = dtmf.get("timeOut", DEFAULT_INPUT_TIMEOUT)
        max_digits = int(dtmf.get("maxDigits", DEFAULT_MAX_DIGITS))
        wants_speech = "speech" in kinds
        now = p.clock.ticks
        state = InputState(
            max_digits=max_digits,
            submit_on_hash=bool(dtmf.get("submitOnHash", False)),
            timeout_ticks=max(1, Clock.to_ticks(timeout)),
            now=now,
            speech=wants_speech,
            speech_start_ticks=Clock.to_ticks(speech.get("startTimeout", DEFAULT_SPEECH_START)),
            speech_silence_ticks=Clock.to_ticks(speech.get("endOnSilence", DEFAULT_SPEECH_SILENCE)),
        )
        with p.lock:
            state.digits.extend(d for d in leg.barge_digits if d != "#" or not state.submit_on_hash)
            if "#" in leg.barge_digits and state.submit_on_hash:
                state.hash_pressed = True
            leg.barge_digits.clear()
            leg.input = state
            if "dtmf" in kinds:
                leg.timers.append(p.clock.call_at(state.deadline, leg.notify))
            if wants_speech:
                leg.timers.append(p.clock.call_at(state.speech_deadline, leg.notify))
        outcome = {"reason": ""}

        def finished() -> bool:
            t = p.clock.ticks
            if "dtmf" in kinds:
                if state.hash_pressed:
                    outcome["reason"] = "hash"
                    return True
                if len(state.digits) >= state.max_digits:
                    outcome["reason"] = "max_digits"
                    return True
                if state.digits and t >= state.deadline:
                    outcome["reason"] = "timeout"
                    return True
                if not state.digits and not state.speech_heard and t >= state.deadline and not wants_speech:
                    outcome["reason"] = "timeout"
                    return True
            if wants_speech and t >= state.speech_deadline and not state.digits:
                outcome["reason"] = "speech_done" if state.speech_heard else "speech_start_timeout"
                return True
            return False

        try:
            p.wait(leg, finished)
        finally:
            with p.lock:
                leg.input = None
        payload = p.event(leg, "input")
        payload.pop("status", None)
        payload.pop("direction", None)
        body: dict[str, Any] = {}
        if "dtmf" in kinds:
            body["dtmf"] = {"digits": "".join(state.digits), "timed_out": outcome["reason"] == "timeout"}
        if wants_speech:
            if state.speech_heard:
                body["speech"] = {
                    "timeout_reason": "end_on_silence_timeout",
                    "results": [{"text": t, "confidence": str(SPEECH_CONFIDENCE)} for t in
                                [" ".join(state.speech_texts)]],
                }
            else:
                body["speech"] = {"timeout_reason": "start_timeout", "results": []}
        ordered = {**body, **payload}
        self.instruction(ordered, _first(a.get("eventUrl")), a.get("eventMethod"))

    # record -------------------------------------------------------------------------------------

    def _record(self, a: dict) -> None:
        leg, p = self.leg, self.p
        url, method = _first(a.get("eventUrl")), a.get("eventMethod")

        def done(rec: Recorder) -> None:
            p._record_event(leg, rec, url, method)

        if a.get("beepStart"):
            p.play(leg, "beep", beep(leg.rate))
        timeout = a.get("timeOut", 7200)
        silence = a.get("endOnSilence")
        rec = Recorder(
            leg.rate,
            start_tick=p.clock.ticks,
            timeout_ticks=Clock.to_ticks(timeout),
            end_on_silence_ticks=Clock.to_ticks(silence) if silence else None,
            end_on_key=a.get("endOnKey"),
            fmt=a.get("format", "mp3"),
            on_done=done,
        )
        p.add_recorder(leg, rec)

    # notify / wait ------------------------------------------------------------------------------

    def _notify(self, a: dict) -> None:
        self.instruction(dict(a["payload"]), _first(a["eventUrl"]), a.get("eventMethod"))

    def _wait(self, a: dict) -> None:
        timeout = float(a.get("timeout", 10) or 10)
        self.p.sleep(self.leg, min(7200.0, max(0.1, timeout)))

    # conversations ------------------------------------------------------------------------------

    def _conversation(self, a: dict) -> None:
        leg, p = self.leg, self.p
        conv = p.named_conversation(a["name"])
        part = Participation()
        part.start_on_enter = a.get("startOnEnter", True) is not False
        part.end_on_exit = bool(a.get("endOnExit", False))
        part.mute = bool(a.get("mute", False))
        if a.get("canSpeak") is not None:
            part.can_speak = set(a["canSpeak"])
        if a.get("canHear") is not None:
            part.can_hear = set(a["canHear"])
        moh_url = _first(a.get("musicOnHoldUrl"))
        moh_audio = None
        if moh_url:
            try:
                moh_audio = p.sources.stream(moh_url, leg.rate)
            except AudioError as err:
                with p.lock:
                    leg.errors.append(f"musicOnHoldUrl {moh_url}: {err}")
        self._join(conv, part, moh_audio, record=bool(a.get("record")),
                   hook=(_first(a.get("eventUrl")), a.get("eventMethod") or "POST"))

    def _transfer(self, a: dict) -> None:
        p = self.p
        with p.lock:
            conv = p.conversations.get(a["conversationId"])
        if conv is None or conv.ended:
            with p.lock:
                self.leg.errors.append(f"transfer: no live conversation {a['conversationId']}")
            return
        part = Participation()
        part.mute = bool(a.get("mute", False))
        if a.get("canSpeak") is not None:
            part.can_speak = set(a["canSpeak"])
        if a.get("canHear") is not None:
            part.can_hear = set(a["canHear"])
        self._join(conv, part, None, record=False, hook=None)

    def _join(self, conv: Any, part: Participation, moh_audio: Any, *, record: bool, hook: Any) -> None:
        leg, p = self.leg, self.p
        with p.lock:
            if moh_audio is not None and not conv.started and not part.start_on_enter:
                part.moh = Player(moh_audio, loop=0, label="musicOnHold")
            if record and not conv.record_requested:
                conv.record_requested = True
                conv.record_hook = (hook[0], hook[1], leg) if hook else None
            p.move_leg(leg, conv, part)
        try:
            p.wait(leg, lambda: conv.ended or leg.conversation is not conv)
        finally:
            with p.lock:
                if not leg.ended and leg.conversation is conv:
                    p.leave_conversation(leg)

    # connect ------------------------------------------------------------------------------------

    def _connect(self, a: dict) -> None:
        from labkit.sandbox import lifecycle

        leg, p = self.leg, self.p
        endpoint = a["endpoint"][0]
        child = lifecycle.start_connect_child(p, leg, endpoint, a)
        ringback = _first(a.get("ringbackTone")) if isinstance(a.get("ringbackTone"), list) else a.get("ringbackTone")
        if ringback:
            try:
                p.play(leg, "ringback", p.sources.stream(ringback, leg.rate), loop=0)
            except AudioError:
                pass
        try:
            p.wait(leg, lambda: child.status != "started" and child.status != "ringing" or child.finished)
            p.stop_slot(leg, "ringback")
            p.wait(leg, lambda: child.finished)
        finally:
            p.stop_slot(leg, "ringback")
        if child.reply_ncco is not None:
            raise ReplaceNcco(child.reply_ncco)


def _first(urls: Any) -> str | None:
    if isinstance(urls, list) and urls:
        return str(urls[0])
    if isinstance(urls, str):
        return urls
    return None


