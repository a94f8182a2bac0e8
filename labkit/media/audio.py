"""Audio in, audio out: decode files and bytes to int16 mono, resample, probe, synthesise.

Everything in labkit handles audio as a 1-D ``numpy.int16`` array plus a sample rate, because that
is what the Voice API's WebSocket carries (``audio/l16``). This module is the one place that turns
files, bytes and other people's arrays into that shape.

soundfile is imported inside the functions that need it so ``import labkit`` stays fast; resampling is
numpy's (polyphase.py: scipy's filter without scipy's 69 MB).
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from labkit.errors import AudioError, InvalidInput

if TYPE_CHECKING:  # pragma: no cover
    from numpy.typing import ArrayLike

__all__ = [
    "SUPPORTED",
    "AudioInfo",
    "AudioSource",
    "HasSamples",
    "as_int16",
    "load",
    "probe",
    "resample",
    "silence",
    "tone",
]


class HasSamples(Protocol):
    """Anything carrying int16 (or -1..1 float) ``samples`` at ``rate`` Hz, e.g. a Recording."""

    @property
    def samples(self) -> Any: ...

    @property
    def rate(self) -> int: ...


#: What :func:`load` accepts: a path, raw file bytes, ``(samples, rate)``, or anything with
#: ``.samples`` and ``.rate`` (a :class:`~labkit.media.recording.Recording`).
AudioSource = str | os.PathLike | bytes | bytearray | memoryview | tuple | HasSamples

#: Plain words for the formats that work, used in every error message.
SUPPORTED = "MP3 or 16-bit PCM WAV (8-bit, u-law and A-law WAV also work)"

# WAV codings the Voice API's stream action plays (and so does the lab): linear PCM 8/16-bit,
# G.711 u-law/A-law and Microsoft GSM. Anything else is refused with a reason.
_WAV_OK = {"PCM_16", "PCM_U8", "ULAW", "ALAW", "GSM610"}
_WAV_CONTAINERS = {"WAV", "WAVEX"}
_SUBTYPE_WORDS = {
    "PCM_24": "24-bit PCM",
    "PCM_32": "32-bit PCM",
    "PCM_S8": "signed 8-bit PCM",
    "FLOAT": "32-bit float",
    "DOUBLE": "64-bit float",
    "IMA_ADPCM": "IMA ADPCM",
    "MS_ADPCM": "Microsoft ADPCM",
}
_INT16_MAX = 32767
_INT16_MIN = -32768


@dataclass(frozen=True)
class AudioInfo:
    """What :func:`probe` found out about a file, and whether the Voice API can stream it."""

    path: Path
    format: str
    subtype: str
    rate: int
    channels: int
    duration: float
    playable: bool
    reason: str

    def __str__(self) -> str:
        verdict = "ok" if self.playable else f"NOT playable: {self.reason}"
        return (
            f"{self.path.name}: {self.format}/{self.subtype}, {self.rate} Hz, {self.channels} ch, "
            f"{self.duration:.2f} s: {verdict}"
        )


# --------------------------------------------------------------------------------------------
# conversions


def as_int16(samples: ArrayLike) -> np.ndarray:
    """Return ``samples`` as int16 without surprises.

    Floats are taken as full scale -1..1 (clipped, rounded); integer arrays must already fit int16,
    because guessing whether an int32 array is 16- or 32-bit scaled is how recordings get deafening.
    int16 input is returned as is (no copy).
    """
    arr = np.asarray(samples)
    if arr.dtype == np.int16:
        return arr
    if arr.dtype.kind == "f":
        scaled = np.rint(np.clip(np.nan_to_num(arr), -1.0, 1.0) * _INT16_MAX)
        return scaled.astype(np.int16)
    if arr.dtype.kind in "iu":
        if arr.size and (arr.min() < _INT16_MIN or arr.max() > _INT16_MAX):
            raise InvalidInput(
                f"integer samples of type {arr.dtype} go beyond the int16 range "
                f"({int(arr.min())}..{int(arr.max())}); pass int16 samples, or floats scaled to -1..1"
            )
        return arr.astype(np.int16)
    raise InvalidInput(f"samples of type {arr.dtype} are not audio; pass int16 samples or floats scaled to -1..1")


def _mono(arr: np.ndarray) -> np.ndarray:
    """Average channels of a (frames, channels) array; 1-D input passes through."""
    if arr.ndim == 1:
        return arr
    if arr.ndim != 2:
        raise InvalidInput(f"audio must be 1-D or (frames, channels); got an array of shape {arr.shape}")
    if arr.shape[1] == 1:
        return arr[:, 0]
    if arr.dtype.kind == "f":
        return arr.mean(axis=1)
    # Average in int32 and round, so identical channels mix back to exactly the same samples.
    return np.rint(arr.astype(np.int32).mean(axis=1)).astype(np.int16)


def _check_rate(rate: Any, what: str = "rate") -> int:
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise InvalidInput(f"{what} must be a positive whole number of Hz (e.g. 16000), not {rate!r}")
    return int(rate)


def resample(samples: ArrayLike, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample with a polyphase filter (``scipy.signal.resample_poly``'s, in numpy) at the reduced ratio.

    Polyphase is exact for the ratios telephony uses (8k/16k/24k/44.1k/48k) and fast enough for
    whole files. int16 in gives int16 out (rounded, clipped); floats stay floats of the same dtype.
    Equal rates return the input unchanged.
    """
    from_rate = _check_rate(from_rate, "from_rate")
    to_rate = _check_rate(to_rate, "to_rate")
    arr = np.asarray(samples)
    if from_rate == to_rate:
        return arr
    is_float = arr.dtype.kind == "f"
    if not is_float:
        arr = as_int16(arr)
    g = math.gcd(from_rate, to_rate)
    up, down = to_rate // g, from_rate // g
    if arr.shape[0] == 0:
        out_shape = (0,) + arr.shape[1:]
        return np.zeros(out_shape, dtype=arr.dtype)
    from labkit.media.polyphase import resample_poly

    out = resample_poly(arr.astype(np.float64), up, down)
    if is_float:
        return out.astype(arr.dtype, copy=False)
    return np.clip(np.rint(out), _INT16_MIN, _INT16_MAX).astype(np.int16)


