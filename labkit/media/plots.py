"""Waveform, spectrogram and frame-timing plots that stay fast for hour-long calls.

Plotting every sample of an hour at 16 kHz (57.6 M points) takes matplotlib minutes; a screen shows
about a thousand columns anyway. So waveforms are drawn from a min/max envelope per column (which
keeps every peak visible, unlike decimation) and spectrograms average a few short-time spectra per
column. Levels are absolute (full scale, dBFS), so a quiet call looks quiet.

matplotlib is imported inside the functions. Figures come from pyplot (so Jupyter's inline
formatter knows them) and are closed at once: they display once when returned from a cell and do
not pile up in pyplot's figure list.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from labkit.errors import InvalidInput

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from numpy.typing import ArrayLike

__all__ = [
    "envelope",
    "frame_timing_plot",
    "recording_figure",
    "spectrogram",
    "spectrogram_image",
    "waveform",
]

MAX_COLUMNS = 2000
_FULL_SCALE = 32768.0
_DB_FLOOR = -100.0


def _new_figure(nrows: int, figsize: tuple[float, float]) -> tuple[Figure, list[Axes]]:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, 1, figsize=figsize, sharex=True, layout="constrained", squeeze=False)
    plt.close(fig)  # the caller owns it; see the module docstring
    return fig, list(axes[:, 0])


def _time_formatter(duration: float) -> Any:
    """mm:ss (or h:mm:ss) labels once a plot spans minutes; plain seconds otherwise."""
    from matplotlib.ticker import FuncFormatter, ScalarFormatter

    if duration < 120:
        return ScalarFormatter()

    def fmt(x: float, _pos: int) -> str:
        sign, x = ("-", -x) if x < 0 else ("", x)
        h, rem = divmod(int(round(x)), 3600)
        m, s = divmod(rem, 60)
        return f"{sign}{h}:{m:02d}:{s:02d}" if h else f"{sign}{m}:{s:02d}"

    return FuncFormatter(fmt)


def _time_label(duration: float) -> str:
    """The time axis label, with the unit its tick labels are in."""
    return "time (s)" if duration < 120 else "time (m:ss)"


def envelope(values: ArrayLike, max_columns: int = MAX_COLUMNS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column (start index, min, max) of ``values`` using at most ``max_columns`` columns.

    Short inputs come back one column per value. Works on int16 without converting the whole array.
    """
    x = np.asarray(values)
    if x.ndim != 1:
        raise InvalidInput(f"envelope needs a 1-D array; got shape {x.shape}")
    if max_columns < 1:
        raise InvalidInput(f"max_columns must be >= 1, not {max_columns}")
    n = x.size
    if n <= max_columns:
        idx = np.arange(n)
        return idx, x.copy(), x.copy()
    block = math.ceil(n / max_columns)
    full = n // block
    body = x[: full * block].reshape(full, block)
    mins, maxs = body.min(axis=1), body.max(axis=1)
    if full * block < n:
        tail = x[full * block :]
        mins = np.append(mins, tail.min())
        maxs = np.append(maxs, tail.max())
    idx = np.arange(mins.size) * block
    return idx, mins, maxs


def waveform(ax: Axes, samples: ArrayLike, rate: int, *, max_columns: int = MAX_COLUMNS, color: str = "C0") -> Axes:
    """Draw int16 samples as full-scale amplitude (-1..1) against seconds."""
    x = np.asarray(samples)
    idx, mins, maxs = envelope(x, max_columns)
    t = idx / rate
    if x.size <= max_columns:
        ax.plot(t, x / _FULL_SCALE, color=color, linewidth=0.8)
    else:
        # Each column covers [t, t + block): draw it as a filled min..max band.
        ax.fill_between(t, mins / _FULL_SCALE, maxs / _FULL_SCALE, step="post", color=color, linewidth=0.4)
    duration = x.size / rate
    ax.set_xlim(0, max(duration, 1.0 / rate))
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("amplitude (full scale)")
    ax.axhline(0, color="0.6", linewidth=0.5)
    ax.xaxis.set_major_formatter(_time_formatter(duration))
    return ax


