"""The platform: all sandbox state and behaviour, apart from HTTP (like moto's `models.py`).

Split along the model's own lines: legs.py (calls), conversations.py (audio rooms and moves),
recordings.py, platform_audio.py (players and the mix); `Platform` here holds the registry, events and
leg lifecycle, and mixes those parts in.

Vocabulary, as on the real platform:
- a *call* in the REST API is one **leg** (`SandboxCall`): a phone, a WebSocket, ... with its own uuid and
  status (started -> ringing -> answered -> completed, or busy/rejected/unanswered/timeout/failed/cancelled);
- every leg is in exactly one **conversation** (the audio room). A call starts alone in its own
  conversation; `connect` brings another leg into it; the `conversation` action moves it to a named,
  application-wide one;
- **players** are audio the platform plays *to* one leg (talk, stream, DTMF tones, hold music).
  UNCONFIRMED: whether audio played into a leg (NCCO talk/stream, REST talk/stream/dtmf) is also heard
  by the other parties of its conversation (a connected WebSocket, say). The sandbox plays it to that leg
  only, on top of what the leg hears from the others ("mixed on top", never pausing an NCCO stream).

Concurrency model: one re-entrant lock guards all state. Each leg has a runner thread (lifecycle.py and
ncco.py) that waits on the leg's condition (built on that lock); the clock thread mixes audio under the
lock once per 20 ms tick. Anything that blocks (webhooks, fetching audio, WebSocket I/O) happens outside
the lock. `end_leg` is the single place a leg ends, callable from any thread, idempotent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.errors import SandboxCallNotActive, SandboxNotFound
from labkit.sandbox.audio.sources import AudioSources
from labkit.sandbox.engine.clock import Clock
from labkit.sandbox.engine.conversations import Conversation, ConversationMoves
from labkit.sandbox.engine.legs import (
    CALL_NETWORK,
    CALL_RATE,
    FINAL_STATUSES,
    LIVE_STATUSES,
    LegEnded,
    SandboxCall,
    iso,
    utcnow,
)
from labkit.sandbox.engine.platform_audio import PlatformAudio
from labkit.sandbox.engine.recordings import Recordings
from labkit.sandbox.wire.webhooks import WebhookClient, WebhookSettings

if TYPE_CHECKING:  # pragma: no cover
    from labkit.sandbox.engine.phones import VirtualPhone


class Platform(ConversationMoves, Recordings, PlatformAudio):
    """All sandbox state: the application, legs, conversations, phones, clock, webhooks, files."""

    def __init__(self, *, speed: float, home: Path, settings: WebhookSettings, application_id: str,
                 api_key: str, number: str) -> None:
        self.lock = threading.RLock()
        self.home = home
        self.settings = settings  # the default application's (Sandbox.configure); per leg: leg_settings
        self.account: Any = None  # applications.Account, set by Sandbox: applications, numbers, secrets
        self.application_id = application_id
        self.api_key = api_key
        self.number = number
        self.base_url = ""
        self.files_base = ""  # recording URLs' base when it is not base_url (Vonage host names)
        self.region_base = ""  # the sandbox's second address, sent as region_url (engine/regions.py)
        self.vonage_port: int | None = None  # --vonage-hostnames: region_url is a real regional host name
        self.legs: dict[str, SandboxCall] = {}
        self.order: list[SandboxCall] = []
        self.live = 0  # legs registered and not ended
        self.named: dict[str, Conversation] = {}
        self.conversations: dict[str, Conversation] = {}
        self.phones: dict[str, VirtualPhone] = {}
        self.phone_defaults: dict[str, Any] = {"answer_after": 1.0, "outcome": "answer", "hangup_after": None}
        self.files: dict[str, tuple[Path, str]] = {}
        self.sources = AudioSources()
        self.webhooks = WebhookClient(lambda: self.settings, api_key=api_key, application_id=application_id)
        self.clock = Clock(self.tick, speed=speed, is_idle=self.is_idle)
        self.stopping = False


    def add_leg(self, leg: SandboxCall) -> None:
        with self.lock:
            self.live += 1
            self.legs[leg.uuid] = leg
            self.order.append(leg)
            self.conversations[leg.conversation.uuid] = leg.conversation
        self.clock.wake()


    def get_leg(self, uuid: str) -> SandboxCall:
        with self.lock:
            leg = self.legs.get(uuid)
        if leg is None:
            raise SandboxNotFound(f"No call with uuid {uuid}: check the uuid (calls are per application).")
        return leg


    def live_leg(self, uuid: str, *, answered: bool = True) -> SandboxCall:
        """The leg, if it can be controlled: 404 when unknown or over, 400 when not answered yet."""
        leg = self.get_leg(uuid)
        if leg.ended:
            raise SandboxNotFound(
                f"Call {uuid} is {leg.status}: it has ended, so it cannot be controlled any more."
            )
        if answered and leg.status != "answered":
            raise SandboxCallNotActive(
                f"Call {uuid} is {leg.status}, not answered yet: wait for the 'answered' event "
                "before controlling it (or put the first audio in the NCCO)."
            )
        return leg


    def is_idle(self) -> bool:
        """No call is live: the clock may sleep."""
        return self.live <= 0


    def phone(self, number: str) -> VirtualPhone:
        from labkit.sandbox.engine.phones import VirtualPhone

        number = str(number).lstrip("+")
        with self.lock:
            phone = self.phones.get(number)
            if phone is None:
                phone = VirtualPhone(self, number, **self.phone_defaults)
                self.phones[number] = phone
            return phone


    def event(self, leg: SandboxCall, status: str, **extra: Any) -> dict:
        """The common fields of a call event (from, to, uuid, conversation_uuid, status, direction, timestamp)."""
        payload: dict[str, Any] = {
            "from": leg.from_address,
            "to": leg.to_address,
            "uuid": leg.uuid,
            "conversation_uuid": leg.conversation.uuid,
            "status": status,
            "direction": leg.direction,
            "timestamp": iso(utcnow()),
        }
        payload.update(extra)
        return payload


    def post(self, leg: SandboxCall, payload: dict, *, instruction: bool = False, url: str | None = None,
             method: str | None = None) -> Future:
        """Queue a webhook for `leg` (in order with its other webhooks); a Future of the WebhookResult."""
        settings = self.leg_settings(leg)
        target = url or leg.event_url or settings.event_url
        verb = (method or (leg.event_method if not url else "POST") or "POST").upper()
        # Stamped, recorded and queued under one lock: two threads posting for one leg (its runner and a
        # hangup) must put their webhooks on the wire in the order of their timestamps and of leg.events.
        with self.lock:
            if "timestamp" in payload:
                payload["timestamp"] = iso(utcnow())
            leg.events.append(payload)
            leg.cond.notify_all()
            if not target or self.stopping:
                done: Future = Future()
                done.set_result(None)
                return done
            return leg.hooks.send("instruction" if instruction else "event", target, verb, payload,
                                  fallback=instruction, settings=settings)  # only queues: never blocks

    def leg_settings(self, leg: SandboxCall) -> WebhookSettings:
        """The webhook settings of the application `leg` belongs to (signing, timeouts, fallback)."""
        app_id = getattr(leg, "application_id", None)
        return self.account.settings_for(app_id) if self.account is not None else self.settings


    def post_status(self, leg: SandboxCall, status: str, **extra: Any) -> Future:
        with self.lock:  # the status the leg shows and the order its webhooks go out must agree
            if status in LIVE_STATUSES and leg.ended:
                # A runner that answered just as the call was hung up (its answer webhook in flight): the
                # final event is already queued, and no live status may follow it.
                done: Future = Future()
                done.set_result(None)
                return done
            if status in LIVE_STATUSES or status in FINAL_STATUSES:
                leg.status = status
            return self.post(leg, self.event(leg, status, **extra))


    def completed_fields(self, leg: SandboxCall) -> dict[str, Any]:
        duration = leg.duration
        price = float(CALL_RATE) * duration / 60.0
        return {
            "start_time": iso(leg.answered_at),
            "end_time": iso(leg.ended_at),
            "duration": str(duration),
            "rate": CALL_RATE,
            "price": f"{price:.8f}",
            "network": CALL_NETWORK,
        }


    def call_object(self, leg: SandboxCall) -> dict[str, Any]:
        """The CallObj of `GET /v1/calls/{uuid}` (money and times only once completed)."""
        body: dict[str, Any] = {
            "_links": {"self": {"href": f"/v1/calls/{leg.uuid}"}},
            "uuid": leg.uuid,
            "conversation_uuid": leg.conversation.uuid,
            "direction": leg.direction,
            "status": leg.status,
            "to": dict(leg.to),
            "from": dict(leg.from_),
        }
        if leg.status == "completed":
            body.update(self.completed_fields(leg))
        return body


    def answer_leg(self, leg: SandboxCall) -> None:
        """Mark answered (the clock starts mixing it) and start its length_timer."""
        with self.lock:
            leg.check()
            leg.status = "answered"
            leg.answered_at = utcnow()
            leg.answered_tick = self.clock.ticks
            leg.timers.append(self.clock.call_later(leg.length_timer, lambda: self.end_leg(leg, "completed")))
            if leg.phone is not None:
                leg.phone._answered(leg)
            leg.cond.notify_all()


    def end_leg(self, leg: SandboxCall, status: str = "completed", detail: str | None = None,
                *, extra: dict | None = None, event: bool = True, by: str = "platform") -> None:
        """End `leg` with a final `status` (idempotent, any thread, never blocks on the network).

        A leg that was never answered cannot be 'completed': it becomes 'cancelled' (the caller gave up).
        Its connect children end with it; its phone goes idle; its WebSocket is closed.
        """
        with self.lock:
            if leg.ended:
                return
            if status == "completed" and leg.answered_at is None:
                status = "cancelled"
            leg.ended = True
            leg.ended_by = by  # phone (the caller), app (REST hangup, its WebSocket), ncco (ran out), platform
            if leg.uuid in self.legs:
                self.live -= 1
            leg.status = status
            leg.detail = detail
            leg.ended_at = utcnow()
            leg.ended_tick = self.clock.ticks
            for timer in leg.timers:
                timer.cancel()
            leg.timers.clear()
            for player in leg.players.values():
                player.stop()
            leg.players.clear()
            recorders, leg.recorders = leg.recorders, []
            for rec in recorders:
                self._finish_recorder(rec)
            conv = leg.conversation
            if leg in conv.legs:
                conv.legs.remove(leg)
            self._after_leave(conv, leg.part.end_on_exit)
            leg.input = None
            children = [c for c in leg.children if not c.ended]
            if leg.phone is not None:
                leg.phone._call_ended(leg)
            endpoint = leg.endpoint
            if event:
                fields = dict(extra or {})
                if detail:
                    fields["detail"] = detail
                if status == "completed":
                    fields = {**self.completed_fields(leg), **fields}
                self.post(leg, self.event(leg, status, **fields))  # queued under the lock: nothing later goes first
            leg.cond.notify_all()
            if leg.parent is not None:
                leg.parent.cond.notify_all()
        if endpoint is not None and hasattr(endpoint, "close"):
            endpoint.close()
        for child in children:
            self.end_leg(child, "completed", by=by)


    def wait(self, leg: SandboxCall, predicate: Callable[[], bool], *, until_tick: int | None = None) -> bool:
        """Block the leg's runner until `predicate()` (True) or tick `until_tick` (False).

        Raises LegEnded/Transferred when the leg is hung up or transferred meanwhile.
        """
        timer = self.clock.call_at(until_tick, leg.notify) if until_tick is not None else None
        try:
            with self.lock:
                while True:
                    leg.check()
                    if predicate():
                        return True
                    if until_tick is not None and self.clock.ticks >= until_tick:
                        return False
                    if self.stopping:
                        raise LegEnded()
                    leg.cond.wait(0.25)
        finally:
            if timer is not None:
                timer.cancel()


    def sleep(self, leg: SandboxCall, seconds: float) -> None:
        """Wait `seconds` of call time (interruptible like `wait`)."""
        self.wait(leg, lambda: False, until_tick=self.clock.ticks + max(1, Clock.to_ticks(seconds)))


    def wait_future(self, leg: SandboxCall | None, future: Future, timeout: float = 60.0) -> Any:
        """The result of a webhook Future; None after `timeout` real seconds, at stop, or once `leg` ended."""
        waiter = threading.Event()
        future.add_done_callback(lambda _f: waiter.set())
        deadline = time.monotonic() + timeout
        while not waiter.wait(0.05):
            if time.monotonic() > deadline or self.stopping or (leg is not None and leg.ended):
                return None
        try:
            return future.result()
        except Exception:
            return None


    def instruction_reply(self, leg: SandboxCall | None, future: Future) -> list | None:
        """The NCCO (a JSON array) an instruction webhook's reply carries, else None (see `wait_future`).

        Waits long enough for the retry and the fallback's two attempts, each connect + read timeout.
        """
        cfg = self.settings
        result = self.wait_future(leg, future, timeout=4 * (cfg.connect_timeout + cfg.event_timeout) + 5)
        reply = result.json() if result is not None and result.ok else None
        return reply if isinstance(reply, list) else None


    def end_all(self, *, events: bool = True) -> None:
        """Hang up every live leg (the sandbox is stopping); `events` posts their final status."""
        with self.lock:
            legs = [leg for leg in self.legs.values() if not leg.ended]
        for leg in legs:
            self.end_leg(leg, "completed", event=events)
