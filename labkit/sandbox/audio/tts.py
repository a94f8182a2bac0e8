"""Real speech for `talk`: espeak-ng's library as the `espeakng-loader` wheels ship it (the library and
its voice data inside the wheel: pip only, no system package, nothing downloaded at run time).

No maintained Python binding synthesizes with those wheels (the packages that use them, phonemizers,
only ask for phonemes), so tts_worker.py is ctypes glue over espeak-ng's stable C API (`speak_lib.h`),
run in a worker process that forks per utterance: the same text always gives the same samples (why a
process: see tts_worker.py). One worker per Python process, started by `warm_up()` when a sandbox
starts (about a second, once), so its cost never falls inside a call; it exits with the process.

Wheels exist for Linux x86-64, macOS arm64 and Windows x86-64. Elsewhere, when the worker cannot start,
or with `LABKIT_SANDBOX_TTS=babble`, `speak()` returns None and the sandbox uses its babble.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger("labkit.sandbox.audio.tts")

WORDS_PER_MINUTE = 165  # a calm prompt voice (espeak-ng's default is 175)
DEFAULT_VOICE = "en-us"
START_TIMEOUT = 20.0  # real seconds for the worker to load the library
WORKER = Path(__file__).with_name("tts_worker.py")


def wanted() -> bool:
    """False when LABKIT_SANDBOX_TTS asks for the babble."""
    return os.environ.get("LABKIT_SANDBOX_TTS", "").strip().lower() not in ("babble", "off", "none")


class _Worker:
    """The worker process and the pipe protocol (one request at a time)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-I", str(WORKER)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        header = self._read(4)
        self.rate = struct.unpack("<i", header)[0] if header is not None else -1
        if self.rate <= 0:
            self.close()
            raise OSError("espeak-ng did not load (no espeakng-loader wheel for this platform?)")

    def _read(self, n: int) -> bytes | None:
        data = b""
        stdout = self.proc.stdout
        assert stdout is not None
        while len(data) < n:
            chunk = stdout.read(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def synth(self, text: str, voice: str | None) -> np.ndarray:
        request = {"text": text, "voice": (voice or DEFAULT_VOICE).lower(), "wpm": WORDS_PER_MINUTE}
        stdin = self.proc.stdin
        assert stdin is not None
        stdin.write(json.dumps(request).encode() + b"\n")
        stdin.flush()
        head = self._read(8)
        if head is None:
            raise OSError("the speech worker exited")
        status, size = struct.unpack("<ii", head)
        body = self._read(size) if size else b""
        if status != 0 or body is None:
            raise OSError(f"the speech worker could not say {text[:40]!r} (status {status})")
        return np.frombuffer(body, dtype="<i2").astype(np.int16)

    def close(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(5)


_lock = threading.Lock()
_worker: _Worker | None = None
_failed: str | None = None


def _get() -> _Worker | None:
    global _worker, _failed
    if _worker is None and _failed is None:
        try:
            _worker = _Worker()
            atexit.register(_shutdown)
        except Exception as exc:
            _failed = f"{exc.__class__.__name__}: {exc}"
            log.info("espeak-ng speech is not available (%s): talk uses the babble", _failed)
    return _worker


def _shutdown() -> None:
    global _worker
    with _lock:
        if _worker is not None:
            _worker.close()
            _worker = None


def available() -> bool:
    """The speech engine runs here (starting its worker if needed)."""
    if not wanted():
        return False
    with _lock:
        return _get() is not None


def warm_up() -> bool:
    """Start the worker and speak once (outside any call), so the first `talk` costs no warm-up."""
    return speak("Ready.", 16000) is not None


def speak(text: str, rate: int, language: str | None = None) -> np.ndarray | None:
    """int16 speech for `text` (plain text or SSML) at `rate`, or None when there is no engine."""
    global _worker
    if not wanted():
        return None
    with _lock:
        worker = _get()
        if worker is None:
            return None
        try:
            audio = worker.synth(text, language)
        except OSError as exc:
            log.warning("speech worker failed (%s); restarting it on the next talk", exc)
            worker.close()
            _worker = None
            return None
        native = worker.rate
    if audio.size == 0 or native == rate:
        return audio
    from labkit.media.audio import resample

    return resample(audio, native, rate)
