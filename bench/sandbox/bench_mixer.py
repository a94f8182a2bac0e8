"""How many call legs the sandbox's audio clock can mix in real time on one core.

Runs the real mixing tick (`Platform.tick`: every phone's speech onto the 48 kHz bus, each listener's
mix minus itself, decimation to 16 kHz, delivery into what each phone heard) for a conference where
every party talks all the time (the worst case), timing it with process CPU time. Real time is 50 ticks
per second (20 ms each). Baseline, measured in the same run: a naive mixer that adds every other
party's frame for each listener, pair by pair (O(N^2)), with the same conversion and delivery.

    python bench/sandbox/bench_mixer.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from labkit.sandbox import Sandbox  # noqa: E402
from labkit.sandbox.audio.mixer import factor, mix_naive, to_int16  # noqa: E402
from labkit.sandbox.engine.legs import SandboxCall  # noqa: E402

REAL_TIME_TICKS = 50  # 20 ms ticks per second of audio
PARTIES = 50


def conference(sb: Sandbox, parties: int, seconds: float) -> list[SandboxCall]:
    """`parties` answered phone legs in one started conversation, each with `seconds` of speech queued."""
    p = sb.platform
    conv = p.named_conversation(f"bench-{parties}")
    rng = np.random.default_rng(parties)
    legs = []
    for i in range(parties):
        phone = p.phone(f"4470{parties:04d}{i:05d}")
        leg = SandboxCall(p, direction="inbound", to={"type": "phone", "number": p.number},
                          from_={"type": "phone", "number": phone.number}, kind="phone", rate=16000,
                          event_url=None)
        leg.phone = phone
        leg.endpoint = phone
        p.add_leg(leg)
        p.move_leg(leg, conv)
        leg.status = "answered"
        phone._answered(leg)
        phone.say((rng.integers(-3000, 3000, int(seconds * 16000)).astype(np.int16), 16000))
        legs.append(leg)
    return legs


def time_ticks(fn, ticks: int) -> float:
    """Ticks per CPU second for `fn(tick)`."""
    start = time.process_time()
    for k in range(ticks):
        fn(k)
    used = time.process_time() - start
    return ticks / used if used > 0 else float("inf")


def sandbox_rate(sb: Sandbox, parties: int, ticks: int) -> float:
    conference(sb, parties, ticks / REAL_TIME_TICKS + 1)
    rate = time_ticks(sb.platform.tick, ticks)
    for phone in list(sb.platform.phones.values()):
        phone.clear_heard()
    sb.platform.end_all()
    return rate


def naive_rate(parties: int, ticks: int) -> float:
    """The same work with a per-pair mixer: pull speech, mix pair by pair, decimate, deliver."""
    rng = np.random.default_rng(parties)
    speech_src = [rng.integers(-3000, 3000, 960 * (ticks + 1)).astype(np.float32) for _ in range(parties)]
    factors = [factor(16000)] * parties
    heard: list[list[np.ndarray]] = [[] for _ in range(parties)]

    def tick(k: int) -> None:
        speech = [s[k * 960:(k + 1) * 960] for s in speech_src]
        for j, mix in enumerate(mix_naive(speech, factors)):
            heard[j].append(to_int16(mix))

    return time_ticks(tick, ticks)


def capacity(measure, start: int, ticks: int, limit: int = 3200) -> tuple[int, float]:
    """The largest party count (doubling) that still mixes at least 50 ticks per CPU second."""
    best, best_rate = 0, 0.0
    n = start
    while n <= limit:
        rate = measure(n, max(20, ticks // max(1, n // start)))
        if rate < REAL_TIME_TICKS:
            break
        best, best_rate = n, rate
        n *= 2
    return best, best_rate


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        sb = Sandbox(home=home)  # not started: the bench drives the mixing tick itself, on this thread
        ticks = 500  # 10 s of audio
        sandbox_rate(sb, PARTIES, 50)  # warm-up
        ours = sandbox_rate(sb, PARTIES, ticks)
        naive = naive_rate(PARTIES, 100)
        print(f"{PARTIES}-party conference, everyone talking, one core:")
        print(f"  sandbox mixer : {ours:8.0f} ticks per CPU second = {ours / REAL_TIME_TICKS:6.1f}x real time "
              f"({1000 / ours:.2f} ms per 20 ms tick)")
        print(f"  naive per-pair: {naive:8.0f} ticks per CPU second = {naive / REAL_TIME_TICKS:6.1f}x real time "
              f"({1000 / naive:.2f} ms per 20 ms tick)")
        print(f"  speed-up      : {ours / naive:8.1f}x")
        print(f"  legs mixed in real time per core at {PARTIES} parties (linear estimate): "
              f"{PARTIES * ours / REAL_TIME_TICKS:.0f} (sandbox) vs {PARTIES * naive / REAL_TIME_TICKS:.0f} (naive)")
        n_ours, r_ours = capacity(lambda n, t: sandbox_rate(sb, n, t), 50, 200)
        n_naive, r_naive = capacity(naive_rate, 50, 60)
        print("  largest single conference still mixed in real time on one core (doubling search):")
        print(f"    sandbox: {n_ours} parties ({r_ours:.0f} ticks/s)   "
              f"naive: {n_naive} parties ({r_naive:.0f} ticks/s)")


if __name__ == "__main__":
    main()
