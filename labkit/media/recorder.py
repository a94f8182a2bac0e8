"""Stream a call's audio to a 16-bit WAV whose header is valid after every write.

A WAV written incrementally normally has a data size of 0 in its header until ``close()``: if the
kernel dies (or the lab is killed) mid-call, Python's ``wave`` module, browsers and most players
then see an empty file. libsndfile can rewrite the header after each write
(``SFC_SET_UPDATE_HEADER_AUTO``) at ~0.1 ms a write, so a recording is always readable up to its
last frame.

A recorder that cannot write (disk full, folder unwritable or gone) never raises into the caller's loop:
it stops, keeps what it wrote as a valid WAV (sizes in the header match the samples really on disk),
and reports why through `failed` and the optional `on_error(reason)` callback, so a call goes on without
its recording rather than losing the call.
"""

from __future__ import annotations

import os
import struct
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labkit.errors import AudioError, InvalidInput
from labkit.media.audio import _check_rate, as_int16

if TYPE_CHECKING:  # pragma: no cover
    from numpy.typing import ArrayLike

__all__ = ["WavRecorder"]

# libsndfile commands that soundfile's cffi definitions do not export by name.
SFC_SET_UPDATE_HEADER_AUTO = 0x1061
_LE_INT16 = np.dtype("<i2")


def _enable_auto_header(sf_module: Any, handle: Any) -> bool:
    """Ask libsndfile to rewrite the header after every write; False if it (or the API) refuses."""
    try:
        snd, ffi = sf_module._snd, sf_module._ffi
        return bool(snd.sf_command(handle._file, SFC_SET_UPDATE_HEADER_AUTO, ffi.NULL, 1))
    except AttributeError:  # a future soundfile renamed its internals
        return False


def _data_chunk(fh: Any) -> tuple[int, int] | None:
    """(offset of the data chunk's size field, declared size) of a RIFF/WAVE file, or None."""
    fh.seek(0)
    head = fh.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    while True:
        fh.seek(pos)
        chunk = fh.read(8)
        if len(chunk) < 8:
            return None
        size = struct.unpack("<I", chunk[4:])[0]
        if chunk[:4] == b"data":
            return pos + 4, size
        pos += 8 + size + (size & 1)


def patch_sizes(fh: Any, data_bytes: int | None = None) -> int:
    """Make the RIFF and data sizes of an open WAV (binary, read-write) agree with `data_bytes` (default:
    what is really in the file, in whole 16-bit samples); returns the data size written. Plain file I/O:
    used after every write when libsndfile cannot update the header itself, and to repair after a fault."""
    found = _data_chunk(fh)
    if found is None:
        return 0
    size_at, _declared = found
    fh.seek(0, os.SEEK_END)
    on_disk = fh.tell() - (size_at + 4)
    size = on_disk if data_bytes is None else min(data_bytes, on_disk)
    size -= size % 2
    fh.truncate(size_at + 4 + size)  # drop a half-written sample; never needs new disk space
    fh.seek(size_at)
    fh.write(struct.pack("<I", size))
    fh.seek(4)
    fh.write(struct.pack("<I", size_at + size - 4))
    fh.flush()
    return size


