"""The sandbox's view of its neighbours (labkit.media, labkit.server.signing), with small fallbacks.

Those modules are written concurrently with the sandbox. The sandbox uses them when they import and
falls back to the private minimal versions below when they do not, so that it never breaks because a
neighbour is missing or mid-edit. Each fallback does only what the sandbox needs and follows the
contract in docs/INTERFACES.md, so swapping in the real module changes nothing observable.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import os
import time
import uuid
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np

from labkit.errors import AudioError

L16_RATES = (8000, 16000, 24000)


# ---------------------------------------------------------------- audio decoding / resampling


def _fallback_resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    from scipy.signal import resample_poly

    if from_rate == to_rate:
        return np.asarray(samples, dtype=np.int16)
    g = gcd(int(from_rate), int(to_rate))
    out = resample_poly(np.asarray(samples, dtype=np.float64), to_rate // g, from_rate // g)
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


def _fallback_load(source: Any, rate: int) -> np.ndarray:
    import soundfile as sf

    if isinstance(source, tuple) and len(source) == 2:
        data, src_rate = np.asarray(source[0]), int(source[1])
    elif hasattr(source, "samples") and hasattr(source, "rate"):
        data, src_rate = np.asarray(source.samples), int(source.rate)
    else:
        if isinstance(source, (bytes, bytearray, memoryview)):
            handle: Any = io.BytesIO(bytes(source))
        else:
            path = Path(source)
            if not path.is_file():
                raise AudioError(f"Audio file {path} does not exist: check the path.")
            handle = str(path)
        try:
            data, src_rate = sf.read(handle, dtype="int16", always_2d=False)
        except Exception as exc:  # libsndfile raises its own error types
            raise AudioError(f"Could not decode audio ({exc}): use a 16-bit WAV or an MP3 file.") from None
    data = np.asarray(data)
    is_float = data.dtype.kind == "f"
    if data.ndim == 2:
        data = data.astype(np.float64).mean(axis=1)
    if is_float and data.size and np.abs(data).max() <= 1.0:
        # float arrays in [-1, 1] are full-scale audio, not int16 sample values
        data = data * 32767.0
    data = np.clip(np.rint(data), -32768, 32767).astype(np.int16)
    return _fallback_resample(data, src_rate, rate)


def load_audio(source: Any, rate: int) -> np.ndarray:
    """Decode `source` (path, file bytes, (samples, rate), or object with .samples/.rate) to int16 at `rate`."""
    try:
        from labkit.media.audio import load
    except ImportError:
        return _fallback_load(source, rate)
    return np.asarray(load(source, rate), dtype=np.int16)


def native_rate(source: Any) -> int | None:
    """The sample rate `source` already has, without decoding it twice; None when unknown."""
    if isinstance(source, tuple) and len(source) == 2:
        return int(source[1])
    if hasattr(source, "samples") and hasattr(source, "rate"):
        return int(source.rate)
    try:
        import soundfile as sf

        if isinstance(source, (bytes, bytearray, memoryview)):
            return int(sf.info(io.BytesIO(bytes(source))).samplerate)
        if isinstance(source, (str, os.PathLike)) and Path(source).is_file():
            return int(sf.info(str(source)).samplerate)
    except Exception:
        return None
    return None


# ---------------------------------------------------------------- L16 framing


def parse_content_type(text: str) -> int | None:
    """The rate in an 'audio/l16;rate=N' content type, or None when it is not one Vonage accepts."""
    compact = str(text or "").replace(" ", "").lower()
    for rate in L16_RATES:
        if compact == f"audio/l16;rate={rate}":
            return rate
    return None


# ---------------------------------------------------------------- recordings


class _FallbackRecording:
    """Minimal stand-in for labkit.media.recording.Recording: samples, rate, duration, save()."""

    def __init__(self, samples: np.ndarray, rate: int, **meta: Any):
        self.samples = np.asarray(samples, dtype=np.int16)
        self.rate = int(rate)
        self.path = meta.pop("path", None)
        for key, value in meta.items():
            setattr(self, key, value)

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate if self.rate else 0.0

    def save(self, path: str | os.PathLike) -> Path:
        import soundfile as sf

        sf.write(str(path), self.samples, self.rate, subtype="PCM_16")
        self.path = Path(path)
        return Path(path)

    def __repr__(self) -> str:
        return f"<Recording {self.duration:.2f} s at {self.rate} Hz>"


def make_recording(samples: np.ndarray, rate: int, **meta: Any) -> Any:
    """A labkit Recording of int16 `samples` at `rate`; metadata the class does not take is set after."""
    try:
        from labkit.media.recording import Recording
    except ImportError:
        return _FallbackRecording(samples, rate, **meta)
    try:
        params = inspect.signature(Recording).parameters
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        kwargs = {k: v for k, v in meta.items() if accepts_any or k in params}
        rec = Recording(np.asarray(samples, dtype=np.int16), int(rate), **kwargs)
    except Exception:
        return _FallbackRecording(samples, rate, **meta)
    for key, value in meta.items():
        if key not in kwargs:
            try:
                setattr(rec, key, value)
            except Exception:
                pass
    return rec


# ---------------------------------------------------------------- signed webhooks


def sign_webhook(body: bytes, secret: str, *, api_key: str, application_id: str) -> str:
    """HS256 JWT like Vonage's signed webhooks: iat, jti, iss 'Vonage', payload_hash = sha256(body)."""
    try:
        from labkit.server.signing import sign_webhook as real
    except ImportError:
        real = None
    if real is not None:
        return real(body, secret, api_key=api_key, application_id=application_id)
    import jwt

    claims = {
        "iat": int(time.time()),
        "jti": str(uuid.uuid4()),
        "iss": "Vonage",
        "payload_hash": hashlib.sha256(body).hexdigest(),
        "api_key": api_key,
        "application_id": application_id,
    }
    return jwt.encode(claims, secret, algorithm="HS256")
