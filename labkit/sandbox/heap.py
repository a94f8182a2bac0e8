"""Start-up objects out of the garbage collector's way while a sandbox runs (`gc.freeze`).

Why: CPython's full collection scans every tracked object, and a process that has imported numpy,
requests, cryptography, Flask and the SDK holds about 127,000 of them, none of which will ever be
garbage (modules, classes, functions). Measured with bench/lab/bench_call_setup.py: a full collection
came about once in 50 calls and took 34-101 ms, holding the GIL, so that call's set-up was that much
late (the issue's "one call in 50 is about 110 ms late"; gc.callbacks timed each pass, and the late
call's stages all waited for it). Once the sandbox has warmed up, `hold()` moves everything alive into
the permanent generation, which collections skip; objects made later (calls, events) are collected
as before. `release()` (at stop, when no other sandbox of the process still runs) gives them back,
so cycles that became garbage meanwhile (a stopped sandbox's own) are collected again.

`return_big_buffers()` (the `labkit sandbox` process only) keeps glibc from holding freed audio buffers.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
import threading

_lock = threading.Lock()
_holders = 0


def hold() -> None:
    """Freeze what is alive now (a sandbox finished starting)."""
    global _holders
    with _lock:
        _holders += 1
        gc.freeze()


def release() -> None:
    """One sandbox stopped: when none still holds, unfreeze (the next full collection sees all again)."""
    global _holders
    with _lock:
        if _holders <= 0:
            return
        _holders -= 1
        if _holders == 0:
            gc.unfreeze()


M_MMAP_THRESHOLD = -3  # mallopt's parameter number (glibc malloc.h)
BIG_BUFFER_BYTES = 128 * 1024  # glibc's own starting threshold, held there


def return_big_buffers() -> bool:
    """Pin glibc's mmap threshold at 128 KB, so every buffer that large (queued speech, heard blocks) is
    mapped on its own and goes back to the system the moment it is freed. True if it was set.

    Why: glibc raises the threshold to the size of each large block freed (up to 32 MB) and its heap-trim
    threshold to twice that, so after the first 20 s WAV a `say` queued (3.8 MB at 48 kHz) the next ones
    came from the per-thread arenas (a werkzeug thread per request), and freeing them on the clock thread
    left the space in those arenas; malloc_trim does not trim a thread arena's top. Measured on the fault
    case "speech queued up to the cap ... gives its memory back" (/proc status and mallinfo2 in the
    process): default 88 -> 103 MB after the call with 12.8 MB free inside malloc (33 MB kept once with
    one arena); pinned 87 -> 94 -> 94 -> 94 over three calls, peak 144-149 MB instead of 151-182.
    Setting any threshold turns the dynamic rule off (mallopt(3)). Process-wide, so only the standalone
    sandbox calls it, never a notebook's kernel that merely imports the lab.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc: nothing to pin
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, BIG_BUFFER_BYTES))
