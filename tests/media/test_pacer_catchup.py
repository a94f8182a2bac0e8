"""The paced sender after a stall: it catches up on its original schedule in bounded bursts, so it never
drifts; a stall too long to catch up starts a new schedule. All on an injected clock: no timing asserts."""

from __future__ import annotations

import random

import numpy as np
import pytest

from labkit.media.audio import silence
from labkit.media.pacer import PacedSender

PERIOD = 0.02


class Clock:
    """Simulated time: sleep() advances it (plus an overshoot, like a busy machine's late wake-ups); a send
    takes `send_cost`, and the sends listed in `stalls` (by number, from 1) take that long instead."""

    def __init__(self, send_cost: float = 0.0001, stalls: dict[int, float] | None = None,
                 overshoot=lambda: 0.0) -> None:
        self.now = 500.0
        self.sent: list[float] = []
        self.send_cost = send_cost
        self.stalls = stalls or {}
        self.overshoot = overshoot

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds + self.overshoot()

    def send(self, frame: bytes) -> None:
        self.sent.append(self.now)
        self.now += self.stalls.get(len(self.sent), self.send_cost)


def run(clock: Clock, frames: int, **kw) -> tuple[np.ndarray, PacedSender]:
    pacer = PacedSender(clock.send, 16000, clock=clock.clock, sleep=clock.sleep, lead_ms=0, prebuffer_frames=0, **kw)
    assert pacer.play(silence(frames * PERIOD, 16000)).wait(30)
    pacer.close()
    return np.array(clock.sent), pacer


def test_a_stall_is_caught_up_on_the_original_schedule_in_bounded_bursts() -> None:
    clock = Clock(stalls={10: 0.2})  # the 10th send blocks for 200 ms: 10 frames behind
    sent, pacer = run(clock, 60)
    t0 = sent[0]
    schedule = t0 + np.arange(60) * PERIOD
    assert (sent >= schedule - 1e-9).all()  # never sent before its instant
    gaps = np.diff(sent)
    assert gaps[9] == pytest.approx(0.2)  # the stall itself
    burst = gaps[10:]
    assert (burst >= PERIOD / 5 - 1e-9).all()  # bounded: at most 5 frames per 20 ms while catching up
    on_time = np.isclose(sent, schedule, rtol=0, atol=1e-9)
    back = next(k for k in range(11, 60) if on_time[k:].all())  # then exactly on the original schedule
    assert back == 22  # 180 ms behind, gaining 16 ms a frame: 11 frames of catch-up
    assert np.allclose(gaps[10:back - 1], PERIOD / 5, atol=1e-9)  # the catch-up: one frame per 4 ms
    stats = pacer.stats
    assert stats.resyncs == 0 and stats.stalls == 1 and stats.caught_up > 0
    assert stats.worst_late_ms == pytest.approx(200 - 20, abs=1.0)  # the 11th frame went 180 ms late
    assert stats.schedule_drift_ms == pytest.approx(0.0, abs=1e-6) and stats.drift_ms == pytest.approx(0, abs=1e-6)
    assert "stalls=1" in stats.summary()


def test_a_stall_longer_than_the_catch_up_limit_starts_a_new_schedule() -> None:
    assert PacedSender.__init__.__kwdefaults__["resync_after_frames"] == 250  # 5 s by default
    clock = Clock(stalls={10: 0.5})
    sent, pacer = run(clock, 40, resync_after_frames=15)  # 300 ms at most is caught up
    gaps = np.diff(sent)
    assert pacer.stats.resyncs == 1 and gaps[9] == pytest.approx(0.5)
    assert np.allclose(np.delete(gaps, 9), PERIOD, atol=1e-9)  # no burst: a fresh schedule from the stall's end


def test_burst_size_is_the_callers_to_choose() -> None:
    clock = Clock(stalls={5: 0.1})
    sent, pacer = run(clock, 30, burst_frames=2)  # at most 2 frames per period: 10 ms apart
    gaps = np.diff(sent)
    assert gaps[5:].min() == pytest.approx(0.01) and pacer.stats.resyncs == 0
    assert sent[-1] - sent[0] == pytest.approx(29 * PERIOD)  # still back on the schedule by the end


def test_no_drift_over_two_minutes_on_a_busy_machine() -> None:
    """6000 frames (120 s) with late wake-ups (0-8 ms, like two CPU-bound processes beside it) and a
    30-400 ms stall about every 4 s: the last frame goes out on its original instant, within one frame."""
    rng = random.Random(20)
    stalls = {n: rng.uniform(0.03, 0.4) for n in range(100, 6000, 200)}
    clock = Clock(stalls=stalls, overshoot=lambda: rng.uniform(0, 0.008))
    sent, pacer = run(clock, 6000)
    stats = pacer.stats
    assert stats.frames_sent == 6000 and stats.resyncs == 0 and stats.stalls >= len(stalls) // 2
    assert abs((sent[-1] - sent[0]) - 5999 * PERIOD) < PERIOD  # drift within one frame
    assert abs(stats.drift_ms) < 20 and abs(stats.schedule_drift_ms) < 20
