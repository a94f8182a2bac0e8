"""LiveVoice.restart: when a page's microphone changes its way into the kernel (its direct socket opened or
closed), the cushion is sized from the new way's arrivals alone, and the delay figures are of it alone."""

from __future__ import annotations

import time

import numpy as np

from labkit.media.jitter import LiveVoice


def test_restart_forgets_the_old_ways_jitter_and_figures():
    queued: list[np.ndarray] = []
    voice = LiveVoice(lambda samples, rate: queued.append(samples), lambda: 0.0)
    piece = np.ones(320, dtype=np.int16)
    now = time.monotonic() - 0.4  # the push below arrives on this timeline, 20 ms after the last piece
    for i in range(20):  # 20 ms pieces, every fourth 60 ms late: the old way's jitter
        voice.jitter.arrive(0.02, now + i * 0.02 + (0.06 if i % 4 == 0 else 0.0))
    voice.push(piece, 16000, sent_ms=None)
    assert voice.cushion() > 0.05 and voice.figures()["mic_delay_ms"] is not None
    voice.restart()
    assert voice.cushion() == 0.0  # nothing measured on the new way yet
    assert voice.figures()["mic_delay_ms"] is None and voice.figures()["mic_delay_parts"] == ""
    assert voice.frames == 1  # the count of frames put into the call goes on
