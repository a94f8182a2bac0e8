"""Where a reference is in a recording: one correlation over the whole, or its pieces in order.

Kept apart from `Recording` (labkit.media.recording), which asks these questions in seconds; here they
are asked in samples, with numpy and scipy's FFT convolution.
"""

from __future__ import annotations

import numpy as np

__all__ = ["best_match", "pieces_in_order"]


def pieces_in_order(heard: np.ndarray, ref: np.ndarray, n: int, min_score: float) -> tuple[float, int | None]:
    """(share of `ref`'s non-silent n-sample pieces found in `heard` in order, lag in samples where `ref`
    started, or None when no piece was found); see `Recording.find_pieces` for the rule and why."""
    slack = n // 4  # a resampled copy may land a few samples off
    total = 0
    found: list[tuple[int, int]] = []  # (place in the reference, lag) of each piece that matched
    scores: list[float] = []
    for start in range(0, ref.size - n + 1, n):
        piece = ref[start:start + n]
        if not np.any(piece):
            continue
        total += 1
        score, lag = best_match(heard, piece)
        if score >= min_score:
            found.append((start, lag))
            scores.append(score)
    if not found:
        return 0.0, None
    # the longest chain ending at each match (the better matches among equally long ones: a piece cut by a
    # gap may still match whole a little off, where it would push out its neighbour) and the match before
    best = [(1, s) for s in scores]
    before = [-1] * len(found)
    for i, (_, lag) in enumerate(found):
        for j in range(i):
            longer = (best[j][0] + 1, best[j][1] + scores[i])
            if lag - found[j][1] >= n - slack and longer > best[i]:
                best[i], before[i] = longer, j
    i = max(range(len(found)), key=best.__getitem__)
    chain = [i]
    while before[chain[-1]] >= 0:
        chain.append(before[chain[-1]])
    chain.reverse()
    pairs = zip(chain, chain[1:], strict=False)  # a piece a gap cut in two was heard too, either side of it
    count = len(chain) + sum(_cut_by_gap(heard, ref, found[a], found[b], n, min_score) for a, b in pairs)
    return count / total, found[chain[0]][1] - found[chain[0]][0]


def best_match(signal: np.ndarray, reference: np.ndarray, block: int = 1 << 20) -> tuple[float, int]:
    """Peak |normalised cross-correlation| and the lag of ``reference`` within ``signal`` (samples).

    The shorter of the two slides along the longer, and may hang over either end of it by up to half
    its length (a recording that starts a moment late still matches). Each position is normalised by
    the energy of the overlapping stretch of both, so the score is 1 for an exact (scaled) copy. The
    longer signal is processed in blocks so an hour-long recording needs tens of MB, not gigabytes.
    """
    from scipy.signal import fftconvolve

    x, y = (signal, reference) if signal.size >= reference.size else (reference, signal)
    swapped = x is not signal
    m, n = y.size, x.size
    # Full-scale units keep the running energy sums small enough for float64 to stay accurate.
    yf = y.astype(np.float64) / 32768.0
    y_csum = np.concatenate([[0.0], np.cumsum(yf * yf)])
    if m == 0 or y_csum[-1] == 0.0:
        return 0.0, 0
    y_rev = yf[::-1].copy()
    pad = m // 2
    xp = np.concatenate([np.zeros(pad, x.dtype), x, np.zeros(pad, x.dtype)])
    lags = xp.size - m + 1
    block = max(block, 4 * m)
    # Stretches far quieter than the loudest one are numerical noise, not audio.
    floor = max(_peak_window_energy(x, min(m, n)) * 1e-6, 1e-9)
    best, best_lag = 0.0, 0
    for start in range(0, lags, block):
        seg = xp[start : start + min(block, lags - start) + m - 1].astype(np.float64) / 32768.0
        num = fftconvolve(seg, y_rev, mode="valid")
        csum = np.concatenate([[0.0], np.cumsum(seg * seg)])
        win = csum[m:] - csum[:-m]  # energy of seg[k:k+m] for each lag k
        k = start + np.arange(num.size)
        y_energy = y_csum[np.clip(pad + n - k, 0, m)] - y_csum[np.clip(pad - k, 0, m)]  # overlap only
        usable = (win > floor) & (y_energy > 0)
        if not usable.any():
            continue
        score = np.zeros_like(num)
        score[usable] = np.abs(num[usable]) / np.sqrt(win[usable] * y_energy[usable])
        i = int(np.argmax(score))
        if score[i] > best:
            best, best_lag = float(score[i]), start + i - pad
    return min(best, 1.0), (-best_lag if swapped else best_lag)


def _cut_by_gap(heard: np.ndarray, ref: np.ndarray, left: tuple[int, int], right: tuple[int, int], n: int,
                min_score: float) -> bool:
    """Whether the one piece between two found pieces `left` and `right` ((place in ref, lag) each, 2n apart
    in `ref`) was heard cut by a gap: its first k samples right after `left`, the rest right before `right`.

    Why: under load each stall of the live path splits the piece it falls in, which then matches nowhere
    whole; a 2 s echo with two stalls read 89% of its pieces and failed the 90% rule although nothing was lost.
    """
    (a_at, a_lag), (b_at, b_lag) = left, right
    if b_at - a_at != 2 * n or b_lag - a_lag < 2 * n:
        return False
    piece = ref[a_at + n:b_at].astype(np.float64)
    after, before = a_lag + n, b_lag - n  # where the piece would lie heard whole after `left` / before `right`
    if after < 0 or b_lag > heard.size or not np.any(piece):
        return False
    x = heard[after:after + n].astype(np.float64)  # x[:k] the first part, y[k:] the rest
    y = heard[before:b_lag].astype(np.float64)
    dot = np.concatenate([[0.0], np.cumsum(x * piece)]) + np.concatenate([np.cumsum((y * piece)[::-1])[::-1], [0.0]])
    energy = np.concatenate([[0.0], np.cumsum(x * x)]) + np.concatenate([np.cumsum((y * y)[::-1])[::-1], [0.0]])
    score = dot / np.sqrt(np.maximum(energy, 1e-12) * float(piece @ piece))
    return bool(score.max() >= min_score)


def _peak_window_energy(x: np.ndarray, m: int, block: int = 1 << 22) -> float:
    """Largest energy of any m-sample stretch of int16 ``x`` (full-scale units), blockwise."""
    peak = 0.0
    for start in range(0, x.size - m + 1, block):
        seg = x[start : start + block + m - 1].astype(np.float64) / 32768.0
        csum = np.concatenate([[0.0], np.cumsum(seg * seg)])
        peak = max(peak, float((csum[m:] - csum[:-m]).max()))
    return peak
