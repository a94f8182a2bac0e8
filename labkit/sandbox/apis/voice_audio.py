"""The Voice API's in-call audio (REST stream, talk and DTMF into a call), free of HTTP: split from
voice.py, whose checks it shares. UNCONFIRMED choices are listed in voice.py's docstring.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from labkit.errors import AudioError
from labkit.sandbox.apis.voice import _int, _level
from labkit.sandbox.audio.mixer import level_to_gain
from labkit.sandbox.audio.sources import dtmf_tones, plain_text
from labkit.sandbox.engine.exceptions import invalid
from labkit.sandbox.engine.legs import SandboxCall
from labkit.sandbox.engine.ncco_schema import TALK_TEXT_LIMIT, web_url
from labkit.sandbox.engine.platform import Platform

# fullmatch with ASCII classes: `$` also matches before a final newline, `\d` any Unicode digit.
DTMF_PATTERN = re.compile(r"[0-9*#pP]+")


def _next_seq(leg: SandboxCall, slot: str) -> int:
    """Each REST start/stop on a slot bumps its sequence: late audio from an older request is dropped."""
    with leg.platform.lock:
        leg.rest_seq[slot] = leg.rest_seq.get(slot, 0) + 1
        return leg.rest_seq[slot]


def _current_seq(leg: SandboxCall, slot: str) -> int:
    with leg.platform.lock:
        return leg.rest_seq.get(slot, 0)


def _play_later(p: Platform, leg: SandboxCall, slot: str, make: Any, loop: int, gain: float, what: str,
                played: dict | None = None) -> None:
    """Prepare audio off the request thread (fetch/synthesis), then play it unless superseded."""
    seq = _next_seq(leg, slot)

    def work() -> None:
        try:
            audio = make()
        except AudioError as err:
            with p.lock:
                leg.errors.append(f"{what}: {err}")
            return
        if _current_seq(leg, slot) == seq and not leg.ended:
            p.play(leg, slot, audio, loop=loop, gain=gain, what=played)

    threading.Thread(target=work, name=f"sandbox-{slot}", daemon=True).start()


def start_stream(p: Platform, uuid: str, body: Any) -> dict:
    """PUT /v1/calls/{uuid}/stream: play a file over the call (mixed on top of what it hears)."""
    leg = p.live_leg(uuid)
    if not isinstance(body, dict):
        raise invalid("stream_url", "Invalid type parameter provided", "the body must be a JSON object")
    if "stream_url" not in body:
        raise invalid("stream_url", "Missing parameter", "stream_url is required (an array with one URL)")
    url = body.get("stream_url")
    if not isinstance(url, list) or not url or not all(web_url(u) for u in url):
        raise invalid("stream_url", "Invalid type parameter provided",
                      "stream_url must be an array of URLs, e.g. [\"https://example.com/music.mp3\"]")
    loop = _int(body, "loop", 1, 0)
    gain = level_to_gain(_level(body))
    _play_later(p, leg, "rest_stream", lambda: p.sources.stream(url[0], leg.rate), loop, gain, f"stream {url[0]}",
                {"kind": "stream", "url": url[0], "by": "rest"})
    return {"message": "Stream started", "uuid": leg.uuid}


def _stop_rest_audio(p: Platform, uuid: str, slot: str, message: str) -> dict:
    """DELETE .../stream or .../talk: stop the REST audio in `slot` (200 even when nothing plays)."""
    leg = p.live_leg(uuid)
    _next_seq(leg, slot)  # a start still fetching its audio must not begin after this stop
    p.stop_slot(leg, slot)
    return {"message": message, "uuid": leg.uuid}


def stop_stream(p: Platform, uuid: str) -> dict:
    return _stop_rest_audio(p, uuid, "rest_stream", "Stream stopped")


def start_talk(p: Platform, uuid: str, body: Any) -> dict:
    """PUT /v1/calls/{uuid}/talk: speak text over the call."""
    leg = p.live_leg(uuid)
    if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"].strip():
        raise invalid("text", "Missing parameter", "text is required (the words to speak)")
    if len(plain_text(body["text"])) > TALK_TEXT_LIMIT:
        # The limit is documented for the NCCO talk action (1500 characters, SSML not counted); that the REST
        # talk has the same limit and answers 400 like this is UNCONFIRMED (the OpenAPI gives no maxLength).
        raise invalid("text", "Value out of range", f"text can be at most {TALK_TEXT_LIMIT} characters (SSML tags "
                      f"not counted), not {len(plain_text(body['text']))}")
    loop = _int(body, "loop", 1, 0)
    gain = level_to_gain(_level(body))
    style = body.get("style")
    if style is not None and (isinstance(style, bool) or not isinstance(style, int)):
        raise invalid("style", "Invalid type parameter provided", "style must be a whole number")
    text, language = body["text"], body.get("language")
    _play_later(p, leg, "rest_talk", lambda: p.sources.talk(text, leg.rate, language, style), loop, gain, "talk",
                {"kind": "talk", "text": text, "by": "rest"})
    return {"message": "Talk started", "uuid": leg.uuid}


def stop_talk(p: Platform, uuid: str) -> dict:
    return _stop_rest_audio(p, uuid, "rest_talk", "Talk stopped")


def send_dtmf(p: Platform, uuid: str, body: Any) -> dict:
    """PUT /v1/calls/{uuid}/dtmf: play DTMF tones to the leg (its phone hears and notes them)."""
    leg = p.live_leg(uuid)
    digits = body.get("digits") if isinstance(body, dict) else None
    if not isinstance(digits, str) or not DTMF_PATTERN.fullmatch(digits):
        raise invalid("digits", "Invalid value", "digits must use 0-9, *, # and p (a 500 ms pause)")
    p.play(leg, "dtmf", dtmf_tones(digits, leg.rate), what={"kind": "dtmf", "digits": digits, "by": "rest"})
    if leg.phone is not None:
        leg.phone._dtmf_heard(digits.replace("p", "").replace("P", ""))
    return {"message": "DTMF sent", "uuid": leg.uuid}


