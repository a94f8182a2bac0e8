"""labkit.waits: a blocking wait in a notebook shows one line that ticks, then says how it ended."""

from __future__ import annotations

import re

import jupyter_client
import pytest

from labkit import waits


def test_watchers_see_a_wait_start_and_end_with_its_outcome():
    seen: list[tuple[str, str | None]] = []
    unwatch = waits.watch(lambda w: seen.append((w.what, w.outcome)))
    try:
        with waits.waiting("'answered' on call 12345678", 30):
            assert [w.what for w in waits.current()] == ["'answered' on call 12345678"]
            assert "waiting for 'answered' on call 12345678: 0 s of 30 s" in waits.current()[0].line()
        with pytest.raises(TimeoutError), waits.waiting("'input'", 1):
            raise TimeoutError("No 'input' event within 1 s")
    finally:
        unwatch()
    assert seen == [("'answered' on call 12345678", None), ("'answered' on call 12345678", "\u2713 got 'answered' "
                    "on call 12345678"), ("'input'", None), ("'input'", "\u2717 no 'input'")]
    assert not waits.current()


def test_a_long_wait_in_a_kernel_shows_a_ticking_line_in_its_cell():
    km, kc = jupyter_client.manager.start_new_kernel(kernel_name="python3")
    try:
        displays: list[tuple[str, str]] = []

        def hook(msg: dict) -> None:
            if msg["msg_type"] in ("display_data", "update_display_data"):
                displays.append((msg["msg_type"], msg["content"]["data"]["text/plain"]))

        reply = kc.execute_interactive(
            "import time\nfrom labkit.waits import waiting\nwith waiting(\"'completed' on call abcd1234\", 10):\n"
            "    time.sleep(2.6)\n", timeout=60, output_hook=hook)
        assert reply["content"]["status"] == "ok"
    finally:
        km.shutdown_kernel(now=True)
    kinds = [kind for kind, _text in displays]
    assert kinds[0] == "display_data" and kinds.count("display_data") == 1  # one line, rewritten in place
    assert re.search(r"waiting for 'completed' on call abcd1234: \d+ s of 10 s", displays[0][1]), displays
    assert displays[-1][0] == "update_display_data"
    assert re.fullmatch(r"\u2713 got 'completed' on call abcd1234 after \d+\.\d s", displays[-1][1]), displays
