"""The Voice API's WebSocket audio framing: 20 ms of 16-bit little-endian linear PCM per message.

Vonage sends and expects exactly one 20 ms frame per binary message (320 bytes at 8 kHz, 640 at
16 kHz, 960 at 24 kHz); a frame of any other size is dropped by the platform. These helpers keep
that arithmetic in one place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from labkit.errors import InvalidInput, SocketError

if TYPE_CHECKING:  # pragma: no cover
    from numpy.typing import ArrayLike

__all__ = [
    "FRAME_MS",
    "RATES",
    "SAMPLE_WIDTH",
    "content_type",
    "frame_bytes",
    "frame_samples",
    "from_frames",
    "parse_content_type",
    "to_frames",
]

FRAME_MS = 20
RATES = (8000, 16000, 24000)
SAMPLE_WIDTH = 2  # bytes per sample: 16-bit linear PCM

_ALLOWED = ", ".join(f"audio/l16;rate={r}" for r in RATES)
_CT = re.compile(r"^\s*audio\s*/\s*l16\s*;\s*rate\s*=\s*(\d+)\s*$", re.IGNORECASE)
_LE_INT16 = np.dtype("<i2")


def _check_rate(rate: object) -> int:
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or int(rate) not in RATES:
        raise InvalidInput(f"the Voice API streams audio at {', '.join(map(str, RATES))} Hz, not {rate!r}")
    return int(rate)


def frame_samples(rate: int) -> int:
    """Samples in one 20 ms frame (160, 320 or 480)."""
    return _check_rate(rate) * FRAME_MS // 1000


def frame_bytes(rate: int) -> int:
    """Bytes in one 20 ms frame (320, 640 or 960): the only message size the platform accepts."""
    return frame_samples(rate) * SAMPLE_WIDTH


def content_type(rate: int) -> str:
    """The ``contentType`` of a websocket endpoint, e.g. ``"audio/l16;rate=16000"``."""
    return f"audio/l16;rate={_check_rate(rate)}"


def parse_content_type(text: object) -> int:
    """Return the rate named by a content type such as ``"Audio/L16; rate=16000"``.

    Spaces and case are forgiven because people type these by hand; anything that is not L16 at
    a supported rate raises :class:`~labkit.errors.SocketError` naming the allowed values.
    """
    m = _CT.match(text) if isinstance(text, str) else None
    if m is None or int(m.group(1)) not in RATES:
        raise SocketError(f"unsupported audio content type {text!r}; the Voice API WebSocket accepts {_ALLOWED}")
    return int(m.group(1))


def to_frames(samples: ArrayLike, rate: int) -> list[bytes]:
    """Split int16 mono samples into 20 ms s16le frames; the last frame is zero-padded.

    Float samples (-1..1) are converted to int16 first. Empty input gives no frames.
    """
    from labkit.media.audio import as_int16

    n = frame_samples(rate)
    arr = as_int16(samples)
    if arr.ndim != 1:
        raise InvalidInput(f"to_frames needs mono (1-D) samples; got shape {arr.shape}")
    if arr.size % n:
        arr = np.concatenate([arr, np.zeros(n - arr.size % n, dtype=np.int16)])
    data = arr.astype(_LE_INT16, copy=False).tobytes()
    step = n * SAMPLE_WIDTH
    return [data[i : i + step] for i in range(0, len(data), step)]


def from_frames(frames: Iterable[bytes | bytearray | memoryview]) -> np.ndarray:
    """Join s16le frames back into int16 samples (native byte order)."""
    data = b"".join(bytes(f) for f in frames)
    if len(data) % SAMPLE_WIDTH:
        raise SocketError(
            f"audio frames hold {len(data)} bytes, an odd count, so they are not 16-bit PCM; "
            "check that binary messages are passed through unmodified"
        )
    return np.frombuffer(data, dtype=_LE_INT16).astype(np.int16)
