"""Call audio: decode and resample (``audio``), 20 ms WebSocket frames (``frames``), real-time
sending (``pacer``), crash-safe recording (``recorder``), and notebook-friendly ``Recording``.

Names are imported on first use so ``import labkit.media`` does not pull in numpy, scipy, soundfile
or matplotlib before they are needed.

May import: the foundations only (labkit.errors, labkit.config, ...).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from labkit.media.audio import AudioInfo, as_int16, load, probe, resample, silence, tone
    from labkit.media.frames import (
        FRAME_MS,
        RATES,
        content_type,
        frame_bytes,
        frame_samples,
        from_frames,
        parse_content_type,
        to_frames,
    )
    from labkit.media.pacer import PacedSender, PacingStats, PlayHandle
    from labkit.media.recorder import WavRecorder
    from labkit.media.recording import Recording

_EXPORTS = {
    "AudioInfo": "audio",
    "as_int16": "audio",
    "load": "audio",
    "probe": "audio",
    "resample": "audio",
    "silence": "audio",
    "tone": "audio",
    "FRAME_MS": "frames",
    "RATES": "frames",
    "content_type": "frames",
    "frame_bytes": "frames",
    "frame_samples": "frames",
    "from_frames": "frames",
    "parse_content_type": "frames",
    "to_frames": "frames",
    "PacedSender": "pacer",
    "PacingStats": "pacer",
    "PlayHandle": "pacer",
    "WavRecorder": "recorder",
    "Recording": "recording",
}

__all__ = [
    "AudioInfo",
    "FRAME_MS",
    "PacedSender",
    "PacingStats",
    "PlayHandle",
    "RATES",
    "Recording",
    "WavRecorder",
    "as_int16",
    "content_type",
    "frame_bytes",
    "frame_samples",
    "from_frames",
    "load",
    "parse_content_type",
    "probe",
    "resample",
    "silence",
    "to_frames",
    "tone",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'labkit.media' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"labkit.media.{module}"), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
