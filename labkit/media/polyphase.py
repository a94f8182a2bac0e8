"""Polyphase resampling in numpy alone: the filter and the samples of ``scipy.signal.resample_poly``.

Why not scipy itself: importing ``scipy.signal`` maps about 69 MB into the process (measured with
bench/sandbox/bench_start_memory.py: a `labkit sandbox` went from 70 to 139 MB for this one function,
which every `talk` needs to bring espeak-ng's 22.05 kHz to the call's rate). The filter is the one
scipy designs (``firwin`` with a Kaiser window, beta 5, half length ``10 * max(up, down)`` taps, gain
``up``) and the output is aligned the same way, so results agree with scipy's to float rounding
(tests/media/test_media.py compares them). Each output is a row of input times a column of a
(down + taps, up) filter matrix, in blocks, as fast as scipy's C for the rates calls and audio files
use; a ratio whose matrix would pass 32 MB (odd rates such as 44056 Hz) is left to scipy.
"""

from __future__ import annotations

import math

import numpy as np

BLOCK_VALUES = 1 << 18  # input window samples copied per matrix product (2 MB of float64)
MAX_MATRIX = 1 << 22  # filter matrix entries (32 MB): past it (odd rates, e.g. 44056 -> 16000 Hz) scipy does it

_FILTERS: dict[tuple[int, int], tuple[np.ndarray, int, int]] = {}


def _design(up: int, down: int) -> tuple[np.ndarray, int, int]:
    """(G, taps, pre_remove) for `up`/`down`: output `j * up + r` is `window_j @ G[:, r]`, where
    `window_j` is the input from `j * down - (taps - 1)` on (zeros before x); the first `pre_remove`
    outputs are the filter's lead-in, dropped as scipy drops them."""
    cached = _FILTERS.get((up, down))
    if cached is not None:
        return cached
    max_rate = max(up, down)
    half_len = 10 * max_rate
    numtaps = 2 * half_len + 1
    cutoff = 1.0 / max_rate  # of Nyquist
    m = np.arange(numtaps) - half_len
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(numtaps, 5.0)
    h = h / h.sum() * up
    pre_pad = down - half_len % down  # scipy's alignment: output samples centred on the filter
    pre_remove = (half_len + pre_pad) // down
    h = np.concatenate((np.zeros(pre_pad), h))
    taps = math.ceil(len(h) / up)
    r = np.arange(up)
    base, phase = (r * down) // up, (r * down) % up  # output j*up + r reads x[j*down + base[r] - t]
    span = int(base.max()) + taps
    g = np.zeros((span, up))
    for col in range(up):
        row = h[phase[col]::up]  # taps t = 0.. of this phase, applied to x[... - t]
        g[base[col] + taps - 1 - np.arange(len(row)), col] = row
    _FILTERS[(up, down)] = (g, taps, pre_remove)
    return g, taps, pre_remove


def resample_poly(x: np.ndarray, up: int, down: int) -> np.ndarray:
    """float64 `x` (samples along axis 0, any channels after) resampled by up/down, as scipy's."""
    g_ = math.gcd(up, down)
    up, down = up // g_, down // g_
    x = np.asarray(x, dtype=np.float64)
    if up == down == 1:
        return x.copy()
    if x.ndim > 1:
        flat = x.reshape(x.shape[0], -1)
        cols = [resample_poly(flat[:, c], up, down) for c in range(flat.shape[1])]
        return np.stack(cols, axis=1).reshape((len(cols[0]),) + x.shape[1:])
    if (down + (20 * max(up, down) + 1 + down) // up + 1) * up > MAX_MATRIX:
        from scipy.signal import resample_poly as scipy_poly  # a ratio no call or common file has

        return scipy_poly(x, up, down)
    n_in = x.shape[0]
    n_out = -(-n_in * up // down)
    g, taps, pre_remove = _design(up, down)
    span = g.shape[0]
    rows = -(-(pre_remove + n_out) // up)
    padded = np.zeros(max((rows - 1) * down + span, taps - 1 + n_in))
    padded[taps - 1 : taps - 1 + n_in] = x  # x[k] at taps - 1 + k: the earliest window starts at x[-(taps-1)]
    windows = np.lib.stride_tricks.as_strided(padded, shape=(rows, span),
                                              strides=(down * padded.itemsize, padded.itemsize), writeable=False)
    out = np.empty((rows, up))
    step = max(1, BLOCK_VALUES // span)
    for j in range(0, rows, step):
        np.matmul(np.ascontiguousarray(windows[j : j + step]), g, out=out[j : j + step])
    return out.reshape(-1)[pre_remove : pre_remove + n_out]
