"""The platform's audio: players on legs, key presses and speech from phones, and the 20 ms mix.

Mixed into `Platform`. `tick` runs on the clock thread under the platform's lock, once per 20 ms.
UNCONFIRMED: whether audio played into a leg (NCCO talk/stream, REST talk/stream/dtmf) is also heard by the
other parties of its conversation (a connected WebSocket, say). The sandbox plays it to that leg only, on
top of what the leg hears from the others ("mixed on top", never pausing an NCCO stream).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from labkit.sandbox.audio.mixer import BUS_RATE, Player, factor, frame_len, mix_others, to_int16
from labkit.sandbox.engine.clock import FRAME_SECONDS

if TYPE_CHECKING:  # pragma: no cover
    from labkit.sandbox.engine.conversations import Conversation
    from labkit.sandbox.engine.legs import SandboxCall
    from labkit.sandbox.engine.recordings import Recorder


class PlatformAudio:
    """Platform methods for what legs hear and say."""

    def play(self, leg: SandboxCall, slot: str, samples: np.ndarray, *, loop: int = 1, gain: float = 1.0,
             what: dict | None = None) -> Player:
        """Start playing `samples` (at the leg's rate) to `leg` in `slot`, replacing what played there.

        `what` ({"kind": "talk", "text": ...} or {"kind": "stream", "url": ...}) is noted in `leg.played`
        with its start (call seconds after answer) and length, so tests can ask what the caller was told.
        """
        player = Player(samples, loop=loop, gain=gain, label=slot)
        with self.lock:
            if what is not None and not leg.ended:
                start = 0 if leg.answered_tick is None else self.clock.ticks - leg.answered_tick
                seconds = None if loop == 0 else round(len(samples) * max(1, loop) / leg.rate, 3)
                leg.played.append({**what, "slot": slot, "at": round(start * FRAME_SECONDS, 3), "seconds": seconds})
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
            async_input = leg.async_input
            listener = leg.dtmf_listener
            leg.cond.notify_all()
        for endpoint in ws_targets:
            endpoint.send_dtmf(digit, duration_ms)
        if async_input is not None:
            # input mode asynchronous: one event per key, to the PUT .../input/dtmf URL if any (ncco_capture)
            payload = {"dtmf": {"digits": digit, "timed_out": False}, **self.event(leg, "input")}
            payload.pop("status", None)
            payload.pop("direction", None)
            url, method = (listener, "POST") if listener else async_input
            self.post(leg, payload, url=url, method=method)


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
                said = mine[:: factors[i]] if mine is not None else None
                for rec in leg.recorders:
                    if rec.feed_split(said, out, n, tick):
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
