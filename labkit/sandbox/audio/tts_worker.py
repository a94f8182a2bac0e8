"""The speech worker: espeak-ng's library (from the `espeakng-loader` wheel) in a process of its own.

Run as a plain script (`python tts_worker.py`), standard library only, so it starts fast. Why a process:
espeak-ng keeps synthesis state in C statics that no API resets (the pitch "flutter" index, the
harmonic double buffer, ...), so in one process the same text comes out slightly different each time.
The worker initialises the library once and then forks a child per utterance: every child starts from
the same state, so the same text always gives the same samples. Where there is no fork (Windows) it
synthesizes in place, and only the first utterance of a text is guaranteed to match other runs.

Protocol on stdin/stdout: the worker first writes its sample rate (int32, <= 0 when the library failed).
Each request is one JSON line {"text", "voice", "wpm"}; each answer is int32 status (0 = ok) and int32
byte count, then that many bytes of int16 mono samples. EOF on stdin ends the worker.
"""

from __future__ import annotations

import ctypes
import json
import os
import struct
import sys

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_DONT_EXIT = 0x8000
CHARS_UTF8 = 1
SSML = 0x10
PARAM_RATE = 1
POS_CHARACTER = 1

CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


def _load() -> tuple[ctypes.CDLL, int]:
    import espeakng_loader

    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(),
                                 INITIALIZE_DONT_EXIT)
    return lib, rate


def synthesize(lib: ctypes.CDLL, request: dict) -> bytes:
    """int16 samples for one request (voice, then words per minute, then the text)."""
    chunks: list[bytes] = []

    def collect(wav: ctypes.Array, count: int, events: int) -> int:
        if count > 0 and wav:
            chunks.append(ctypes.string_at(wav, count * 2))
        return 0

    callback = CALLBACK(collect)
    lib.espeak_SetSynthCallback(callback)
    voice = str(request.get("voice") or "en-us").lower()
    for name in (voice, voice.split("-")[0], "en-us"):
        if lib.espeak_SetVoiceByName(name.encode()) == 0:
            break
    lib.espeak_SetParameter(PARAM_RATE, int(request.get("wpm") or 165), 0)
    text = str(request.get("text") or "")
    data = text.encode("utf-8") + b"\0"
    flags = CHARS_UTF8 | (SSML if "<" in text else 0)
    if lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0, flags, None, None) != 0:
        raise OSError("espeak_Synth failed")
    return b"".join(chunks)


def _answer(out: object, status: int, payload: bytes) -> None:
    out.write(struct.pack("<ii", status, len(payload)) + payload)
    out.flush()


def main() -> int:
    out, inp = sys.stdout.buffer, sys.stdin.buffer
    try:
        lib, rate = _load()
    except Exception:
        lib, rate = None, -1
    out.write(struct.pack("<i", rate))
    out.flush()
    if lib is None or rate <= 0:
        return 1
    forks = hasattr(os, "fork")
    for line in inp:
        try:
            request = json.loads(line)
        except ValueError:
            _answer(out, 2, b"")
            continue
        if not forks:
            try:
                _answer(out, 0, synthesize(lib, request))
            except Exception:
                _answer(out, 1, b"")
            continue
        pid = os.fork()
        if pid == 0:  # the child: synthesize from the pristine state, answer, and leave at once
            try:
                _answer(out, 0, synthesize(lib, request))
                code = 0
            except Exception:
                _answer(out, 1, b"")
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        if status != 0 and os.WIFSIGNALED(status):  # the child died before answering
            _answer(out, 3, b"")
    return 0


if __name__ == "__main__":
    sys.exit(main())
