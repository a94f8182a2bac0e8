"""The growing end of a WAV being recorded, written through a memory map instead of one write(2) a frame.

Why: on the server's loop a frame's `os.write` is a system call that drops and re-takes the GIL; at a
few hundred calls that is the largest cost recording adds over a server that records nothing (issue 20:
the lab at 1.15-1.27x a bare server's CPU per frame, the lab without recording at 0.97-1.00x). Here a
frame is a copy into the page cache through a shared map of the file, with no system call at all, and
the header's sizes are stores into the same page cache, so the file on disk is a valid WAV after every
frame exactly as before: a killed process leaves its pages to the kernel, which writes them out.

The file is kept a valid RIFF at every moment by ending it with a ``JUNK`` chunk (the RIFF padding
chunk every WAV reader skips: libsndfile, Python's `wave`, browsers) that covers the space reserved
ahead of the data:

    RIFF <file-8> WAVE | fmt ... | data <D> <D bytes of samples> | JUNK <rest-8> <zeros ...>

A frame is written so that the data size never counts a byte not yet copied (a process killed mid-copy
must not leave a torn last frame counted as audio): the frame's samples after its first 8 bytes go first
(inside the old padding, unread), then the next ``JUNK`` header after them, then the frame's first 8
bytes over the old padding's header, and only then the data size. Between those last two stores a
reader sees the data followed by a chunk header made of samples: `wave` stops at the data chunk and
libsndfile skips it (tried with random and huge sizes), so the file still reads whole.

Space is reserved a `WINDOW` at a time by writing zeros
(`reserve`: a full disk is then an error from write(2), up front, never a SIGBUS on a store into a
sparse page), and only that window of the file is mapped, so memory stays bounded per call. `finish()`
drops the padding: a finished recording is the canonical 44-byte-header WAV.

Why zeros and not `posix_fallocate`: measured on this project's ext4 (600 files, interleaved), reserving
64 KiB took p50/p99 30/169 us with zeros and 18/77 us with fallocate, but giving the unused part back at
the end took 14/83 us against 67/3877 us: fallocated extents cost a journal transaction to free, and the
server's loop waits for it (glibc's own fallocate fallback writes zeros too).

The one thing a map cannot survive is another program truncating the file under it (a store past the
new end is a SIGBUS): recordings are the lab's own files; `close` and any fault leave the map first.
"""

from __future__ import annotations

import mmap
import os
import struct
from typing import Any

HEADER_BYTES = 44
WINDOW = 64 * 1024  # bytes mapped and reserved at once (2 s of 16 kHz audio; a multiple of the map granule)
GROW = WINDOW
_GRANULE = mmap.ALLOCATIONGRANULARITY
_PAD = struct.Struct("<4sI")  # a chunk header: id, size
_pack_pad = _PAD.pack_into
_RIFF_WORD, _DATA_WORD = 1, 10  # the header's RIFF and data sizes as 32-bit words (offsets 4 and 40)


_ZEROS = bytes(WINDOW)


def reserve(fd: int, at: int, size: int) -> None:
    """Make the file `size` bytes longer from `at` (its end) with zeros, so that the disk blocks are
    accounted now; raises OSError (ENOSPC...) if they cannot be, leaving the file as it was."""
    written = 0
    try:
        while written < size:
            step = os.pwrite(fd, memoryview(_ZEROS)[:min(size - written, len(_ZEROS))], at + written)
            if step <= 0:
                raise OSError(28, "No space left on device")
            written += step
    except OSError:
        os.ftruncate(fd, at)  # what part of it landed goes again: the padding never covers a hole
        raise


class MappedTail:
    """Appends whole frames to a WAV whose 44-byte header is mapped as 32-bit words (`sizes`).

    `put(frame)` returns False when the frame could not go through the map (no room could be reserved
    on the disk, or a frame bigger than the window): the caller then `finish()`es and writes on with
    plain `os.write`, where a full disk is reported as it always was."""

    def __init__(self, fd: int, sizes: memoryview, data_bytes: int = 0) -> None:
        self.fd = fd
        self.sizes = sizes
        self.end = HEADER_BYTES + data_bytes  # where the next sample byte goes
        self.file_bytes = os.fstat(fd).st_size
        self._map: mmap.mmap | None = None
        self._base = 0  # file offset of the mapped window
        self._limit = 0  # file offset up to which the window may be written (its end, or the file's)
        if not self._reserve(self.end + _PAD.size):
            raise OSError("no room to reserve for the recording")
        self._pad(self.end)

    def put(self, frame: Any) -> bool:
        """Append one frame (bytes); False if it must go by `os.write` instead (see the class).

        Bytes slices, not memoryviews: for a 640-byte frame they cost 0.38 us against 0.52 (measured), and
        this runs for every frame of every call on the server's loop."""
        end = self.end
        n = len(frame)
        new_end = end + n
        if new_end + 8 > self._limit and not self._reserve(new_end + 8):  # 8: a chunk header (_PAD.size)
            return False
        window, at = self._map, end - self._base
        if n > 8:
            window[at + 8:at + n] = frame[8:]  # into the old padding: nothing reads it
            _pack_pad(window, at + n, b"JUNK", self.file_bytes - new_end - 8)
            window[at:at + 8] = frame[:8]  # over the old padding's header
        else:  # a frame no longer than a chunk header (never a 20 ms frame)
            _pack_pad(window, at + n, b"JUNK", self.file_bytes - new_end - 8)
            window[at:at + n] = frame
        self.sizes[_DATA_WORD] = new_end - HEADER_BYTES  # last: the frame is whole before it counts
        self.end = new_end
        return True

    def _pad(self, at: int) -> None:
        """Write the padding chunk's header at `at` (mapped) and the RIFF size for the whole file."""
        assert self._map is not None
        _PAD.pack_into(self._map, at - self._base, b"JUNK", self.file_bytes - at - _PAD.size)
        self.sizes[_RIFF_WORD] = self.file_bytes - 8

    def _reserve(self, need: int) -> bool:
        """Map a window holding [end, need), reserving disk space first when the file is too short."""
        base = self.end - self.end % _GRANULE
        if need - base > WINDOW:
            return False  # a frame this big does not fit a window: not the loop's 20 ms frames
        want = base + WINDOW
        if want > self.file_bytes:
            grow = max(GROW, want - self.file_bytes)
            try:
                reserve(self.fd, self.file_bytes, grow)
            except OSError:
                return False  # the disk is (nearly) full, or the file system refuses: os.write says which
            self.file_bytes += grow  # the RIFF size still ends before the new space: readers stop there
        self._unmap()
        try:
            self._map = mmap.mmap(self.fd, WINDOW, offset=base)
        except (OSError, ValueError):
            return False
        self._base, self._limit = base, base + WINDOW
        self._pad(self.end)
        return True

    def _unmap(self) -> None:
        window, self._map = self._map, None
        if window is not None:
            window.close()

    def finish(self) -> None:
        """Drop the padding (the file ends with its last sample) and leave the map; the file offset is
        put at the end, so plain `os.write` goes on from there."""
        self.sizes[_RIFF_WORD] = self.end - 8  # first: a reader now stops before the padding
        self._unmap()
        os.ftruncate(self.fd, self.end)
        self.file_bytes = self.end
        os.lseek(self.fd, self.end, os.SEEK_SET)
