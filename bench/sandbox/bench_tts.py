"""What does real speech cost the sandbox's `talk`, against the babble it replaced?

    .venv/bin/python bench/sandbox/bench_tts.py [--sentences 30]

Times the speech worker's start (once per process, done in the background when a sandbox starts),
then synthesizing distinct prompts at 16 kHz with espeak-ng (worker process, a fork per utterance,
resampled) and with the babble, and prints seconds of speech made per second of work.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from labkit.sandbox.audio import tts  # noqa: E402
from labkit.sandbox.audio.sources import babble  # noqa: E402

PROMPT = "Thank you for calling. Press {n} for sales, or stay on the line to speak to someone."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=30)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    if not tts.warm_up():
        print("espeak-ng is not available here (no espeakng-loader wheel): the sandbox uses the babble")
        return 0
    start = time.perf_counter() - t0
    texts = [PROMPT.format(n=n) for n in range(args.sentences)]
    results = {}
    for name, make in (("espeak-ng", lambda t: tts.speak(t, 16000)), ("babble", lambda t: babble(t, 16000))):
        times, seconds = [], 0.0
        for text in texts:
            t1 = time.perf_counter()
            audio = make(text)
            times.append(time.perf_counter() - t1)
            seconds += audio.size / 16000
        results[name] = (np.percentile(times, 50) * 1000, np.percentile(times, 95) * 1000, seconds / sum(times))
    print(f"speech worker start (once per process, in the background): {start:.2f} s")
    for name, (p50, p95, speed) in results.items():
        print(f"{name:10s} per prompt p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  {speed:6.0f}x real time")
    ratio = results["espeak-ng"][0] / results["babble"][0]
    print(f"espeak-ng / babble (p50): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
