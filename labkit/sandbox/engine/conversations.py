"""Conversations (the audio rooms legs talk in) and how legs move between them.

A call starts alone in its own conversation; `connect` brings another leg into it; the `conversation`
action moves it to a named, application-wide one. `ConversationMoves` is the platform's part that does
the moving (mixed into `Platform`; every method runs under the platform's lock).
"""

from __future__ import annotations

import uuid as uuidlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from labkit.sandbox.audio.mixer import Player
    from labkit.sandbox.engine.legs import SandboxCall
    from labkit.sandbox.engine.recordings import Recorder


def conversation_id() -> str:
    return f"CON-{uuidlib.uuid4()}"


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


class ConversationMoves:
    """Platform methods that move legs between conversations and end empty ones."""

    def named_conversation(self, name: str) -> Conversation:
        with self.lock:
            conv = self.named.get(name)
            if conv is None or conv.ended:
                conv = Conversation(name=name)
                self.named[name] = conv
                self.conversations[conv.uuid] = conv
            return conv


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
