"""How long does Recording.plot() take on a one-hour call, against naive matplotlib plotting?

    .venv/bin/python bench/media/bench_plot.py [--minutes 60]

Times building the figure and rendering it to PNG (matplotlib draws lazily, so rendering is where
naive plots spend their time). The baseline plots every sample of a 1-minute chunk with
``ax.plot`` (plus ``specgram``), as a first notebook attempt would, and renders it the same way.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from labkit.media.audio import load  # noqa: E402
from labkit.media.recording import Recording  # noqa: E402


def render(fig) -> float:
    t0 = time.perf_counter()
    fig.savefig(io.BytesIO(), format="png", dpi=72)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    args = parser.parse_args(argv)
    rate = 16000

    music = load(REPO / "audio" / "music.wav", rate)
    n = int(args.minutes * 60 * rate)
    rng = np.random.default_rng(0)
    samples = np.resize(music, n)
    samples[n // 3 : n // 3 + 60 * rate] = rng.normal(0, 2000, 60 * rate).astype(np.int16)  # some noise
    rec = Recording(samples, rate, label="one-hour call")

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()  # warm up matplotlib (font cache, first-figure costs)
    render(fig)
    plt.close(fig)

    t0 = time.perf_counter()
    fig = rec.plot()
    build = time.perf_counter() - t0
    draw = render(fig)

    chunk = samples[: 60 * rate]
    t0 = time.perf_counter()
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 4.2))
    ax1.plot(np.arange(chunk.size) / rate, chunk)
    ax2.specgram(chunk, NFFT=512, Fs=rate, noverlap=256)
    naive_build = time.perf_counter() - t0
    naive_draw = render(fig)
    plt.close(fig)
    naive = naive_build + naive_draw

    total = build + draw
    print(
        f"plot: Recording.plot() of {args.minutes:g} min at {rate} Hz ({n / 1e6:.1f} M samples): "
        f"{total:.2f} s (build {build:.2f} s + render {draw:.2f} s)"
    )
    print(
        f"naive: ax.plot + specgram of 1 min ({chunk.size / 1e6:.2f} M samples): {naive:.2f} s "
        f"(build {naive_build:.2f} s + render {naive_draw:.2f} s), ~{naive * args.minutes:.0f} s "
        f"for {args.minutes:g} min by extrapolation: {naive * args.minutes / total:.0f}x slower"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
