"""A live waveform as an `ipywidgets.Image`: PNGs drawn with numpy, re-rendered a few times a second.

Why not matplotlib or an Output widget? Audio arrives on a WebSocket thread at 50 frames a second;
pyplot is not thread-safe, Output widgets updated from threads lose output (ipywidgets 2358, 3017,
4020), and a matplotlib render costs tens of milliseconds. Setting an Image widget's `value` from any
thread is safe, and a min/max envelope drawn straight into a numpy array and PNG-encoded with zlib
takes about a millisecond. So frames go into a ring buffer (cheap, any thread) and one daemon thread
renders at most `fps` times a second, and only when something changed.
"""

from __future__ import annotations

import struct
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import numpy as np

__all__ = ["LiveWaveform", "png_bytes", "render_waveform"]

_BACKGROUND = (248, 248, 250)
_AXIS = (200, 200, 205)
_WAVE = (31, 119, 180)
_IDLE = (170, 170, 175)


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an (height, width, 3) uint8 array as a PNG (no Pillow or matplotlib needed)."""
    pixels = np.ascontiguousarray(rgb, dtype=np.uint8)
    height, width, channels = pixels.shape
    if channels != 3:
        raise ValueError(f"png_bytes needs RGB pixels (height, width, 3), not shape {pixels.shape}")
    # Each scanline starts with filter type 0 (None).
    rows = np.concatenate([np.zeros((height, 1), np.uint8), pixels.reshape(height, width * 3)], axis=1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
            + chunk(b"IEND", b""))


def render_waveform(samples: np.ndarray, width: int = 480, height: int = 90,
                    color: tuple[int, int, int] = _WAVE) -> bytes:
    """A PNG of int16 samples as a min/max envelope per pixel column (every peak stays visible)."""
    x = np.asarray(samples, dtype=np.int16)
    img = np.empty((height, width, 3), np.uint8)
    img[:] = _BACKGROUND
    mid = height // 2
    img[mid, :] = _AXIS
    if x.size:
        edges = np.linspace(0, x.size, width + 1).astype(np.int64)
        has = edges[1:] > edges[:-1]
        cols = np.flatnonzero(has)
        starts = edges[:-1][has]
        # reduceat gives per-column min and max in one pass.
        mins = np.minimum.reduceat(x, starts).astype(np.float64) / 32768.0
        maxs = np.maximum.reduceat(x, starts).astype(np.float64) / 32768.0
        scale = (height - 2) / 2.0
        top = np.clip(np.round(mid - maxs * scale), 0, height - 1).astype(np.int64)
        bottom = np.clip(np.round(mid - mins * scale), 0, height - 1).astype(np.int64)
        rows = np.arange(height)[:, None]
        mask = (rows >= top[None, :]) & (rows <= bottom[None, :])
        region = img[:, cols]
        region[mask] = color
        img[:, cols] = region
    return png_bytes(img)


class LiveWaveform(widgets.VBox):
    """The last `seconds` of audio as an image, fed frame by frame from any thread.

    `feed(frame_bytes)` appends s16le audio (the shape of Voice WebSocket frames), `show(samples,
    rate)` draws a whole recording, `follow(session)` feeds it from a `SocketSession`. `.image` is
    the `ipywidgets.Image`, `.caption` a label saying what is shown, `.renders` counts redraws.
    """

    def __init__(self, seconds: float = 3.0, rate: int = 16000, *, width: int = 480, height: int = 90,
                 fps: float = 4.0, title: str = "audio", **kwargs: Any):
        self.seconds = float(seconds)
        self.rate = int(rate)
        self.fps = float(fps)
        self.title = title
        self.width_px = int(width)
        self.height_px = int(height)
        self.renders = 0
        self.frames_fed = 0
        self.image = widgets.Image(format="png", width=str(width), height=str(height),
                                   layout=widgets.Layout(border="1px solid #ddd"))
        self.image.add_class("labkit-waveform")
        self.caption = widgets.Label(value=f"{title}: nothing yet")
        self.caption.add_class("labkit-waveform-caption")
        super().__init__(children=[self.image, self.caption], **kwargs)
        self._lock = threading.Lock()
        self._ring = np.zeros(int(self.seconds * self.rate), np.int16)
        self._dirty = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._unfollow: Callable[[], Any] | None = None
        self.image.value = render_waveform(self._ring, self.width_px, self.height_px, _IDLE)

    # -- feeding (any thread) ------------------------------------------------------------------
    def feed(self, frame: bytes) -> None:
        """Append raw s16le audio (one WebSocket frame, or any whole number of samples)."""
        self.feed_samples(np.frombuffer(frame[: len(frame) // 2 * 2], dtype="<i2"))

    def feed_samples(self, samples: np.ndarray) -> None:
        """Append int16 samples at this waveform's rate; a redraw follows within 1/fps seconds."""
        new = np.asarray(samples, dtype=np.int16)
        if not new.size:
            return
        with self._lock:
            n = self._ring.size
            if new.size >= n:
                self._ring[:] = new[-n:]
            else:
                self._ring[:-new.size] = self._ring[new.size:]
                self._ring[-new.size:] = new
            self.frames_fed += 1
        self._dirty.set()
        self._ensure_thread()

    def reset(self, rate: int | None = None) -> None:
        """Forget the audio (and switch rate, e.g. for a 8 kHz socket), then redraw empty."""
        with self._lock:
            if rate:
                self.rate = int(rate)
            self._ring = np.zeros(int(self.seconds * self.rate), np.int16)
        self._dirty.set()
        self._ensure_thread()

    def set_tail(self, samples: np.ndarray, rate: int) -> None:
        """Replace the buffer with the newest `seconds` of `samples` in one step (no empty frame between)."""
        new = np.asarray(samples, dtype=np.int16)
        with self._lock:
            self.rate = int(rate)
            ring = np.zeros(int(self.seconds * self.rate), np.int16)
            tail = new[-ring.size:]
            if tail.size:
                ring[-tail.size:] = tail
            self._ring = ring
        self._dirty.set()
        self._ensure_thread()

    def follow(self, session: Any) -> Callable[[], Any]:
        """Feed from a `SocketSession` (its `add_frame_listener`); returns the way to stop."""
        self.unfollow()
        self.reset(getattr(session, "rate", None))
        self.title = f"WebSocket audio ({getattr(session, 'rate', self.rate) // 1000} kHz)"
        self._unfollow = session.add_frame_listener(self.feed)
        return self.unfollow

    def unfollow(self) -> None:
        if self._unfollow is not None:
            try:
                self._unfollow()
            finally:
                self._unfollow = None

    # -- a whole recording -------------------------------------------------------------------------
    def show(self, samples: np.ndarray, rate: int, title: str | None = None) -> None:
        """Draw all of `samples` at once (e.g. what a phone heard), synchronously."""
        x = np.asarray(samples, dtype=np.int16)
        self.image.value = render_waveform(x, self.width_px, self.height_px)
        self.renders += 1
        peak = _peak_dbfs(x)
        self.caption.value = f"{title or self.title}: {x.size / max(rate, 1):.1f} s, peak {peak}"

    # -- rendering -----------------------------------------------------------------------------
    def render_now(self) -> None:
        """Redraw from the ring buffer at once (the thread calls this; tests may too)."""
        with self._lock:
            snapshot = self._ring.copy()
            rate = self.rate
        self._dirty.clear()
        self.image.value = render_waveform(snapshot, self.width_px, self.height_px)
        self.renders += 1
        self.caption.value = f"{self.title}: last {snapshot.size / rate:.0f} s, peak {_peak_dbfs(snapshot)}"

    def _ensure_thread(self) -> None:
        if self._thread is None and not self._closing.is_set():
            self._thread = threading.Thread(target=self._run, name="labkit-waveform", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        period = 1.0 / max(self.fps, 0.1)
        while not self._closing.is_set():
            if not self._dirty.wait(timeout=1.0):
                continue
            if self._closing.is_set():
                break
            started = time.monotonic()
            try:
                self.render_now()
            except Exception:  # noqa: BLE001 - a closed widget or comm must not kill the thread noisily
                pass
            self._closing.wait(max(0.0, period - (time.monotonic() - started)))

    def close(self) -> None:
        """Stop following and rendering, then close the widgets."""
        self.unfollow()
        self._closing.set()
        self._dirty.set()
        self.image.close()
        self.caption.close()
        super().close()


def _peak_dbfs(x: np.ndarray) -> str:
    if not x.size:
        return "silence"
    peak = int(np.max(np.abs(x.astype(np.int32))))
    if peak == 0:
        return "silence"
    return f"{20 * np.log10(peak / 32768.0):.0f} dBFS"
