"""What a running sandbox costs its process: no scipy (69 MB of libraries) before or after a call that
speaks, and start-up objects kept out of full garbage collections while it runs (their passes were the
~100 ms call set-up outliers; labkit/sandbox/heap.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

CALLER = "447700900001"


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="reads /proc/PID/maps (Linux)")
def test_labkit_sandbox_never_loads_scipy_for_a_call_that_speaks(sb, app) -> None:
    """`labkit sandbox` resamples espeak-ng's 22.05 kHz speech to the call's rate with numpy alone."""
    pid = sb.proc.pid
    assert "/numpy/" in _maps(pid)  # the maps are read right: the mixer's numpy is there
    assert "/scipy/" not in _maps(pid)
    app.nccos[CALLER] = [{"action": "talk", "text": "Hello, the sandbox speaks without scipy."}]
    phone = sb.remote.phone(CALLER).set(answer_after=0)
    call = sb.remote.dial(CALLER)
    view = sb.remote.call(call["uuid"], until="ended", timeout=60)
    assert view["status"] == "completed"
    heard = phone.heard_in(call["uuid"])
    assert np.abs(heard.samples.astype(np.int32)).max() > 1000  # it spoke, so it resampled
    assert "/scipy/" not in _maps(pid)


def test_a_running_sandbox_freezes_start_up_objects_and_gives_them_back_at_stop(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import gc, time
        from labkit.sandbox import Sandbox
        sb = Sandbox(home={str(tmp_path)!r}).start()
        deadline = time.monotonic() + 60
        while not sb.ready and time.monotonic() < deadline:
            time.sleep(0.05)
        print(gc.get_freeze_count())
        sb.stop()
        print(gc.get_freeze_count())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    running, stopped = (int(n) for n in out.stdout.split())
    assert running > 10000 and stopped == 0
