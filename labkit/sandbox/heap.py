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
"""

from __future__ import annotations

import gc
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
