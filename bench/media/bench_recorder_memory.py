"""Does recording a one-hour call keep memory flat, and how fast can WavRecorder write?

    .venv/bin/python bench/media/bench_recorder_memory.py [--minutes 60] [--rate 16000]

Writes ``minutes * 3000`` 20 ms frames as fast as possible through WavRecorder (``append_frame``, the
server's path: the header's sizes patched after every frame) into a temp file, reading RSS from
/proc/self/status. The baseline, same frames, same run: what a bare server does, one unbuffered
``write()`` per frame to a raw file with no header (not crash-safe as a WAV).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from labkit.media.frames import frame_samples  # noqa: E402
from labkit.media.recorder import WavRecorder  # noqa: E402


def status_kb(field: str) -> int:
    """A field of /proc/self/status in kB (Linux only; no psutil needed)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=16000, choices=(8000, 16000, 24000))
    args = parser.parse_args(argv)

    n_frames = int(args.minutes * 60 * 50)
    n = frame_samples(args.rate)
    rng = np.random.default_rng(0)
    pool = [rng.integers(-3000, 3000, n, dtype=np.int16).tobytes() for _ in range(50)]  # like socket messages
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "call.wav"
        rss0, hwm0 = status_kb("VmRSS"), status_kb("VmHWM")
        t0 = time.perf_counter()
        rss_mid = 0
        with WavRecorder(path, args.rate) as rec:
            for i in range(n_frames):
                rec.append_frame(pool[i % 50])
                if i == n_frames // 2:
                    rss_mid = status_kb("VmRSS")
                    with wave.open(str(path)) as w:  # readable while still recording
                        assert w.getnframes() == (i + 1) * n
        elapsed = time.perf_counter() - t0
        rss1, hwm1 = status_kb("VmRSS"), status_kb("VmHWM")
        with wave.open(str(path)) as w:
            samples = w.getnframes()
        size_mb = path.stat().st_size / 1e6

        plain_path = Path(tmp) / "plain.pcm"
        t0 = time.perf_counter()
        with open(plain_path, "wb", buffering=0) as f:
            for i in range(n_frames):
                f.write(pool[i % 50])  # what the bare websockets server does per frame
        plain = time.perf_counter() - t0

    audio_s = n_frames * 0.02
    assert samples == n_frames * n, (samples, n_frames * n)
    print(
        f"recorder: {n_frames} frames ({audio_s / 60:g} min at {args.rate} Hz) in {elapsed:.2f} s = "
        f"{audio_s / elapsed:.0f}x realtime, {elapsed / n_frames * 1000:.4f} ms/frame; "
        f"RSS {rss0 / 1024:.1f} -> {rss_mid / 1024:.1f} (half) -> {rss1 / 1024:.1f} MB "
        f"(growth {(rss1 - rss0) / 1024:+.1f} MB, peak growth {(hwm1 - hwm0) / 1024:+.1f} MB); "
        f"file {size_mb:.1f} MB, wave reads {samples} samples"
    )
    print(
        f"baseline: a bare server's unbuffered write() per frame, no header {plain:.2f} s "
        f"({plain / n_frames * 1000:.4f} ms/frame); crash-safe WAV / bare = {elapsed / plain:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
