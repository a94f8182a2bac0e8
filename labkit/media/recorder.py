"""Stream a call's audio to a 16-bit WAV whose header is valid after every write.

A WAV written incrementally normally has a data size of 0 in its header until ``close()``: if the
kernel dies (or the lab is killed) mid-call, Python's ``wave`` module, browsers and most players
then see an empty file. This recorder writes its own 44-byte PCM header and, after every write, patches
the header's two size fields in place, so a recording is always readable up to its last write.

Why not libsndfile: its per-write header rewrite (``SFC_SET_UPDATE_HEADER_AUTO``) seeks, rewrites the
whole header and seeks back, about 0.1 ms and several syscalls per write, each one dropping and
re-taking the GIL the server's event loop needs (issue 20 measured the recorder thread at 35 % of the
samples at 300 streams). Here the size fields are two stores into a shared memory map of the header
(the page cache holds them: a killed process leaves them on disk; no syscall, no GIL hand-off), and the
server loop's frames (`append_frame`) are copied through a map of the file's end as well
(labkit.media.wav_tail, which keeps the file a valid WAV with a padding chunk ahead of the data); other
writes are one ``os.write`` of the raw s16le bytes. Where a file cannot be mapped the fields are
patched with one ``os.pwrite`` instead.

A recorder that cannot write (disk full, folder unwritable or gone) never raises into the caller's loop:
it stops, keeps what it wrote as a valid WAV (sizes in the header match the samples really on disk),
and reports why through `failed` and the optional `on_error(reason)` callback, so a call goes on without
its recording rather than losing the call.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labkit.errors import AudioError, InvalidInput
from labkit.media.audio import _check_rate, as_int16
from labkit.media.wav_tail import MappedTail

if TYPE_CHECKING:  # pragma: no cover
    from numpy.typing import ArrayLike

__all__ = ["WavRecorder", "patch_sizes", "wav_header"]

_LE_INT16 = np.dtype("<i2")
HEADER_BYTES = 44  # RIFF + fmt (16-byte PCM) + data chunk header
_RIFF_SIZE_AT, _DATA_SIZE_AT = 4, 40
_SIZE = struct.Struct("<I")


def wav_header(rate: int, data_bytes: int = 0) -> bytes:
    """The canonical 44-byte header of a mono 16-bit PCM WAV holding `data_bytes` of samples."""
    return struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, 1, 1, rate,
                       rate * 2, 2, 16, b"data", data_bytes)


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

    ``write(frame)`` takes the raw s16le bytes of a WebSocket message; ``write_frames(frames)`` takes
    several at once (one write, one header update: how the server's writer thread records a tick);
    ``write_samples(arr)`` takes numpy samples. ``frames_written`` counts frames, ``samples_written``
    all samples. The parent directory is created if needed; an existing file is replaced.

    If the file cannot be created or written, the recorder fails instead of raising: ``failed`` holds
    the reason, ``on_error(reason)`` is called once, later writes are counted in ``frames_dropped``,
    and the file keeps every sample written before the fault, with a valid header.
    """

    def __init__(self, path: str | os.PathLike, rate: int, *,
                 on_error: Callable[[str], None] | None = None, map_header: bool = True,
                 map_data: bool = True) -> None:
        self.rate = _check_rate(rate)
        self.path = Path(os.fspath(path)).expanduser()
        self.frames_written = 0
        self.samples_written = 0
        self.frames_dropped = 0
        self.failed: str | None = None
        self.on_error = on_error
        self._lock = threading.Lock()
        self._closed = False
        self._fd = -1
        self._header: mmap.mmap | None = None  # the header's page, shared with the file (None: pwrite)
        self._sizes: memoryview | None = None  # that page as native 32-bit words (little-endian hosts)
        self._tail: MappedTail | None = None  # append_frame's samples through a map (None: os.write)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
            self._append(wav_header(self.rate))
            if map_header:
                try:
                    self._header = mmap.mmap(self._fd, HEADER_BYTES)
                except (OSError, ValueError):  # a file system that cannot map files: patch with pwrite
                    self._header = None
                if self._header is not None and sys.byteorder == "little":  # a WAV's sizes are little-endian
                    self._sizes = memoryview(self._header).cast("I")
                if self._sizes is not None and map_data:
                    try:
                        self._tail = MappedTail(self._fd, self._sizes)
                    except OSError:  # no room to reserve, or no map: every write is an os.write
                        self._tail = None
        except Exception as exc:  # noqa: BLE001 - OSError of any kind: report, never raise
            self._fail(f"cannot create the recording '{self.path}': {_words(exc)}. Check that the folder "
                       "exists, is writable and has free space")

    # ------------------------------------------------------------------ writing

    def write(self, frame: bytes | bytearray | memoryview) -> None:
        """Append one frame of s16le bytes (any even length; WebSocket frames are 20 ms)."""
        self.write_frames((frame,))

    def write_frames(self, frames: Sequence[bytes | bytearray | memoryview]) -> None:
        """Append several frames in one write (one header update): how a busy server catches up.

        Each counts in ``frames_written`` as if written on its own."""
        for frame in frames:
            if len(frame) % 2:
                raise InvalidInput(
                    f"a frame of {len(frame)} bytes is not 16-bit PCM (odd length); pass the binary "
                    "WebSocket message unmodified"
                )
        # The frames are s16le already, as a WAV's samples are on any host: written as they came.
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        self._write(data, frames=len(frames))

    def append_frames(self, frames: Sequence[bytes]) -> None:
        """`write_frames` for a caller that already checked every frame's size (the server's writer thread:
        only whole 20 ms frames are queued): the same write, without the per-frame checks, because it
        runs once per call per tick for every call the lab records."""
        if len(frames) == 1:
            self._write(frames[0], frames=1)
        else:
            self._write(b"".join(frames), frames=len(frames))

    def append_frame(self, frame: bytes) -> None:
        """One whole frame (its size already checked) from the server's loop: the shortest path there is,
        because it runs for every frame of every call. Unlike the other writes it takes no lock (a lock
        costs about as much as the rest of it): call it from one thread, never beside the other writes.

        The samples go through a map of the file's end (labkit.media.wav_tail: no system call) while
        there is room on the disk to reserve, else by one `os.write`."""
        tail = self._tail
        if tail is not None:
            if tail.put(frame):
                self.samples_written += len(frame) >> 1
                self.frames_written += 1
                return
            with self._lock:
                if not self._leave_tail():
                    self.frames_dropped += 1
                    return
        sizes = self._sizes
        if sizes is None or self.failed is not None or self._closed:
            self._write(frame, frames=1)  # no map, or failed or closed: the general path says what to do
            return
        try:
            written = os.write(self._fd, frame)
            if written != len(frame):  # part of it (a filling disk): the rest, or the reason it failed
                self._append(memoryview(frame)[written:])
        except Exception as exc:  # noqa: BLE001 - disk full, folder removed: report, never raise
            with self._lock:
                self._write_failed(exc, 1)
            return
        total = self.samples_written * 2 + len(frame)
        sizes[_RIFF_SIZE_AT // 4] = 36 + total  # two aligned 32-bit stores into the header's page
        sizes[_DATA_SIZE_AT // 4] = total
        self.samples_written = total >> 1
        self.frames_written += 1

    def write_samples(self, samples: ArrayLike) -> None:
        """Append int16 samples (floats in -1..1 are converted); does not count as a frame."""
        arr = as_int16(samples)
        if arr.ndim != 1:
            raise InvalidInput(f"the recorder takes mono (1-D) samples; got shape {arr.shape}")
        self._write(arr.astype(_LE_INT16, copy=False).tobytes(), frames=0)

    def _write(self, data: bytes | bytearray | memoryview, *, frames: int) -> None:
        """Append `data` then publish its size in the header (lock held): data first, so a header never
        counts bytes that are not on disk. A fault marks the recorder failed instead of raising."""
        with self._lock:
            if self._closed:
                self._check_open()
            if self.failed is not None or (self._tail is not None and not self._leave_tail()):
                self.frames_dropped += frames
                return
            size = len(data)
            if not size:
                return
            try:
                self._append(data)
                total = self.samples_written * 2 + size
                header = self._header
                if header is not None:
                    _SIZE.pack_into(header, _RIFF_SIZE_AT, 36 + total)
                    _SIZE.pack_into(header, _DATA_SIZE_AT, total)
                else:
                    self._set_sizes(total)
            except Exception as exc:  # noqa: BLE001 - disk full, folder removed, I/O error: report, never raise
                self._write_failed(exc, frames)
                return
            self.samples_written += size >> 1
            self.frames_written += frames

    def _leave_tail(self) -> bool:
        """Go on with plain `os.write` (lock held): the padding ahead of the data is dropped, so the file
        ends with its last sample. False if that failed (the recorder has failed, and says why)."""
        tail, self._tail = self._tail, None
        if tail is None:
            return True
        try:
            tail.finish()
        except Exception as exc:  # noqa: BLE001 - an I/O error: report, never raise
            self._fail(f"finishing the recording '{self.path}' failed after {self.duration:.1f} s: "
                       f"{_why(exc, self.path)}. The call goes on; what was recorded so far is kept")
            return False
        return True

    def _write_failed(self, exc: BaseException, frames: int) -> None:
        """A write failed (lock held): the frames are dropped, the file kept valid, the reason reported."""
        self.frames_dropped += frames
        self._fail(f"writing the recording '{self.path}' failed after {self.duration:.1f} s: "
                   f"{_why(exc, self.path)}. The call goes on; what was recorded so far is kept")

    def _append(self, data: bytes | bytearray | memoryview) -> None:
        """Write all of `data` at the end of the file: os.write may write part of it (a filling disk)."""
        written = os.write(self._fd, data)
        if written != len(data):
            view = memoryview(data)[written:]
            while view:
                view = view[os.write(self._fd, view):]

    def _set_sizes(self, data_bytes: int) -> None:
        """Patch the RIFF and data sizes in place: two stores into the mapped header, or one pwrite."""
        if self._header is not None:
            _SIZE.pack_into(self._header, _RIFF_SIZE_AT, 36 + data_bytes)
            _SIZE.pack_into(self._header, _DATA_SIZE_AT, data_bytes)
        else:
            os.pwrite(self._fd, wav_header(self.rate, data_bytes)[_RIFF_SIZE_AT:], _RIFF_SIZE_AT)

    def _release(self) -> None:
        """Unmap and close the file (errors ignored: the caller decides what they mean)."""
        tail, self._tail = self._tail, None
        if tail is not None:
            try:
                tail.finish()  # the padding goes: the file ends with its last sample
            except Exception:  # noqa: BLE001 - `_fail` repairs the sizes from what is on disk
                pass
        header, self._header = self._header, None
        sizes, self._sizes = self._sizes, None
        fd, self._fd = self._fd, -1
        if sizes is not None:
            sizes.release()  # a map with a view on it cannot be closed
        try:
            if header is not None:
                header.close()
        except Exception:  # noqa: BLE001
            pass
        try:
            if fd >= 0:
                os.close(fd)
        except OSError:
            pass

    def _fail(self, reason: str) -> None:
        """Stop recording, keep the file valid with what was written, and tell `on_error` once."""
        if self.failed is not None:
            return
        self.failed = reason
        self._release()
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
            self._release()  # the sizes are already right: nothing is left to write

    def __enter__(self) -> WavRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            self._release()

    def __repr__(self) -> str:
        state = "failed" if self.failed else "closed" if self._closed else "recording"
        return f"recorder {state}: {self.duration:.2f} s at {self.rate} Hz into {self.path}"

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
