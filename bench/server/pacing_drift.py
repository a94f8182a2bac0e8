#!/usr/bin/env python
"""Pacing drift, run as its own process (so CPU-bound neighbours compete with it as with a server):
the lab's PacedSender against a plain asyncio deadline loop, side by side on one uvloop event loop.

* **lab**: ``PacedSender`` (its own thread, as in a call) handing each frame to the loop with
  ``call_soon_threadsafe``, the way a session's send crosses into uvicorn's loop.
* **lab, old rule**: the same sender with ``resync_after_frames=3``: a stall over 60 ms starts a new
  schedule instead of catching up (what the pacer did before issue 20).
* **asyncio deadline loop** (the baseline): a coroutine on the same loop, frame k at ``t0 + k * 20 ms``
  with ``asyncio.sleep`` until then; late frames go out at once (unbounded catch-up).

Drift = (last send - first send) - (frames - 1) * 20 ms: how far the stream ends from where a perfect
20 ms clock would have put it. Prints one JSON line.

    .venv/bin/python bench/server/pacing_drift.py [--seconds 120]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

PERIOD = 0.02


def figures(times: np.ndarray) -> dict[str, float]:
    gaps = np.diff(times) * 1000
    jitter = np.abs(gaps - PERIOD * 1000)
    return {"frames": int(times.size), "drift_ms": float(((times[-1] - times[0]) - PERIOD * (times.size - 1)) * 1000),
            "jitter_p99_ms": float(np.percentile(jitter, 99)), "max_gap_ms": float(gaps.max()),
            "stalls": int((gaps > 2 * PERIOD * 1000).sum())}


async def deadline_loop(frames: int, out: list[float]) -> None:
    monotonic = time.monotonic
    t0 = monotonic()
    for k in range(frames):
        delay = t0 + k * PERIOD - monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        out.append(monotonic())


def main(argv: list[str] | None = None) -> int:
    import uvloop

    from labkit.media.audio import silence
    from labkit.media.pacer import PacedSender

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=120.0)
    args = ap.parse_args(argv)
    frames = int(args.seconds * 50)
    loop = uvloop.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="bench-loop", daemon=True)
    thread.start()

    def noop() -> None:
        pass

    def send(frame: bytes) -> None:
        loop.call_soon_threadsafe(noop)

    baseline: list[float] = []
    base_done = asyncio.run_coroutine_threadsafe(deadline_loop(frames, baseline), loop)
    lab = PacedSender(send, 16000)
    old = PacedSender(send, 16000, resync_after_frames=3)
    handles = [p.play(silence(args.seconds, 16000)) for p in (lab, old)]
    for h in handles:
        h.wait(args.seconds * 3 + 30)
    base_done.result(args.seconds * 3 + 30)
    result = {}
    for name, pacer in (("lab", lab), ("lab_old_rule", old)):
        st = pacer.stats
        result[name] = {**figures(st.send_times), "resyncs": st.resyncs, "stalls": st.stalls,
                        "worst_late_ms": st.worst_late_ms, "schedule_drift_ms": st.schedule_drift_ms}
        pacer.close()
    result["asyncio"] = figures(np.array(baseline))
    loop.call_soon_threadsafe(loop.stop)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