# --------------------------------------------------------------------------------------------
# decoding


def _verdict(fmt: str, subtype: str) -> tuple[bool, str]:
    """Can the Voice API stream a file of this container/coding? (playable, reason if not)."""
    if fmt == "MP3":
        if subtype == "MPEG_LAYER_III":
            return True, ""
        layer = subtype.replace("MPEG_LAYER_", "layer ").replace("_", " ")
        return False, f"MPEG {layer} audio is not MP3 (layer III); re-encode it as MP3"
    if fmt in _WAV_CONTAINERS:
        if subtype in _WAV_OK:
            return True, ""
        words = _SUBTYPE_WORDS.get(subtype, subtype)
        return False, f"{words} WAV is not supported; convert it to 16-bit PCM WAV or MP3"
    return False, f"{fmt} files are not supported; convert it to {SUPPORTED}"


def _describe(source: Any) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"audio bytes ({len(source)} bytes)"
    return f"'{source}'"


def _open_info(src: Any, name: str) -> Any:
    """``soundfile.info`` with libsndfile's terse errors turned into advice."""
    import soundfile as sf

    try:
        return sf.info(src)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(
            f"cannot decode {name}: it is not an audio file libsndfile understands "
            f"({_libsndfile_words(exc)}). Use {SUPPORTED}."
        ) from exc


def _libsndfile_words(exc: BaseException) -> str:
    """libsndfile's own message without soundfile's '<_io.BytesIO object at 0x...>' prefix."""
    words = getattr(exc, "error_string", None) or str(exc)
    return str(words).strip().rstrip(".")


def _decode(source: Any) -> tuple[np.ndarray, int]:
    """Decode a path or file bytes to (int16 mono samples, native rate)."""
    import soundfile as sf

    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = _describe(source)
        if not data:
            raise AudioError(f"cannot decode {name}: the data is empty. Use {SUPPORTED}.")

        def opener() -> Any:
            return io.BytesIO(data)

    else:
        path = Path(os.fspath(source)).expanduser()
        name = f"'{path}'"
        text = os.fspath(source)
        if isinstance(text, str) and text.startswith(("http://", "https://")):
            raise AudioError(
                f"{name} is a URL; load() reads local files and bytes. Download it first and pass "
                "the path or the response bytes."
            )
        if not path.exists():
            raise AudioError(f"audio file {name} does not exist; check the path (cwd is '{Path.cwd()}')")
        if path.is_dir():
            raise AudioError(f"{name} is a directory; pass an audio file ({SUPPORTED})")

        def opener() -> Any:
            return str(path)

    info = _open_info(opener(), name)
    ok, reason = _verdict(info.format, info.subtype)
    if not ok:
        raise AudioError(f"cannot use {name}: {reason}.")
    try:
        # ONE whole-file read: chunked reads of VBR MP3 return corrupted samples (soundfile #402).
        data_2d, native = sf.read(opener(), dtype="int16", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"cannot decode {name}: {_libsndfile_words(exc)}. Use {SUPPORTED}.") from exc
    return _mono(data_2d), int(native)


