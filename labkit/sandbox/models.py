"""Platform state and behaviour, apart from HTTP (like moto's `models.py`).

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

import datetime as dt
import logging
import threading
import time
import uuid as uuidlib
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labkit.errors import SandboxCallNotActive, SandboxNotFound
from labkit.sandbox.clock import FRAME_SECONDS, Clock, TimerHandle
from labkit.sandbox.mixer import BUS_RATE, Player, factor, frame_len, mix_others, to_int16
from labkit.sandbox.sources import AudioSources
from labkit.sandbox.webhooks import OrderedSender, WebhookClient, WebhookSettings

if TYPE_CHECKING:  # pragma: no cover
    from labkit.sandbox.phones import VirtualPhone

log = logging.getLogger("labkit.sandbox")

LIVE_STATUSES = frozenset({"started", "ringing", "answered"})
FINAL_STATUSES = frozenset({"completed", "busy", "cancelled", "failed", "rejected", "timeout", "unanswered"})
# What a finished call reports (strings, only once completed). rate is per minute, price per second of it,
# as in the captured fixture (rate 0.1, 2 s -> price 0.00333333).
CALL_RATE = "0.10000000"
CALL_NETWORK = "23420"
RECORD_RATE = 16000
SILENCE_LEVEL = 200  # peak below which a 20 ms frame counts as silence (record endOnSilence, speech input)


def iso(when: dt.datetime | None) -> str | None:
    """'2024-04-19T01:34:18.123Z': ISO-8601 with milliseconds and Z, as the captured API responses."""
    if when is None:
        return None
    when = when.astimezone(dt.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def conversation_id() -> str:
    return f"CON-{uuidlib.uuid4()}"


class LegEnded(Exception):
    """The leg ended (hung up, timer, sandbox stopped) while its runner was waiting."""


class Transferred(Exception):
    """A REST transfer replaced the leg's NCCO: the runner drops the current one and runs `ncco`."""

    def __init__(self, ncco: list | None, url: str | None = None):
        super().__init__("transferred")
        self.ncco = ncco
        self.url = url


class Participation:
    """How a leg takes part in its conversation (from the conversation action or REST controls)."""

    __slots__ = ("can_speak", "can_hear", "mute", "start_on_enter", "end_on_exit", "moh")

    def __init__(self) -> None:
        self.can_speak: set[str] | None = None
        self.can_hear: set[str] | None = None
        self.mute = False
        self.start_on_enter = True
        self.end_on_exit = False
        self.moh: Player | None = None


class Conversation:
    """An audio room: its legs hear each other (minus themselves), subject to mute/earmuff/canHear."""

    def __init__(self, name: str | None = None, uuid: str | None = None) -> None:
        self.uuid = uuid or conversation_id()
        self.name = name
        self.legs: list[SandboxCall] = []
        self.started = name is None  # a call's own conversation is live at once; named ones wait
        self.ended = False
        self.moh_url: str | None = None
        self.recorder: Recorder | None = None
        self.record_requested = False
        self.record_hook: tuple[str | None, str, SandboxCall] | None = None  # (url, method, leg)

    def __repr__(self) -> str:
        return f"<Conversation {self.name or self.uuid} legs={len(self.legs)} started={self.started}>"


class InputState:
    """A running `input` action: digits so far and when it stops waiting."""

    def __init__(self, max_digits: int, submit_on_hash: bool, timeout_ticks: int, now: int,
                 speech: bool, speech_start_ticks: int, speech_silence_ticks: int) -> None:
        self.digits: list[str] = []
        self.max_digits = max_digits
        self.submit_on_hash = submit_on_hash
        self.timeout_ticks = timeout_ticks
        self.deadline = now + timeout_ticks
        self.hash_pressed = False
        self.speech = speech
        self.speech_texts: list[str] = []
        self.speech_deadline = now + speech_start_ticks
        self.speech_silence_ticks = speech_silence_ticks
        self.speech_heard = False