class WavRecorder:
    """Append int16 mono audio to a PCM_16 WAV, crash-safe, fault-tolerant and thread-safe.

    ``write(frame)`` takes the raw s16le bytes of a WebSocket message; ``write_samples(arr)`` takes
    numpy samples. ``frames_written`` counts ``write`` calls, ``samples_written`` counts all
    samples. The parent directory is created if needed; an existing file is replaced.

    If the file cannot be created or written, the recorder fails instead of raising: ``failed`` holds
    the reason, ``on_error(reason)`` is called once, later writes are counted in ``frames_dropped``,
    and the file keeps every sample written before the fault, with a valid header.
    """

    def __init__(self, path: str | os.PathLike, rate: int, *,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.rate = _check_rate(rate)
        self.path = Path(os.fspath(path)).expanduser()
        self.frames_written = 0
        self.samples_written = 0
        self.frames_dropped = 0
        self.failed: str | None = None
        self.on_error = on_error
        self._lock = threading.Lock()
        self._closed = False
        self._file: Any = None
        self._patch: Any = None  # our own handle on the file, when we keep its header valid ourselves
        self._auto_header = True
        try:
            import soundfile as sf

            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = sf.SoundFile(
                str(self.path), "w", samplerate=self.rate, channels=1, subtype="PCM_16", format="WAV"
            )
            self._auto_header = _enable_auto_header(sf, self._file)
            if not self._auto_header:
                warnings.warn(
                    "libsndfile refused SFC_SET_UPDATE_HEADER_AUTO; keeping the WAV header valid after each "
                    "write with plain file I/O instead",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self._file.flush()
                self._patch = open(self.path, "r+b")  # noqa: SIM115 - closed in close()
        except Exception as exc:  # noqa: BLE001 - OSError, LibsndfileError...: report, never raise
            self._fail(f"cannot create the recording '{self.path}': {_words(exc)}. Check that the folder "
                       "exists, is writable and has free space")

    # ------------------------------------------------------------------ writing

    def write(self, frame: bytes | bytearray | memoryview) -> None:
        """Append one frame of s16le bytes (any even length; WebSocket frames are 20 ms)."""
        self.write_frames((frame,))

    def write_frames(self, frames: Sequence[bytes | bytearray | memoryview]) -> None:
        """Append several frames in one write (one header update): how a busy server catches up.

        Each counts in ``frames_written`` as if written on its own."""
        data = b"".join(frames)
        for frame in frames:
            if len(frame) % 2:
                raise InvalidInput(
                    f"a frame of {len(frame)} bytes is not 16-bit PCM (odd length); pass the binary "
                    "WebSocket message unmodified"
                )
        if sys.byteorder == "little":  # the bytes are already native int16: hand them to libsndfile as is
            with self._lock:
                self._check_open()
                if self.failed is None:
                    self._guarded(lambda: self._file.buffer_write(data, dtype="int16"), len(data) // 2,
                                  len(frames))
                else:
                    self.frames_dropped += len(frames)
            return
        self._write(np.frombuffer(data, dtype=_LE_INT16), frames=len(frames))

    def write_samples(self, samples: ArrayLike) -> None:
        """Append int16 samples (floats in -1..1 are converted); does not count as a frame."""
        arr = as_int16(samples)
        if arr.ndim != 1:
            raise InvalidInput(f"the recorder takes mono (1-D) samples; got shape {arr.shape}")
        self._write(arr, frames=0)

    def _write(self, arr: np.ndarray, *, frames: int) -> None:
        with self._lock:
            self._check_open()
            if self.failed is not None:
                self.frames_dropped += frames
                return
            block = arr.astype(np.int16, copy=False)
            self._guarded(lambda: self._file.write(block) if block.size else None, int(arr.size), frames)

    def _guarded(self, write: Callable[[], Any], samples: int, frames: int) -> None:
        """Run one write (lock held); a fault marks the recorder failed instead of raising."""
        try:
            write()
            if samples and self._patch is not None:
                self._file.flush()
                patch_sizes(self._patch, (self.samples_written + samples) * 2)
        except Exception as exc:  # noqa: BLE001 - disk full, folder removed, I/O error: report, never raise
            self.frames_dropped += frames
            self._fail(f"writing the recording '{self.path}' failed after {self.duration:.1f} s: "
                       f"{_why(exc, self.path)}. The call goes on; what was recorded so far is kept")
            return
        self.samples_written += samples
        self.frames_written += frames

    def _fail(self, reason: str) -> None:
        """Stop recording, keep the file valid with what was written, and tell `on_error` once."""
        if self.failed is not None:
            return
        self.failed = reason
        for handle in (self._file, self._patch):
            try:
                if handle is not None:
                    handle.close()  # may fail again (its header write): the repair below decides
            except Exception:  # noqa: BLE001
                pass
        self._file = self._patch = None
        try:
            with open(self.path, "r+b") as fh:
                patch_sizes(fh, self.samples_written * 2)
        except OSError:
            pass  # nothing on disk to repair (the file was never created, or its folder is gone)
        if self.on_error is not None:
            try:
                self.on_error(reason)
            except Exception:  # noqa: BLE001 - a callback must not break the caller's loop either
                pass

    def _check_open(self) -> None:
        if self._closed:
            raise AudioError(f"the recording '{self.path}' is closed; start a new WavRecorder")

    # ------------------------------------------------------------------ state

    @property
    def duration(self) -> float:
        """Seconds written so far."""
        return self.samples_written / self.rate

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Finish the file. Safe to call more than once; never raises for a file it could not write."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self.failed is not None:
                return
            try:
                self._file.close()
                if self._patch is not None:
                    self._patch.close()
            except Exception as exc:  # noqa: BLE001
                self._fail(f"finishing the recording '{self.path}' failed: {_words(exc)}")

    def __enter__(self) -> WavRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "failed" if self.failed else "closed" if self._closed else "recording"
        return f"<WavRecorder '{self.path}' {self.rate} Hz {state}, {self.duration:.2f} s>"


def _why(exc: BaseException, path: Path) -> str:
    """Why a write failed, in words: libsndfile says only "System error" for a full disk, so look."""
    import shutil

    if isinstance(exc, OSError) and exc.strerror:
        return _words(exc)
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return f"the folder {path.parent} is gone ({_words(exc)})"
    if free < 64 * 1024:
        return f"no space left on the disk ({free} bytes free; {_words(exc)})"
    if not path.exists():
        return f"the file was removed while recording ({_words(exc)})"
    return _words(exc)


def _words(exc: BaseException) -> str:
    """An exception in a few words: libsndfile's own message, or the OS error's."""
    text = getattr(exc, "error_string", None) or getattr(exc, "strerror", None) or str(exc)
    return f"{type(exc).__name__}: {str(text).strip().rstrip('.')}"
