"""Audio mixing for the sandbox: a 48 kHz bus, exact rate conversion, players, and per-listener mixes.

Design, and why:
- Speech from every leg is put on a 48 kHz bus. 48k is an integer multiple of every leg rate (8, 16 and
  24 kHz), so conversion is exact: *up* is linear interpolation that keeps every original sample at
  positions 0, L, 2L..., *down* takes every L-th sample. A 16 kHz WAV spoken by a phone therefore reaches
  a 16 kHz WebSocket sample for sample (and 8k->8k, 24k->24k likewise); different rates are
  linearly interpolated or decimated, which is fine for telephone audio.
- The bus uses float32: int16 values and sums of up to 512 of them are exact in float32, so unity-gain
  paths stay bit-exact, and gains cost nothing extra.
- Each listener hears the sum of the others: computed as (sum of all) - (own speech), one subtraction
  per leg instead of N-1 additions, so a conference costs O(N), not O(N^2). Only conversations that use
  canHear/canSpeak restrictions fall back to a per-listener sum.
- Players (talk, stream, DTMF tones, hold music) are heard by one leg and are mixed at that leg's rate.

`level` (-1..1 on talk/stream) becomes a gain in `level_to_gain`, the one place that mapping lives.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

BUS_RATE = 48000
BUS_FRAME = BUS_RATE // 50  # 960 samples = 20 ms
LEG_RATES = (8000, 16000, 24000, 48000)


def factor(rate: int) -> int:
    """The integer bus/leg ratio (6, 3, 2 or 1); other rates are not allowed on the bus."""
    if rate not in LEG_RATES:
        raise ValueError(f"leg rate {rate} is not one of {LEG_RATES}")
    return BUS_RATE // rate


def frame_len(rate: int) -> int:
    """Samples in a 20 ms frame at `rate`."""
    return rate // 50


def level_to_gain(level: float | str | None) -> float:
    """Map Vonage's `level` (-1..1, default 0) to a linear gain.

    UNCONFIRMED: Vonage documents only the range and that 0 is the default, not the curve. The sandbox
    uses gain = 1 + level: -1 is silence, -0.5 half amplitude (-6 dB), 0 unity (the file as it is),
    +1 double amplitude (+6 dB, clipped at full scale). Change it here only.
    """
    if level is None or level == "":
        return 1.0
    value = max(-1.0, min(1.0, float(level)))
    return 1.0 + value


def upsample(x: np.ndarray, L: int) -> np.ndarray:
    """Linear interpolation by the integer factor `L` that keeps x[k] at y[L*k] exactly.

    The sample after the last is taken equal to the last (held), so a frame needs no look-ahead;
    decimating the result by L (`y[::L]`) gives x back bit for bit.
    """
    x = np.asarray(x, dtype=np.float32)
    if L == 1 or x.size == 0:
        return x
    nxt = np.empty_like(x)
    nxt[:-1] = x[1:]
    nxt[-1] = x[-1]
    return (x[:, None] + (nxt - x)[:, None] * _fractions(L)).ravel()


@functools.cache
def _fractions(L: int) -> np.ndarray:
    """The row [0, 1/L, ..., (L-1)/L] `upsample` interpolates with (made once per factor: it runs per tick)."""
    frac = (np.arange(L, dtype=np.float32) / np.float32(L))[None, :]
    frac.flags.writeable = False
    return frac


def to_int16(x: np.ndarray) -> np.ndarray:
    """Round and clip float audio to int16 (int16 input is returned as it is)."""
    if x.dtype == np.int16:
        return x
    y = np.rint(x)
    np.minimum(y, 32767, out=y)
    np.maximum(y, -32768, out=y)
    return y.astype(np.int16)


class Player:
    """Plays int16 samples (at one leg's rate) frame by frame, `loop` times (0 = until stopped)."""

    __slots__ = ("samples", "loop", "pos", "plays", "stopped", "label")

    def __init__(self, samples: np.ndarray, *, loop: int = 1, gain: float = 1.0, label: str = "") -> None:
        data = np.asarray(samples, dtype=np.float32)
        self.samples = data * np.float32(gain) if gain != 1.0 else data
        self.loop = int(loop)
        self.pos = 0
        self.plays = 0
        self.stopped = False
        self.label = label  # the slot it plays in (for debugging)

    @property
    def done(self) -> bool:
        """Finished playing (or stopped)."""
        if self.stopped:
            return True
        if self.samples.size == 0:
            return True
        return self.loop != 0 and self.plays >= self.loop

    def stop(self) -> None:
        self.stopped = True

    def read(self, n: int) -> np.ndarray | None:
        """The next `n` samples (zero-padded after the end), or None when already done."""
        if self.done:
            return None
        data = self.samples
        end = self.pos + n
        if end <= data.size:
            out = data[self.pos:end]
            self.pos = end
            if self.pos == data.size:
                self.pos = 0
                self.plays += 1
            return out
        out = np.zeros(n, dtype=np.float32)
        filled = 0
        while filled < n and not self.done:
            take = min(n - filled, data.size - self.pos)
            out[filled:filled + take] = data[self.pos:self.pos + take]
            filled += take
            self.pos += take
            if self.pos >= data.size:
                self.pos = 0
                self.plays += 1
        return out


def mix_others(
    speech: Sequence[np.ndarray | None],
    factors: Sequence[int],
    hears: Sequence[bool],
    allowed: Sequence[Sequence[bool]] | None = None,
) -> list[np.ndarray | None]:
    """For each participant, the bus mix of everyone else's speech, decimated to its own rate.

    `speech[i]` is participant i's 20 ms on the bus (960 float32 samples) or None when silent or muted;
    `factors[i]` its bus/leg ratio; `hears[i]` False for earmuffed participants (they get None).
    `allowed[i][j]` (optional) says whether listener j may hear speaker i (canSpeak/canHear); without it
    everyone hears everyone else. Returns, per participant, float32 at its rate, or None for silence.
    """
    n = len(speech)
    out: list[np.ndarray | None] = [None] * n
    active = [i for i in range(n) if speech[i] is not None]
    if not active:
        return out
    if allowed is None:
        if len(active) == 1:
            only = active[0]
            src = speech[only]
            for j in range(n):
                if j != only and hears[j]:
                    out[j] = src[:: factors[j]]
            return out
        total = np.add.reduce([speech[i] for i in active]) if len(active) > 2 else speech[active[0]] + speech[active[1]]
        for j in range(n):
            if not hears[j]:
                continue
            own = speech[j]
            mix = total - own if own is not None else total
            out[j] = mix[:: factors[j]]
        return out
    for j in range(n):
        if not hears[j]:
            continue
        parts = [speech[i] for i in active if i != j and allowed[i][j]]
        if not parts:
            continue
        mix = parts[0] if len(parts) == 1 else np.add.reduce(parts)
        out[j] = mix[:: factors[j]]
    return out


def mix_naive(speech: Sequence[np.ndarray | None], factors: Sequence[int]) -> list[np.ndarray | None]:
    """Baseline for the benchmark: every listener adds every other speaker, pair by pair (O(N^2))."""
    n = len(speech)
    out: list[np.ndarray | None] = []
    for j in range(n):
        acc = np.zeros(BUS_FRAME, dtype=np.float32)
        for i in range(n):
            if i != j and speech[i] is not None:
                acc = acc + speech[i]
        out.append(acc[:: factors[j]])
    return out
