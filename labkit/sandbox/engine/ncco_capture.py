"""The NCCO actions that wait on the caller: `input` (DTMF and speech) and `record`.

Sources are tags of ../shared/reference/vonage-platform.md (section 4 record, section 6 input).

`record` blocks the NCCO only when it has an end condition: with `endOnSilence`, `timeOut` or
`endOnKey` the recording ends when one is met and the record event is sent before the next action;
without one the NCCO goes on at once and the recording ends (and is reported) when the call ends
[DOC-NCCO-JA], [DOC-REC-JA], [PHP-PR446]. `split: conversation` records in separate channels: the caller's
speech on the left, what the caller hears on the right [DOC-REC]; `channels` (<= 32) needs `split`.
UNCONFIRMED: whether `beepStart` changes blocking (it does not here); `endOnSilence` counts silence from
the start of the recording; a leg recording with more than 2 channels puts everything the leg hears in
channel 2 and leaves the others silent.

`input` with `mode: asynchronous` sends each key as it is pressed, one digit per input event, to the URL
registered with `PUT /v1/calls/{uuid}/input/dtmf`, else to the action's eventUrl [OAS-VOICE],
[DOC-DTMF-SUB]. UNCONFIRMED: that it does not block the NCCO, and the event's exact fields (the sandbox
sends the synchronous input event's fields with `dtmf.digits` one digit long).

A caller who hangs up while `input` waits ends it with no input event (the `completed` event follows);
while `record` waits, the recording ends there and its record event is sent. UNCONFIRMED for input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labkit.sandbox.audio.sources import beep
from labkit.sandbox.engine.clock import Clock
from labkit.sandbox.engine.legs import InputState
from labkit.sandbox.engine.recordings import Recorder

if TYPE_CHECKING:  # pragma: no cover
    from labkit.sandbox.engine.legs import SandboxCall
    from labkit.sandbox.engine.platform import Platform

DEFAULT_INPUT_TIMEOUT = 3
DEFAULT_MAX_DIGITS = 4
DEFAULT_SPEECH_SILENCE = 2.0
DEFAULT_SPEECH_START = 10
SPEECH_CONFIDENCE = 0.9
# What a speech-only `input` event carries as `dtmf`: Vonage's Speech Recognition guide shows its event
# payload with `"dtmf": {"digits": null, "timed_out": false}` after `speech` (nexmo-developer
# _documentation/en/voice/voice-api/guides/asr.md, "Event Payload Example"; the webhook reference lists
# `dtmf {digits, timed_out}` and `speech` for every input event, vonage-voice-api.md section 5).
NO_DTMF = {"digits": None, "timed_out": False}
RECORD_END_CONDITIONS = ("endOnSilence", "timeOut", "endOnKey")


class ReplaceNcco(Exception):  # noqa: N818 - control flow, not an error
    """An instruction event returned an NCCO: it replaces the rest of the current one."""

    def __init__(self, ncco: list) -> None:
        super().__init__("replace")
        self.ncco = ncco


def first_url(urls: Any) -> str | None:
    """The URL of an `eventUrl`-style value (an array with one URL, or a plain string)."""
    if isinstance(urls, list) and urls:
        return str(urls[0])
    if isinstance(urls, str):
        return urls
    return None


class CaptureActions:
    """`input` and `record` for NccoRunner (which provides `p`, `leg` and `instruction`)."""

    p: Platform
    leg: SandboxCall

    def instruction(self, payload: dict, url: str | None, method: str | None) -> None:  # pragma: no cover
        raise NotImplementedError

    # input --------------------------------------------------------------------------------------

    def _input(self, a: dict) -> None:
        if a.get("mode") == "asynchronous":
            with self.p.lock:
                self.leg.async_input = (first_url(a.get("eventUrl")), a.get("eventMethod"))
            return
        self._input_sync(a)

    def _input_sync(self, a: dict) -> None:
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
            if "dtmf" not in kinds:  # speech only: the dtmf object is there, empty, after speech (ASR guide)
                body["dtmf"] = dict(NO_DTMF)
        ordered = {**body, **payload}
        self.instruction(ordered, first_url(a.get("eventUrl")), a.get("eventMethod"))

    # record -------------------------------------------------------------------------------------

    def _record(self, a: dict) -> None:
        leg, p = self.leg, self.p
        url, method = first_url(a.get("eventUrl")), a.get("eventMethod")
        split = a.get("split") == "conversation"
        channels = int(a.get("channels") or 2) if split else 1
        blocking = any(a.get(key) is not None for key in RECORD_END_CONDITIONS)

        def done(rec: Recorder) -> None:
            try:
                p._record_event(leg, rec, url, method)
            finally:
                with p.lock:
                    rec.reported = True
                leg.notify()

        if a.get("beepStart"):
            p.play(leg, "beep", beep(leg.rate))
        timeout, silence = a.get("timeOut"), a.get("endOnSilence")
        rec = Recorder(
            leg.rate,
            start_tick=p.clock.ticks,
            timeout_ticks=Clock.to_ticks(timeout) if timeout is not None else None,
            end_on_silence_ticks=Clock.to_ticks(silence) if silence is not None else None,
            end_on_key=a.get("endOnKey"),
            # "mp3; wav when recording more than 2 channels" (section 4)
            fmt=a.get("format") or ("wav" if channels > 2 else "mp3"),
            channels=channels,
            on_done=done,
        )
        p.add_recorder(leg, rec)
        if blocking:
            p.wait(leg, lambda: rec.reported)
