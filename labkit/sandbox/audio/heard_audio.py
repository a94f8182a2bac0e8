"""What a virtual phone heard: 20 ms frames sealed into blocks, the oldest spilled to a temporary file.

Kept apart from labkit.sandbox.engine.phones (the phone's behaviour), which appends to it on the clock's thread
and cuts recordings out of it.
"""

from __future__ import annotations

import bisect
import os
from typing import Any

import numpy as np

__all__ = ["DEFAULT_MEMORY_SECONDS", "HeardAudio"]

DEFAULT_MEMORY_SECONDS = 180  # LABKIT_PHONE_MEMORY_SECONDS: heard audio kept in memory per phone


class _Spilled:
    """A sealed block that lives in the spill file: `n` samples at sample offset `at`."""

    __slots__ = ("at", "size")

    def __init__(self, at: int, size: int) -> None:
        self.at = at
        self.size = size


class HeardAudio:
    """What a phone heard: 20 ms frames sealed into 10 s blocks, so a window near the end (a live
    waveform, one call's segment) is cut from a few blocks instead of copying the whole history.

    Past `memory_seconds` the oldest blocks spill to an anonymous temporary file under LABKIT_HOME (gone
    when the phone forgets or the process ends), so a phone in a long call holds a few minutes in
    memory and `range()` still reads all of it. If the disk refuses, blocks simply stay in memory.
    """

    BLOCK_FRAMES = 500

    def __init__(self, memory_seconds: int | None = None) -> None:
        from labkit.config import bound

        self.chunks: list[np.ndarray | _Spilled] = []
        self.starts: list[int] = []  # sample position of each chunk
        self.sealed = 0  # chunks before this index are whole blocks
        self.spilled = 0  # chunks before this index are in the spill file
        self.length = 0
        seconds = memory_seconds if memory_seconds is not None else bound("LABKIT_PHONE_MEMORY_SECONDS",
                                                                          DEFAULT_MEMORY_SECONDS)
        self.memory_blocks = max(1, -(-seconds * 50 // self.BLOCK_FRAMES))  # 50 frames a second
        self._file: Any = None
        self._file_samples = 0
        self.spill_error: str | None = None

    def append(self, frame: np.ndarray) -> None:
        self.chunks.append(frame)
        self.starts.append(self.length)
        self.length += frame.size
        if len(self.chunks) - self.sealed >= self.BLOCK_FRAMES:
            block = np.concatenate(self.chunks[self.sealed:])
            del self.chunks[self.sealed:]
            del self.starts[self.sealed + 1:]
            self.chunks.append(block)
            self.sealed += 1
            while self.sealed - self.spilled > self.memory_blocks and self.spill_error is None:
                self._spill_oldest()

    def _spill_oldest(self) -> None:
        import tempfile

        from labkit.config import state_dir

        block = self.chunks[self.spilled]
        assert isinstance(block, np.ndarray)
        data = block.astype("<i2", copy=False).tobytes()
        try:
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="labkit-heard-", dir=state_dir())
            self._file.seek(self._file_samples * 2)
            self._file.write(data)
            self._file.flush()
        except OSError as exc:
            self.spill_error = f"heard audio stays in memory: the spill file cannot be written ({exc})"
            return
        self.chunks[self.spilled] = _Spilled(self._file_samples, block.size)
        self._file_samples += block.size
        self.spilled += 1

    def _read(self, chunk: np.ndarray | _Spilled) -> np.ndarray:
        if isinstance(chunk, np.ndarray):
            return chunk
        data = os.pread(self._file.fileno(), chunk.size * 2, chunk.at * 2)
        return np.frombuffer(data, dtype="<i2").astype(np.int16, copy=False)

    def range(self, start: int, end: int) -> np.ndarray:
        """A copy of samples [start, end)."""
        start, end = max(0, start), min(end, self.length)
        if end <= start:
            return np.zeros(0, dtype=np.int16)
        first = bisect.bisect_right(self.starts, start) - 1
        last = bisect.bisect_left(self.starts, end)
        data = np.concatenate([self._read(c) for c in self.chunks[first:last]])
        offset = self.starts[first]
        return data[start - offset:end - offset]

    @property
    def memory_bytes(self) -> int:
        return sum(c.nbytes for c in self.chunks if isinstance(c, np.ndarray))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
