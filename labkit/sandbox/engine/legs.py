"""Call legs: what `GET /v1/calls/{uuid}` describes, and the states a leg's runner waits on.

Vocabulary, as on the real platform: a *call* in the REST API is one **leg** (`SandboxCall`): a phone, a
WebSocket, ... with its own uuid and status (started -> ringing -> answered -> completed, or
busy/rejected/unanswered/timeout/failed/cancelled). Every leg is in exactly one conversation
(conversations.py); the platform (platform.py) holds them all.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid as uuidlib
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from labkit.sandbox.audio.mixer import Player
from labkit.sandbox.engine.clock import FRAME_SECONDS, TimerHandle
from labkit.sandbox.engine.conversations import Conversation, Participation
from labkit.sandbox.wire.webhooks import OrderedSender

if TYPE_CHECKING:  # pragma: no cover
    from labkit.sandbox.engine.phones import VirtualPhone
    from labkit.sandbox.engine.platform import Platform
    from labkit.sandbox.engine.recordings import Recorder

LIVE_STATUSES = frozenset({"started", "ringing", "answered"})
FINAL_STATUSES = frozenset({"completed", "busy", "cancelled", "failed", "rejected", "timeout", "unanswered"})
# What a finished call reports (strings, only once completed). rate is per minute, price per second of it,
# as in the captured fixture (rate 0.1, 2 s -> price 0.00333333).
CALL_RATE = "0.10000000"
CALL_NETWORK = "23420"


def iso(when: dt.datetime | None) -> str | None:
    """'2024-04-19T01:34:18.123Z': ISO-8601 with milliseconds and Z, as the captured API responses."""
    if when is None:
        return None
    when = when.astimezone(dt.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class LegEnded(Exception):
    """The leg ended (hung up, timer, sandbox stopped) while its runner was waiting."""


class Transferred(Exception):
    """A REST transfer replaced the leg's NCCO: the runner drops the current one and runs `ncco`."""

    def __init__(self, ncco: list | None, url: str | None = None):
        super().__init__("transferred")
        self.ncco = ncco
        self.url = url


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
        self.script: list | None = None  # the NCCO running now (validated) and the index of its current action
        self.step: int | None = None
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
        self.application_id: str | None = parent.application_id if parent is not None else None
        self.children: list[SandboxCall] = []
        self.events: list[dict] = []
        self.errors: list[str] = []
        # what the platform played to this leg (talk texts, stream URLs) and when, in call seconds after
        # answer: tests check what a caller heard against what the sandbox knows it said
        self.played: list[dict] = []
        self.ended_by: str | None = None  # who ended it: phone, app, ncco or platform
        self.cond = threading.Condition(platform.lock)
        self.ended = False
        self.finished = False  # runner thread done (after `ended`, once its last webhook reply is in)
        self.transfer: Transferred | None = None
        self.phone_decision: str | None = None  # 'answer' / 'reject' from a manual phone
        self.barge: bool = False
        self.barge_digits: list[str] = []
        self.region_url: str | None = None  # sent in its answer webhook (engine/regions.py)
        self.control_hosts: dict[str, int] = {}  # Voice API requests about it, by the host they were sent to
        self.input: InputState | None = None
        self.async_input: tuple[str | None, str | None] | None = None  # (eventUrl, method) of input mode async
        self.dtmf_listener: str | None = None  # PUT /v1/calls/{uuid}/input/dtmf event_url
        self.timers: list[TimerHandle] = []
        self.reply_ncco: list | None = None  # NCCO a child leg's instruction event returned (for the parent)
        self.disconnect_future: Future | None = None
        self.rest_seq: dict[str, int] = {}
        self.machine_detection: dict | None = None  # what POST /v1/calls asked for (machine.py)
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
        self.platform.end_leg(self, "completed", by="phone")

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
