"""How evenly does PacedSender send 20 ms frames, compared with a naive ``sleep(0.02)`` loop?

    .venv/bin/python bench/media/bench_pacing.py [--seconds 60] [--rate 16000] [--plot timing.png]

Both senders run side by side for the same wall-clock time into a no-op ``send``. Jitter is
``|gap - 20 ms|`` between consecutive sends; drift is how far the last frame is from where a
perfect 20 ms clock would have put it (positive = late, i.e. the far end runs out of audio).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from labkit.media.audio import tone  # noqa: E402
from labkit.media.frames import frame_bytes  # noqa: E402
from labkit.media.pacer import PacedSender, PacingStats  # noqa: E402


def naive_loop(seconds: float, rate: int, out: list[float]) -> None:
    """What most first attempts look like: send, then sleep one frame period."""
    data = tone(440, seconds, rate).tobytes()
    size = frame_bytes(rate)

    def send(frame: bytes) -> None:
        pass

    for i in range(int(seconds * 50)):
        out.append(time.monotonic())
        send(data[i * size : (i + 1) * size])
        time.sleep(0.02)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="real time to run (default 60)")
    parser.add_argument("--rate", type=int, default=16000, choices=(8000, 16000, 24000))
    parser.add_argument("--plot", type=Path, help="save a frame-timing plot of the paced run here")
    args = parser.parse_args(argv)

    naive_times: list[float] = []
    baseline = threading.Thread(target=naive_loop, args=(args.seconds, args.rate, naive_times), daemon=True)
    with PacedSender(lambda frame: None, args.rate, prebuffer_frames=0) as pacer:  # pacing alone, no burst
        handle = pacer.play(tone(440, args.seconds, args.rate))
        baseline.start()
        handle.wait()
        stats = pacer.stats
    baseline.join()
    naive = PacingStats(np.array(naive_times), len(naive_times), 0, 0)

    ratio = abs(naive.drift_ms) / max(abs(stats.drift_ms), 0.01)
    print(
        f"pacing: jitter p50={stats.jitter_ms(50):.3f} ms p99={stats.jitter_ms(99):.3f} ms "
        f"drift={stats.drift_ms:+.2f} ms over {args.seconds:g} s at {args.rate} Hz "
        f"({stats.frames_sent} frames, {stats.resyncs} resyncs) "
        f"(naive sleep loop drift={naive.drift_ms:+.0f} ms, {ratio:.0f}x)"
    )
    print(
        f"naive:  jitter p50={naive.jitter_ms(50):.3f} ms p99={naive.jitter_ms(99):.3f} ms "
        f"drift={naive.drift_ms:+.1f} ms ({naive.frames_sent} frames)"
    )
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        from labkit.media.plots import frame_timing_plot

        frame_timing_plot(stats.send_times).savefig(args.plot, dpi=90)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
