"""LiveVoice.restart: when a page's microphone changes its way into the kernel (its direct socket opened or
closed), the cushion is sized from the new way's arrivals alone, and the delay figures are of it alone."""

from __future__ import annotations

import time

import numpy as np

from labkit.media.jitter import LiveVoice


def test_restart_forgets_the_old_ways_jitter_and_figures():
    queued: list[np.ndarray] = []
    voice = LiveVoice(lambda samples, rate: queued.append(samples), lambda: 0.0)
    piece = np.ones(320, dtype=np.int16)
    now = time.monotonic() - 0.4  # the push below arrives on this timeline, 20 ms after the last piece
    for i in range(20):  # 20 ms pieces, every fourth 60 ms late: the old way's jitter
        voice.jitter.arrive(0.02, now + i * 0.02 + (0.06 if i % 4 == 0 else 0.0))
    voice.push(piece, 16000, sent_ms=None)
    assert voice.cushion() > 0.05 and voice.figures()["mic_delay_ms"] is not None
    voice.restart()
    assert voice.cushion() == 0.0  # nothing measured on the new way yet
    assert voice.figures()["mic_delay_ms"] is None and voice.figures()["mic_delay_parts"] == ""
    assert voice.frames == 1  # the count of frames put into the call goes on


class TickingCall:
    """A call's view of a live voice, as the sandbox's clock has it: every 20 ms a tick takes one frame
    of what was said, padding with silence (and counting a short tick) when less is waiting."""

    def __init__(self) -> None:
        self.waiting = np.zeros(0, dtype=np.int16)
        self.heard: list[np.ndarray] = []
        self.short = 0

    def say(self, samples: np.ndarray, rate: int) -> None:
        self.waiting = np.concatenate([self.waiting, samples])

    def tick(self) -> None:
        frame, self.waiting = self.waiting[:320], self.waiting[320:]
        self.short += frame.size < 320
        self.heard.append(np.concatenate([frame, np.zeros(320 - frame.size, dtype=np.int16)]))


def speak(monkeypatch, lateness_ms: list[float], tick_phase_ms: float) -> tuple[LiveVoice, np.ndarray, np.ndarray]:
    """Pieces i = 0.. sent at i x 20 ms and arriving `lateness_ms[i]` later, into a call whose ticks come
    `tick_phase_ms` after each 20 ms mark; returns the voice, what was said and what the call played."""
    from labkit.media import jitter

    now = [100.0]
    monkeypatch.setattr(jitter, "time", type("Clock", (), {"monotonic": staticmethod(lambda: now[0]),
                                                           "time": staticmethod(lambda: now[0])}))
    call = TickingCall()
    voice = LiveVoice(call.say, lambda: call.waiting.size / 16000, short_ticks=lambda: call.short)
    rng = np.random.default_rng(5)
    said = rng.integers(1, 20000, 320 * len(lateness_ms)).astype(np.int16)  # no zeros: a gap shows
    events = [(i * 20 + late, "piece", i) for i, late in enumerate(lateness_ms)]
    events += [(i * 20 + tick_phase_ms, "tick", i) for i in range(len(lateness_ms) + 20)]
    for at, kind, i in sorted(events):
        now[0] = 100.0 + at / 1000
        if kind == "tick":
            call.tick()
        else:
            voice.push(said[i * 320:(i + 1) * 320], 16000)
    return voice, said, np.concatenate(call.heard)


def test_pieces_on_time_reach_the_call_whole_though_each_finds_the_queue_empty(monkeypatch):
    """Each tick takes the piece that came just before it, so every piece finds nothing waiting: the call
    never ran dry, and no silence may go into the voice (it did: 3-5 zeros a piece, heard as clicks)."""
    lateness = [0.0, 0.3, 0.1, 0.4, 0.2] * 10  # a fraction of a millisecond: a cushion would be a few samples
    voice, said, heard = speak(monkeypatch, lateness, tick_phase_ms=2.0)
    assert voice.cushions == 0 and voice.dropped == 0
    assert np.array_equal(heard[heard != 0], said)  # every sample, in order, with nothing between
    start = np.flatnonzero(heard)[0]
    assert np.array_equal(heard[start:start + said.size], said)


def test_a_late_piece_that_left_the_call_dry_gets_a_cushion_and_the_next_ones_ride_it(monkeypatch):
    """Every fifth piece comes 15 ms late, after its tick: the first such tick is short, and that piece goes
    in behind a cushion of the measured jitter; the late pieces after it find the call no longer runs dry."""
    lateness = [15.0 if i % 5 == 4 else 0.0 for i in range(60)]
    voice, said, heard = speak(monkeypatch, lateness, tick_phase_ms=5.0)
    assert voice.cushions == 1 and voice.dropped == 0 and round(voice.cushion(), 6) == 0.015
    assert np.array_equal(heard[heard != 0], said)  # the voice whole and in order, one gap where it ran dry
    start, end = np.flatnonzero(heard)[[0, -1]]
    zero_runs = np.flatnonzero(np.diff((heard[start:end] == 0).astype(np.int8)) == 1)
    assert zero_runs.size == 1 and zero_runs[0] + 1 == 4 * 320  # the tick that piece 4 missed