class Recorder:
    """Collects 20 ms frames (at one rate) for a `record` action or a recorded conversation."""

    def __init__(self, rate: int, *, start_tick: int, timeout_ticks: int | None = None,
                 end_on_silence_ticks: int | None = None, end_on_key: str | None = None,
                 fmt: str = "mp3", on_done: Callable[[Recorder], None] | None = None) -> None:
        self.rate = rate
        self.chunks: list[np.ndarray] = []
        self.started_at = utcnow()
        self.ended_at: dt.datetime | None = None
        self.start_tick = start_tick
        self.timeout_ticks = timeout_ticks
        self.end_on_silence_ticks = end_on_silence_ticks
        self.end_on_key = end_on_key
        self.format = fmt
        self.silent_run = 0
        self.done = False
        self.on_done = on_done
        self.recording_uuid = str(uuidlib.uuid4())
        self.path: Path | None = None  # set once the file is written
        self.file_id: str | None = None  # the id in GET /v1/files/{id}

    def feed(self, frame: np.ndarray | None, n: int, tick: int) -> bool:
        """Add one frame (None = silence); return True when an end condition was met."""
        if self.done:
            return True
        if frame is None:
            self.chunks.append(np.zeros(n, dtype=np.int16))
            self.silent_run += 1
        else:
            data = to_int16(frame)
            self.chunks.append(data)
            self.silent_run = self.silent_run + 1 if np.abs(data).max(initial=0) < SILENCE_LEVEL else 0
        if self.timeout_ticks is not None and tick - self.start_tick >= self.timeout_ticks:
            return True
        if self.end_on_silence_ticks is not None and self.silent_run >= self.end_on_silence_ticks:
            return True
        return False

    def samples(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.int16)


