"""Plain signal checks on what a phone heard (16 kHz int16): loudness per span, DTMF tones, silent spans.

No speech recognition: what was said is known from the sandbox (`Call.played`); these only check the
audio was there. DTMF is found with the Goertzel power of the eight standard frequencies per 20 ms.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DTMF_KEYS", "dtmf_digits", "level_dbfs", "loud_spans", "rms"]

LOW = (697.0, 770.0, 852.0, 941.0)
HIGH = (1209.0, 1336.0, 1477.0, 1633.0)
DTMF_KEYS = ("123A", "456B", "789C", "*0#D")
FRAME_SECONDS = 0.02
SILENCE_DBFS = -50.0  # quieter than this over 20 ms counts as silence (the sandbox's silence is exact zeros)


def rms(samples: np.ndarray) -> float:
    """Root mean square in int16 units (0 for no samples)."""
    x = np.asarray(samples, dtype=np.float64)
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def level_dbfs(samples: np.ndarray) -> float:
    """Loudness in dB below full scale (-inf for digital silence), for messages a person can read."""
    value = rms(samples)
    return float("-inf") if value == 0 else 20 * np.log10(value / 32768.0)


def _frames(samples: np.ndarray, rate: int) -> np.ndarray:
    n = int(rate * FRAME_SECONDS)
    x = np.asarray(samples, dtype=np.float64)
    return x[: x.size // n * n].reshape(-1, n) if x.size >= n else np.zeros((0, n))


def loud_spans(samples: np.ndarray, rate: int, threshold_dbfs: float = SILENCE_DBFS) -> list[tuple[float, float]]:
    """(start, end) seconds of the stretches louder than `threshold_dbfs`, 20 ms at a time."""
    frames = _frames(samples, rate)
    if not frames.size:
        return []
    level = np.sqrt(np.mean(frames * frames, axis=1))
    loud = level > 32768.0 * 10 ** (threshold_dbfs / 20)
    spans: list[tuple[float, float]] = []
    start = None
    for i, flag in enumerate(np.append(loud, False)):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            spans.append((round(start * FRAME_SECONDS, 3), round(i * FRAME_SECONDS, 3)))
            start = None
    return spans


def _goertzel(frames: np.ndarray, freq: float, rate: int) -> np.ndarray:
    """Power of `freq` in each row of `frames` (the Goertzel recurrence, vectorised over frames)."""
    coeff = 2 * np.cos(2 * np.pi * freq / rate)
    s1 = np.zeros(frames.shape[0])
    s2 = np.zeros(frames.shape[0])
    for column in frames.T:
        s1, s2 = column + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def dtmf_digits(samples: np.ndarray, rate: int) -> str:
    """The DTMF keys audible in `samples`, in order (a key held over several frames counts once).

    A frame holds a key when one low and one high frequency each carry most of their group's power
    and together a good part of the frame's energy (speech and music rarely do both).
    """
    frames = _frames(samples, rate)
    if not frames.size:
        return ""
    energy = np.sum(frames * frames, axis=1) * frames.shape[1] / 2 + 1e-9
    low = np.stack([_goertzel(frames, f, rate) for f in LOW], axis=1)
    high = np.stack([_goertzel(frames, f, rate) for f in HIGH], axis=1)
    li, hi = np.argmax(low, axis=1), np.argmax(high, axis=1)
    rows = np.arange(frames.shape[0])
    lp, hp = low[rows, li], high[rows, hi]
    clean = (lp > 0.6 * low.sum(axis=1)) & (hp > 0.6 * high.sum(axis=1)) & ((lp + hp) > 0.3 * energy)
    loud = np.sqrt(np.mean(frames * frames, axis=1)) > 32768.0 * 10 ** (-40 / 20)
    keys = [DTMF_KEYS[li[i]][hi[i]] if clean[i] and loud[i] else "" for i in rows]
    out, previous, run = [], "", 0
    for key in keys + [""]:
        if key and key == previous:
            run += 1
            continue
        if previous and run >= 2:  # at least 40 ms of one key: a tone, not a passing coincidence
            out.append(previous)
        previous, run = key, 1
    return "".join(out)
