"""The NCCO engine: runs each action of a validated NCCO (ncco_schema.py) on one call leg.

`input` and `record`, the actions that wait on what the caller does, are in ncco_capture.py.
On the wire an invalid NCCO becomes an `error` event whose reason is Vonage's generic sentence
(`NCCO_ERROR_REASON`); the sandbox keeps the precise why in `SandboxCall.errors` and the log.

UNCONFIRMED choices, kept here:
- an invalid NCCO (inline, from the answer URL, or from an instruction reply) is reported when it would
  start running, then the call is hung up; `POST /v1/calls` itself still answers 201.
- `transfer` (NCCO action, SDK only) moves the leg into the conversation with that id; `wait` pauses.
- the `error` event carries only reason, conversation_uuid and timestamp (the reference's field list:
  no uuid), so route it by conversation_uuid.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from labkit.errors import AudioError, NccoError
from labkit.sandbox.audio.mixer import Player, level_to_gain
from labkit.sandbox.engine.conversations import Participation
from labkit.sandbox.engine.legs import LegEnded, iso, utcnow
from labkit.sandbox.engine.ncco_capture import CaptureActions, ReplaceNcco, first_url
from labkit.sandbox.engine.ncco_schema import ACTIONS, NCCO_ERROR_REASON, validate

if TYPE_CHECKING:  # pragma: no cover
    from labkit.sandbox.engine.legs import SandboxCall
    from labkit.sandbox.engine.platform import Platform

__all__ = ["ACTIONS", "NCCO_ERROR_REASON", "NccoRunner", "ReplaceNcco", "validate"]

log = logging.getLogger("labkit.sandbox.engine.ncco")


class NccoRunner(CaptureActions):
    """Runs NCCO actions on one leg, in its runner thread.

    `connect_child(platform, parent, endpoint, action)` dials the leg a `connect` action asks for: the
    leg's story (ringing, answer, its own script) is lifecycle's, which creates this runner and passes
    its own function in, so the NCCO engine never imports the lifecycle that runs it."""

    def __init__(self, platform: Platform, leg: SandboxCall,
                 connect_child: Callable[[Platform, SandboxCall, dict, dict], SandboxCall] | None = None) -> None:
        self.p = platform
        self.leg = leg
        self.connect_child = connect_child

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
            with self.p.lock:  # the control API shows this progress (GET /_labkit/calls)
                self.leg.script, self.leg.step = actions, i
            i += 1
            try:
                self.execute(action)
            except ReplaceNcco as rep:  # an instruction reply replaces the rest of the NCCO
                actions = self.checked(rep.ncco)
                if actions is None:
                    return
                self.prefetch(actions)
                i = 0

    def prefetch_early(self, ncco: Any, *, first_now: bool = False) -> None:
        """`prefetch` for an NCCO known before the call is answered (an invalid one is reported later).

        With `first_now`, a first `talk` is synthesized here and now, before the answer, not in the audio.
        """
        try:
            actions = validate(ncco)
        except NccoError:
            return
        if first_now:
            prepare_first_talk(self.p, actions, self.leg.rate)
        self.prefetch(actions)

    def prefetch(self, actions: list[dict]) -> None:
        """Start fetching every stream and hold-music file the NCCO names (like Vonage's cache), and
        synthesizing its talks."""
        for a in actions:
            url = None
            if a["action"] == "talk":  # synthesized ahead; the action waits for it instead of doing it twice
                self.p.sources.prefetch_talk(a["text"], self.leg.rate, a.get("language"), a.get("style"))
            if a["action"] == "stream":
                url = a["streamUrl"][0]
            elif a["action"] == "conversation":
                url = first_url(a.get("musicOnHoldUrl"))
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

    def _play_and_wait(self, samples: Any, a: dict, what: dict | None = None) -> None:
        leg, p = self.leg, self.p
        loop = int(a.get("loop", 1) if a.get("loop") is not None else 1)
        player = p.play(leg, "script", samples, loop=loop, gain=level_to_gain(a.get("level")), what=what)
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
        self._play_and_wait(audio, a, {"kind": "talk", "text": a["text"], "by": "ncco"})

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
        self._play_and_wait(audio, a, {"kind": "stream", "url": url, "by": "ncco"})

    # notify / wait ------------------------------------------------------------------------------

    def _notify(self, a: dict) -> None:
        self.instruction(dict(a["payload"]), first_url(a["eventUrl"]), a.get("eventMethod"))

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
        moh_url = first_url(a.get("musicOnHoldUrl"))
        moh_audio = None
        if moh_url:
            try:
                moh_audio = p.sources.stream(moh_url, leg.rate)
            except AudioError as err:
                with p.lock:
                    leg.errors.append(f"musicOnHoldUrl {moh_url}: {err}")
        self._join(conv, part, moh_audio, record=bool(a.get("record")),
                   hook=(first_url(a.get("eventUrl")), a.get("eventMethod") or "POST"))

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
        leg, p = self.leg, self.p
        endpoint = a["endpoint"][0]
        if self.connect_child is None:
            raise RuntimeError("this NccoRunner was made without connect_child: it cannot run `connect`")
        child = self.connect_child(p, leg, endpoint, a)
        ringback = first_url(a.get("ringbackTone"))
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


def prepare_first_talk(p: Platform, ncco: Any, rate: int) -> None:
    """Synthesize an NCCO's opening `talk` now (cached), e.g. while `POST /v1/calls` is answered, so that
    its cost is never call time (a call's clock runs from its creation)."""
    try:
        actions = validate(ncco)
    except NccoError:
        return
    first = actions[0] if actions else None
    if first is not None and first["action"] == "talk":
        p.sources.talk(first["text"], rate, first.get("language"), first.get("style"))