class SandboxCall:
    """One call leg on the sandbox platform (what `GET /v1/calls/{uuid}` describes).

    Read it freely from tests and notebooks: `uuid`, `status`, `direction`, `conversation_uuid`, `events`
    (every webhook payload the platform sent for this leg, in order), `errors` (why an NCCO was rejected,
    in plain words; the wire only says "Syntax error in NCCO"). `wait(status)` blocks until it is reached.
    """

    def __init__(self, platform: Platform, *, direction: str, to: dict, from_: dict, kind: str, rate: int,
                 event_url: str | None, event_method: str = "POST", parent: SandboxCall | None = None,
                 conversation: Conversation | None = None) -> None:
        self.platform = platform
        self.uuid = str(uuidlib.uuid4())
        self.direction = direction
        self.to = to
        self.from_ = from_
        self.kind = kind
        self.rate = rate
        self.status = "started"
        self.detail: str | None = None
        self.created_at = utcnow()
        self.created_tick = platform.clock.ticks
        self.answered_at: dt.datetime | None = None
        self.ended_at: dt.datetime | None = None
        self.answered_tick: int | None = None
        self.ended_tick: int | None = None
        self.event_url = event_url
        self.event_method = (event_method or "POST").upper()
        self.answer_url: str | None = None
        self.answer_method = "GET"
        self.ncco: list | None = None
        self.ringing_timer = 60.0
        self.length_timer = 7200.0
        self.endpoint: Any = None
        self.phone: VirtualPhone | None = None
        self.players: dict[str, Player] = {}
        self.recorders: list[Recorder] = []
        self.muted = False
        self.earmuffed = False
        self.part = Participation()
        self.conversation = conversation or Conversation()
        self.conversation.legs.append(self)
        self.parent = parent
        self.children: list[SandboxCall] = []
        self.events: list[dict] = []
        self.errors: list[str] = []
        self.cond = threading.Condition(platform.lock)
        self.ended = False
        self.finished = False  # runner thread done (after `ended`, once its last webhook reply is in)
        self.transfer: Transferred | None = None
        self.phone_decision: str | None = None  # 'answer' / 'reject' from a manual phone
        self.barge: bool = False
        self.barge_digits: list[str] = []
        self.input: InputState | None = None
        self.timers: list[TimerHandle] = []
        self.reply_ncco: list | None = None  # NCCO a child leg's instruction event returned (for the parent)
        self.disconnect_future: Future | None = None
        self.rest_seq: dict[str, int] = {}
        self.machine_detection = False  # advanced machine detection asked for: virtual phones are human
        self.hooks = OrderedSender(platform.webhooks, self.uuid[:8])
        self.thread: threading.Thread | None = None
        if parent is not None:
            parent.children.append(self)

    # ------------------------------------------------------------------ public, read-only view

    @property
    def conversation_uuid(self) -> str:
        return self.conversation.uuid

    @property
    def to_address(self) -> str:
        """What event webhooks carry in `to`: the number, or the WebSocket URI, or the SIP URI."""
        return str(self.to.get("number") or self.to.get("uri") or self.to.get("extension") or self.to.get("user"))

    @property
    def from_address(self) -> str:
        return str(self.from_.get("number") or self.from_.get("uri") or "")

    @property
    def duration(self) -> int:
        """Seconds (of call time) between answer and end; 0 if never answered."""
        if self.answered_tick is None:
            return 0
        end = self.ended_tick if self.ended_tick is not None else self.platform.clock.ticks
        return int(round((end - self.answered_tick) * FRAME_SECONDS))

    def statuses(self) -> list[str]:
        """The `status` of each event sent so far, in order (events without one are skipped)."""
        return [e["status"] for e in list(self.events) if "status" in e]

    def wait(self, status: str | Callable[[SandboxCall], bool], timeout: float = 10.0) -> bool:
        """Block until the leg reaches `status` (or any final status, or `status(call)` is true).

        `timeout` is in real seconds. Returns True when reached.
        """
        def reached() -> bool:
            if callable(status):
                return bool(status(self))
            return status in self.statuses() or self.status == status

        deadline = time.monotonic() + timeout
        with self.cond:
            while not reached():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if not callable(status) and self.finished:
                    return reached()
                self.cond.wait(min(0.05, left))
            return True

    def hangup(self) -> None:
        """The far end hangs up (a phone putting the receiver down, a server closing)."""
        self.platform.end_leg(self, "completed")

    def __repr__(self) -> str:
        return f"<SandboxCall {self.uuid[:8]} {self.direction} {self.kind} to={self.to_address} status={self.status}>"

    # ------------------------------------------------------------------ runner helpers

    def check(self) -> None:
        """Raise LegEnded/Transferred when the runner must stop what it is doing (hold the lock)."""
        if self.ended:
            raise LegEnded()
        if self.transfer is not None:
            tr, self.transfer = self.transfer, None
            raise tr

    def notify(self) -> None:
        with self.cond:
            self.cond.notify_all()


