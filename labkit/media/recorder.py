"""Stream a call's audio to a 16-bit WAV whose header is valid after every write.

A WAV written incrementally normally has a data size of 0 in its header until ``close()``: if the
kernel dies (or the lab is killed) mid-call, Python's ``wave`` module, browsers and most players
then see an empty file. libsndfile can rewrite the header after each write
(``SFC_SET_UPDATE_HEADER_AUTO``) at ~0.1 ms a write, so a recording is always readable up to its
last frame.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labkit.errors import AudioError, InvalidInput
from labkit.media.audio import _check_rate, as_int16

if TYPE_CHECKING:  # pragma: no cover
    from numpy.typing import ArrayLike

__all__ = ["WavRecorder"]

# libsndfile commands that soundfile's cffi definitions do not export by name.
SFC_UPDATE_HEADER_NOW = 0x1060
SFC_SET_UPDATE_HEADER_AUTO = 0x1061
_LE_INT16 = np.dtype("<i2")


def _enable_auto_header(sf_module: Any, handle: Any) -> bool:
    """Ask libsndfile to rewrite the header after every write; False if it (or the API) refuses."""
    try:
        snd, ffi = sf_module._snd, sf_module._ffi
        return bool(snd.sf_command(handle._file, SFC_SET_UPDATE_HEADER_AUTO, ffi.NULL, 1))
    except AttributeError:  # a future soundfile renamed its internals
        return False


class WavRecorder:
    """Append int16 mono audio to a PCM_16 WAV, crash-safe and thread-safe.

    ``write(frame)`` takes the raw s16le bytes of a WebSocket message; ``write_samples(arr)`` takes
    numpy samples. ``frames_written`` counts ``write`` calls, ``samples_written`` counts all
    samples. The parent directory is created if needed; an existing file is replaced.
    """

    def __init__(self, path: str | os.PathLike, rate: int) -> None:
        import soundfile as sf

        self.rate = _check_rate(rate)
        self.path = Path(os.fspath(path)).expanduser()
        self.frames_written = 0
        self.samples_written = 0
        self._lock = threading.Lock()
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = sf.SoundFile(
                str(self.path), "w", samplerate=self.rate, channels=1, subtype="PCM_16", format="WAV"
            )
        except (OSError, sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(
                f"cannot create the recording '{self.path}': {exc}. Check that the folder is writable."
            ) from exc
        self._sf = sf
        self._auto_header = _enable_auto_header(sf, self._file)
        if not self._auto_header:
            warnings.warn(
                "libsndfile refused SFC_SET_UPDATE_HEADER_AUTO; updating the WAV header after each "
                "write explicitly instead",
                RuntimeWarning,
                stacklevel=2,
            )

    # ------------------------------------------------------------------ writing

    def write(self, frame: bytes | bytearray | memoryview) -> None:
        """Append one frame of s16le bytes (any even length; WebSocket frames are 20 ms)."""
        data = bytes(frame)
        if len(data) % 2:
            raise InvalidInput(
                f"a frame of {len(data)} bytes is not 16-bit PCM (odd length); pass the binary "
                "WebSocket message unmodified"
            )
        if sys.byteorder == "little":  # the bytes are already native int16: hand them to libsndfile as is
            with self._lock:
                self._check_open()
                self._file.buffer_write(data, dtype="int16")
                self._after_write(len(data) // 2, count_frame=True)
            return
        self._write(np.frombuffer(data, dtype=_LE_INT16), count_frame=True)

    def write_samples(self, samples: ArrayLike) -> None:
        """Append int16 samples (floats in -1..1 are converted); does not count as a frame."""
        arr = as_int16(samples)
        if arr.ndim != 1:
            raise InvalidInput(f"the recorder takes mono (1-D) samples; got shape {arr.shape}")
        self._write(arr, count_frame=False)

    def _write(self, arr: np.ndarray, *, count_frame: bool) -> None:
        with self._lock:
            self._check_open()
            if arr.size:
                self._file.write(arr.astype(np.int16, copy=False))
            self._after_write(int(arr.size), count_frame=count_frame)

    def _check_open(self) -> None:
        if self._closed:
            raise AudioError(f"the recording '{self.path}' is closed; start a new WavRecorder")

    def _after_write(self, samples: int, *, count_frame: bool) -> None:
        """Keep the header valid (when libsndfile does not do it itself) and count. Lock held."""
        if samples and not self._auto_header:
            self._sf._snd.sf_command(self._file._file, SFC_UPDATE_HEADER_NOW, self._sf._ffi.NULL, 0)
        self.samples_written += samples
        if count_frame:
            self.frames_written += 1

    # ------------------------------------------------------------------ state

    @property
    def duration(self) -> float:
        """Seconds written so far."""
        return self.samples_written / self.rate

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Finish the file. Safe to call more than once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._file.close()

    def __enter__(self) -> WavRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "recording"
        return f"<WavRecorder '{self.path}' {self.rate} Hz {state}, {self.duration:.2f} s>"