def spectrogram_image(
    samples: ArrayLike,
    rate: int,
    *,
    max_columns: int = 1000,
    nfft: int | None = None,
    windows_per_column: int = 4,
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Power spectrogram in dBFS (freq x time) and its ``imshow`` extent.

    Up to ``max_columns`` columns: beyond that each column averages ``windows_per_column`` evenly
    spaced Hann windows from its stretch instead of computing every short-time spectrum, which keeps
    an hour-long call to a few thousand FFTs.
    """
    x = np.asarray(samples)
    if nfft is None:
        nfft = 1 << max(6, math.ceil(math.log2(rate * 0.032)))  # ~32 ms: 256 @ 8 kHz, 512 @ 16 kHz
    n = x.size
    duration = n / rate
    if n < nfft:
        x = np.concatenate([x, np.zeros(nfft - n, dtype=x.dtype)])
        n = nfft
    hop = nfft // 2
    total = 1 + (n - nfft) // hop
    if total <= max_columns:
        starts = np.arange(total) * hop
        group = 1
    else:
        group = max(1, windows_per_column)
        starts = np.linspace(0, n - nfft, max_columns * group).astype(np.int64)
    frames = x[starts[:, None] + np.arange(nfft)].astype(np.float32) / np.float32(_FULL_SCALE)
    window = np.hanning(nfft).astype(np.float32)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    if group > 1:
        power = power.reshape(-1, group, power.shape[1]).mean(axis=1)
    # Scale so a full-scale sine reads about 0 dBFS.
    power *= 4.0 / float(window.sum()) ** 2
    db = 10.0 * np.log10(np.maximum(power, 10 ** (_DB_FLOOR / 10)))
    return db.T, (0.0, max(duration, nfft / rate), 0.0, rate / 2)


def spectrogram(ax: Axes, samples: ArrayLike, rate: int, *, max_columns: int = 1000, vmin: float = -90.0) -> Axes:
    """Draw a dBFS spectrogram with a fixed colour range (so levels compare across recordings)."""
    db, extent = spectrogram_image(samples, rate, max_columns=max_columns)
    ax.imshow(
        db, origin="lower", aspect="auto", extent=extent, cmap="magma", vmin=vmin, vmax=0.0, interpolation="nearest"
    )
    ax.set_ylabel("frequency (Hz)")
    ax.set_xlabel(_time_label(extent[1]))
    ax.xaxis.set_major_formatter(_time_formatter(extent[1]))
    return ax


def recording_figure(
    samples: ArrayLike,
    rate: int,
    *,
    title: str | None = None,
    ax: Axes | Sequence[Axes] | None = None,
) -> Figure:
    """Waveform over spectrogram. ``ax`` may be one Axes (waveform only) or two (both)."""
    x = np.asarray(samples)
    if ax is None:
        fig, axes = _new_figure(2, (10, 4.2))
        wave_ax, spec_ax = axes
    elif isinstance(ax, Sequence):
        if len(ax) != 2:
            raise InvalidInput(f"pass one Axes (waveform) or two (waveform, spectrogram), not {len(ax)}")
        wave_ax, spec_ax = ax
        fig = wave_ax.figure
    else:
        wave_ax, spec_ax = ax, None
        fig = ax.figure
    waveform(wave_ax, x, rate)
    if spec_ax is not None:
        spectrogram(spec_ax, x, rate)
    else:
        wave_ax.set_xlabel(_time_label(x.size / rate))
    if title:
        wave_ax.set_title(title, loc="left", fontsize=10)
    return fig


def frame_timing_plot(send_times: ArrayLike, *, period_ms: float = 20.0, ax: Sequence[Axes] | None = None) -> Figure:
    """Two panels for a pacing run: gap between frames (ms) and accumulated drift (ms) over time.

    ``send_times`` are the clock readings of each send (``PacedSender.stats.send_times``).
    """
    t = np.asarray(send_times, dtype=np.float64)
    if t.ndim != 1 or t.size < 2:
        raise InvalidInput("frame_timing_plot needs at least two send times")
    if ax is None:
        fig, (gap_ax, drift_ax) = _new_figure(2, (10, 4.2))
    else:
        gap_ax, drift_ax = ax
        fig = gap_ax.figure
    rel = t - t[0]
    gaps = np.diff(t) * 1000.0
    drift = (rel - np.arange(t.size) * period_ms / 1000.0) * 1000.0
    duration = float(rel[-1])
    for axis, values, times, label in (
        (gap_ax, gaps, rel[1:], "gap (ms)"),
        (drift_ax, drift, rel, "drift (ms)"),
    ):
        idx, mins, maxs = envelope(values)
        if values.size <= MAX_COLUMNS:
            axis.plot(times, values, linewidth=0.8)
        else:
            axis.fill_between(times[idx], mins, maxs, step="post", linewidth=0.4)
        axis.set_ylabel(label)
        axis.grid(True, alpha=0.3)
    gap_ax.axhline(period_ms, color="0.4", linestyle="--", linewidth=0.8)
    drift_ax.axhline(0.0, color="0.4", linestyle="--", linewidth=0.8)
    drift_ax.set_xlabel(_time_label(duration))
    drift_ax.set_xlim(0.0, duration)
    drift_ax.xaxis.set_major_formatter(_time_formatter(duration))
    gap_ax.set_title(
        f"{t.size} frames over {duration:.1f} s: gap p50={np.median(gaps):.2f} ms, final drift {drift[-1]:+.2f} ms",
        loc="left",
        fontsize=10,
    )
    return fig