class Platform:
    """All sandbox state: the application, legs, conversations, phones, clock, webhooks, files."""

    def __init__(self, *, speed: float, home: Path, settings: WebhookSettings, application_id: str,
                 api_key: str, number: str) -> None:
        self.lock = threading.RLock()
        self.home = home
        self.settings = settings
        self.application_id = application_id
        self.api_key = api_key
        self.number = number
        self.base_url = ""
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

    # ------------------------------------------------------------------ registry

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
        from labkit.sandbox.phones import VirtualPhone

        number = str(number).lstrip("+")
        with self.lock:
            phone = self.phones.get(number)
            if phone is None:
                phone = VirtualPhone(self, number, **self.phone_defaults)
                self.phones[number] = phone
            return phone

    def named_conversation(self, name: str) -> Conversation:
        with self.lock:
            conv = self.named.get(name)
            if conv is None or conv.ended:
                conv = Conversation(name=name)
                self.named[name] = conv
                self.conversations[conv.uuid] = conv
            return conv

    # ------------------------------------------------------------------ events

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
        target = url or leg.event_url or self.settings.event_url
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
                                  fallback=instruction)  # only queues: never blocks on the network

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

    # ------------------------------------------------------------------ state transitions

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

    def move_leg(self, leg: SandboxCall, conv: Conversation, part: Participation | None = None) -> None:
        """Move `leg` into `conv` (leaving its current conversation, which ends when empty)."""
        with self.lock:
            old = leg.conversation
            if old is not conv:
                if leg in old.legs:
                    old.legs.remove(leg)
                self._maybe_end_conversation(old)
                conv.legs.append(leg)
                leg.conversation = conv
                self.conversations[conv.uuid] = conv
            if part is not None:
                leg.part = part
            if leg.part.start_on_enter and not conv.started:
                conv.started = True
                for other in conv.legs:
                    other.part.moh = None
            if conv.started and conv.record_requested and conv.recorder is None:
                self._start_conversation_recorder(conv)
            for other in conv.legs:
                other.cond.notify_all()

    def leave_conversation(self, leg: SandboxCall) -> None:
        """Take `leg` out of a named conversation into a fresh private one (after the action ends)."""
        with self.lock:
            if leg.conversation.name is not None:
                self.move_to_fresh_conversation(leg)

    def move_to_fresh_conversation(self, leg: SandboxCall) -> Conversation:
        """Move `leg` into a new private conversation and settle the one it left (which is returned).
        Callers hold `self.lock`."""
        was = leg.conversation
        if leg in was.legs:
            was.legs.remove(leg)
        fresh = Conversation()
        fresh.legs.append(leg)
        leg.conversation = fresh
        self.conversations[fresh.uuid] = fresh
        end_on_exit = leg.part.end_on_exit
        leg.part = Participation()
        self._after_leave(was, end_on_exit)
        return was

    def _after_leave(self, conv: Conversation, end_on_exit: bool) -> None:
        if end_on_exit and not conv.ended and conv.legs:
            conv.ended = True
        self._maybe_end_conversation(conv)
        for other in conv.legs:
            other.cond.notify_all()

    def _maybe_end_conversation(self, conv: Conversation) -> None:
        if not conv.legs or conv.ended:
            conv.ended = True
            self.conversations.pop(conv.uuid, None)
            if conv.name and self.named.get(conv.name) is conv:
                del self.named[conv.name]
            if conv.recorder is not None:
                rec, conv.recorder = conv.recorder, None
                self._finish_recorder(rec)

    def end_leg(self, leg: SandboxCall, status: str = "completed", detail: str | None = None,
                *, extra: dict | None = None, event: bool = True) -> None:
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
                payload = self.event(leg, status, **fields)
                self.post(leg, payload)  # queued under the lock: no later post of this leg can go first
            leg.cond.notify_all()
            if leg.parent is not None:
                leg.parent.cond.notify_all()
        if endpoint is not None and hasattr(endpoint, "close"):
            endpoint.close()
        for child in children:
            self.end_leg(child, "completed")

    # ------------------------------------------------------------------ waiting (runner threads)

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

    # ------------------------------------------------------------------ players (runner threads)

    def play(self, leg: SandboxCall, slot: str, samples: np.ndarray, *, loop: int = 1, gain: float = 1.0) -> Player:
        """Start playing `samples` (at the leg's rate) to `leg` in `slot`, replacing what played there."""
        player = Player(samples, loop=loop, gain=gain, label=slot)
        with self.lock:
            old = leg.players.get(slot)
            if old is not None:
                old.stop()
            if not leg.ended:
                leg.players[slot] = player
            else:
                player.stop()
        self.clock.wake()
        return player

    def stop_slot(self, leg: SandboxCall, slot: str) -> bool:
        with self.lock:
            player = leg.players.pop(slot, None)
            if player is None:
                return False
            player.stop()
            leg.cond.notify_all()
            return True

    # ------------------------------------------------------------------ DTMF from a phone

    def dtmf_from(self, leg: SandboxCall, digit: str, duration_ms: int) -> None:
        """A key pressed on `leg`'s phone: feeds input, barge-in, record endOnKey and WebSockets."""
        ws_targets = []
        with self.lock:
            if leg.ended or leg.status != "answered":
                return
            if leg.barge:
                leg.barge_digits.append(digit)
                script = leg.players.get("script")
                if script is not None:
                    script.stop()
                leg.barge = False
            elif leg.input is not None:
                state = leg.input
                if state.submit_on_hash and digit == "#":
                    state.hash_pressed = True
                else:
                    state.digits.append(digit)
                state.deadline = self.clock.ticks + state.timeout_ticks
                leg.timers.append(self.clock.call_at(state.deadline, leg.notify))
            for rec in list(leg.recorders):
                if rec.end_on_key and rec.end_on_key == digit:
                    leg.recorders.remove(rec)
                    self._finish_recorder(rec)
            for other in leg.conversation.legs:
                if other is not leg and other.kind == "websocket" and other.endpoint is not None:
                    ws_targets.append(other.endpoint)
            leg.cond.notify_all()
        for endpoint in ws_targets:
            endpoint.send_dtmf(digit, duration_ms)

    def speech_from(self, leg: SandboxCall, text: str) -> None:
        """An utterance with a known transcript finished on `leg` (the sandbox's speech recognition)."""
        with self.lock:
            state = leg.input
            if state is not None and state.speech:
                state.speech_texts.append(text)
                state.speech_heard = True
                state.speech_deadline = self.clock.ticks + state.speech_silence_ticks
                leg.timers.append(self.clock.call_at(state.speech_deadline, leg.notify))
                leg.cond.notify_all()

    # ------------------------------------------------------------------ recordings

    def add_recorder(self, leg: SandboxCall, rec: Recorder) -> None:
        with self.lock:
            if leg.ended:
                return
            leg.recorders.append(rec)

    def _start_conversation_recorder(self, conv: Conversation) -> None:
        hook = conv.record_hook

        def done(rec: Recorder) -> None:
            if hook is None:
                return
            url, method, leg = hook
            self._record_event(leg, rec, url, method, conversation_uuid=conv.uuid)

        conv.recorder = Recorder(RECORD_RATE, start_tick=self.clock.ticks, fmt="mp3", on_done=done)

    def _finish_recorder(self, rec: Recorder) -> None:
        """Stop `rec` and write its file on a helper thread (never on the clock thread)."""
        if rec.done:
            return
        rec.done = True
        rec.ended_at = utcnow()
        threading.Thread(target=self._write_recording, args=(rec,), name="sandbox-recording",
                         daemon=True).start()

    def _write_recording(self, rec: Recorder) -> None:
        import soundfile as sf

        folder = self.home / "recordings"
        folder.mkdir(parents=True, exist_ok=True)
        file_id = str(uuidlib.uuid4())
        samples = rec.samples()
        fmt = rec.format if rec.format in ("mp3", "wav", "ogg") else "mp3"
        path = folder / f"{file_id}.{fmt}"
        try:
            if fmt == "mp3":
                sf.write(str(path), samples, rec.rate, format="MP3", bitrate_mode="CONSTANT")
                ctype = "audio/mpeg"
            elif fmt == "ogg":
                sf.write(str(path), samples, rec.rate, format="OGG", subtype="VORBIS")
                ctype = "audio/ogg"
            else:
                sf.write(str(path), samples, rec.rate, format="WAV", subtype="PCM_16")
                ctype = "audio/wav"
        except Exception:  # an encoder missing from this libsndfile: WAV always works
            log.exception("could not encode %s; writing WAV", fmt)
            path = folder / f"{file_id}.wav"
            sf.write(str(path), samples, rec.rate, format="WAV", subtype="PCM_16")
            ctype = "audio/wav"
        rec.path = path
        rec.file_id = file_id
        with self.lock:
            self.files[file_id] = (path, ctype)
        if rec.on_done is not None:
            try:
                rec.on_done(rec)
            except Exception:
                log.exception("recording callback failed")

    def _record_event(self, leg: SandboxCall, rec: Recorder, url: str | None, method: str | None,
                      *, conversation_uuid: str | None = None) -> None:
        path = rec.path
        assert path is not None
        payload = {
            "start_time": iso(rec.started_at),
            "recording_url": f"{self.base_url}/v1/files/{rec.file_id}",
            "size": path.stat().st_size,
            "recording_uuid": rec.recording_uuid,
            "end_time": iso(rec.ended_at),
            "conversation_uuid": conversation_uuid or leg.conversation.uuid,
            "timestamp": iso(utcnow()),
        }
        self.post(leg, payload, url=url, method=method)

    # ------------------------------------------------------------------ the audio tick (clock thread)

    def tick(self, tick: int) -> None:
        """Mix one 20 ms frame for every answered leg in every conversation."""
        finished: list[tuple[SandboxCall, Recorder]] = []
        with self.lock:
            for conv in list(self.conversations.values()):
                legs = [leg for leg in conv.legs if leg.status == "answered" and not leg.ended]
                if not legs:
                    continue
                self._mix(conv, legs, tick, finished)
            for leg, rec in finished:
                if rec in leg.recorders:
                    leg.recorders.remove(rec)
                self._finish_recorder(rec)

    def _mix(self, conv: Conversation, legs: list[SandboxCall], tick: int,
             finished: list[tuple[SandboxCall, Recorder]]) -> None:
        count = len(legs)
        own: list[np.ndarray | None] = [None] * count
        speech: list[np.ndarray | None] = [None] * count
        factors = [factor(leg.rate) for leg in legs]
        restricted = False
        for i, leg in enumerate(legs):
            endpoint = leg.endpoint
            s = endpoint.pull48() if endpoint is not None else None
            own[i] = s
            if s is not None and conv.started and not leg.muted and not leg.part.mute:
                speech[i] = s
            if leg.part.can_speak is not None or leg.part.can_hear is not None:
                restricted = True
        hears = [conv.started and not leg.earmuffed for leg in legs]
        allowed = None
        if restricted:
            allowed = [
                [
                    (a.part.can_speak is None or b.uuid in a.part.can_speak)
                    and (b.part.can_hear is None or a.uuid in b.part.can_hear)
                    for b in legs
                ]
                for a in legs
            ]
        mixes = mix_others(speech, factors, hears, allowed)
        pending: dict[int, list[tuple[Any, np.ndarray]]] = {}  # frame length -> (endpoint, float frame)
        for i, leg in enumerate(legs):
            n = frame_len(leg.rate)
            out = mixes[i]
            done_slots = None
            for slot, player in leg.players.items():
                chunk = player.read(n)
                if chunk is not None and not leg.earmuffed:
                    out = chunk.copy() if out is None else out + chunk
                if player.done:
                    done_slots = (done_slots or []) + [slot]
            moh = leg.part.moh
            if moh is not None and not conv.started:
                chunk = moh.read(n)
                if chunk is not None and not leg.earmuffed:
                    out = chunk.copy() if out is None else out + chunk
            if done_slots:
                for slot in done_slots:
                    leg.players.pop(slot, None)
                leg.cond.notify_all()
            if leg.endpoint is not None:
                if out is None:
                    leg.endpoint.deliver(None, n)
                else:
                    pending.setdefault(n, []).append((leg.endpoint, out))
            if leg.recorders:
                mine = own[i]
                heard_and_said = out
                if mine is not None:
                    said = mine[:: factors[i]]
                    heard_and_said = said.copy() if heard_and_said is None else heard_and_said + said
                for rec in leg.recorders:
                    if rec.feed(heard_and_said, n, tick):
                        finished.append((leg, rec))
        # one float -> int16 conversion per frame size for the whole conversation (it was the hot spot)
        for n, items in pending.items():
            frames = to_int16(np.stack([frame for _, frame in items]))
            for row, (endpoint, _frame) in enumerate(items):
                endpoint.deliver(frames[row], n)
        if conv.recorder is not None:
            active = [s for s in speech if s is not None]
            total = None
            if active:
                total = np.add.reduce(active)[:: BUS_RATE // conv.recorder.rate]
            conv.recorder.feed(total, conv.recorder.rate // 50, tick)

    # ------------------------------------------------------------------ shutdown

    def end_all(self, *, events: bool = True) -> None:
        """Hang up every live leg (the sandbox is stopping); `events` posts their final status."""
        with self.lock:
            legs = [leg for leg in self.legs.values() if not leg.ended]
        for leg in legs:
            self.end_leg(leg, "completed", event=events)
