"""Checks on audio that went through the paced sender and the sandbox's clock, shared by the tests."""

from __future__ import annotations

import numpy as np

from labkit.media.frames import frame_samples
from labkit.media.recording import Recording


def without_silent_ticks(samples: np.ndarray, rate: int) -> np.ndarray:
    """The audio with every all-zero 20 ms tick taken out: the ticks where the platform's buffer ran dry.

    On a loaded machine, with the sandbox faster than real time, the lab's sender can stall for longer
    than the platform's jitter buffer, and the platform then plays silence until audio arrives, as Vonage
    does. Where those gaps fall depends on the machine, so a test of *what* was heard takes them out."""
    n = frame_samples(rate)
    blocks = samples[: samples.size // n * n].reshape(-1, n)
    return blocks[np.abs(blocks.astype(np.int32)).max(axis=1) > 0].ravel()


def assert_heard_in_order(heard: Recording, said: Recording, what: str, *, at_least: float = 0.9) -> None:
    """`said` is in `heard`: one correlation over the whole above 0.8, or, for audio that came with gaps,
    all but a tenth of its 0.1 s pieces found in order (`Recording.coverage`): the plugin's own rule for
    `assert_heard_audio`.

    Why both: a live path on a loaded machine (a stalled sender, a page's backlog dropping its oldest frames
    to stay live) leaves a gap and shifts the rest, which takes a whole-file correlation to 0.6 although
    every piece that arrived is right; and a short voice whose last piece the window cut reads 0.97 whole
    with one of its eight pieces unmatched. What was wrong or missing still fails both."""
    whole = heard.correlate(said)
    if whole > 0.8:
        return
    share = heard.coverage(said)
    assert share >= at_least, (f"expected {what}: one correlation over the whole {whole:.2f} (above 0.8), "
                               f"and {share:.0%} of its 0.1 s pieces found in order (at least {at_least:.0%})")


def assert_live_voice_heard(pieces: list[float], dropped: int, sent: int, what: str) -> None:
    """A page's microphone, scored a quarter second at a time against the WAV it said (`pieces`, best copy
    each): every quarter there in part (> 0.5), and all but one clean (> 0.8). The browser's own voice
    processing left one quarter at 0.60-0.73 in some runs, in every copy; a transport fault leaves a piece out.
    When the jitter buffer (labkit/media/jitter.py) says it dropped frames to stay live, as a softphone does
    after a stall (stop 19: 54 of 274 frames beside two CPU-bound processes; stop 20: 7 of 258 when the
    speaker's side of the same page dropped 17 in the same moment), half the quarters clean, and at most a
    quarter of what was sent dropped."""
    clean = sum(p > 0.8 for p in pieces)
    needed = len(pieces) - 1 if not dropped else (len(pieces) + 1) // 2
    assert clean >= needed and min(pieces) > 0.5, (
        f"{what}: expected each quarter second of the microphone's WAV (at least {needed} of {len(pieces)} with "
        f"correlation > 0.8, none under 0.5; {dropped} frames dropped by the jitter buffer), measured {pieces}")
    assert dropped <= sent // 4, f"{what}: the jitter buffer dropped {dropped} of {sent} frames"