def load(source: AudioSource, rate: int) -> np.ndarray:
    """Return ``source`` as int16 mono samples at ``rate`` Hz.

    ``source`` may be a path to an MP3/WAV, the raw bytes of such a file (what an HTTP fetch of a
    stream URL returns), a ``(samples, rate)`` tuple with int16 or -1..1 float samples, or any
    object with ``.samples`` and ``.rate`` (a Recording). Stereo is mixed to mono. Raises
    :class:`~labkit.errors.AudioError` naming the file and the formats that work.
    """
    rate = _check_rate(rate)
    if isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        samples, native = _decode(source)
    elif isinstance(source, tuple):
        if len(source) != 2:
            raise InvalidInput(f"an audio tuple must be (samples, rate); got a tuple of {len(source)} items")
        arr, native = source
        native = _check_rate(native, "the rate in (samples, rate)")
        samples = as_int16(_mono(np.asarray(arr)))
    elif hasattr(source, "samples") and hasattr(source, "rate"):
        native = _check_rate(source.rate, "the recording's rate")
        samples = as_int16(_mono(np.asarray(source.samples)))
    elif isinstance(source, np.ndarray):
        raise InvalidInput("a bare array has no sample rate; pass (samples, rate) so the audio can be resampled")
    else:
        raise InvalidInput(
            f"cannot load audio from a {type(source).__name__}; pass a path, file bytes, "
            "(samples, rate), or a Recording"
        )
    return resample(samples, native, rate)


def probe(path: str | os.PathLike) -> AudioInfo:
    """Describe an audio file and say whether the Voice API can stream it (for ``labkit doctor``).

    Unreadable content is reported (``playable=False`` with the reason) rather than raised, so a
    doctor can list every file; only a missing path raises :class:`~labkit.errors.AudioError`.
    """
    import soundfile as sf

    p = Path(os.fspath(path)).expanduser()
    if p.is_dir():
        raise AudioError(f"'{p}' is a directory; pass an audio file ({SUPPORTED})")
    if not p.is_file():
        raise AudioError(f"audio file '{p}' does not exist; check the path (cwd is '{Path.cwd()}')")
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError) as exc:
        return AudioInfo(
            path=p,
            format="unknown",
            subtype="unknown",
            rate=0,
            channels=0,
            duration=0.0,
            playable=False,
            reason=f"not an audio file libsndfile can read ({_libsndfile_words(exc)}); use {SUPPORTED}",
        )
    ok, reason = _verdict(info.format, info.subtype)
    if ok and info.frames == 0 and info.format in ("WAV", "WAVEX"):  # a header and no audio: nothing to play
        ok, reason = False, "the WAV file holds no samples (0 s of audio); record or export it again"
    return AudioInfo(
        path=p,
        format=info.format,
        subtype=info.subtype,
        rate=int(info.samplerate),
        channels=int(info.channels),
        duration=float(info.frames) / info.samplerate if info.samplerate else 0.0,
        playable=ok,
        reason=reason,
    )


# --------------------------------------------------------------------------------------------
# synthesis


def tone(freq: float, seconds: float, rate: int, level: float = 0.5) -> np.ndarray:
    """A pure sine as int16: a known signal for tests, pacing checks and notebook experiments."""
    rate = _check_rate(rate)
    if not 0 < freq < rate / 2:
        raise InvalidInput(f"a {freq} Hz tone cannot be represented at {rate} Hz; use 0 < freq < {rate / 2}")
    if seconds < 0:
        raise InvalidInput(f"seconds must be >= 0, not {seconds}")
    if not 0.0 <= level <= 1.0:
        raise InvalidInput(f"level is a fraction of full scale (0..1), not {level}")
    n = int(round(seconds * rate))
    t = np.arange(n, dtype=np.float64) / rate
    return np.rint(level * _INT16_MAX * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def silence(seconds: float, rate: int) -> np.ndarray:
    """Digital silence as int16 (all zeros), e.g. to pad or to test silence detection."""
    rate = _check_rate(rate)
    if seconds < 0:
        raise InvalidInput(f"seconds must be >= 0, not {seconds}")
    return np.zeros(int(round(seconds * rate)), dtype=np.int16)


def native_rate(source: object) -> int | None:
    """The sample rate `source` already has (a `(samples, rate)` pair, a Recording, file bytes or a path),
    read from its header without decoding it; None when unknown."""
    if isinstance(source, tuple) and len(source) == 2:
        return int(source[1])
    if hasattr(source, "samples") and hasattr(source, "rate"):
        return int(source.rate)
    import soundfile as sf

    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            return int(sf.info(io.BytesIO(bytes(source))).samplerate)
        if isinstance(source, (str, os.PathLike)) and Path(source).is_file():
            return int(sf.info(str(source)).samplerate)
    except (sf.LibsndfileError, RuntimeError, OSError):
        return None
    return None
