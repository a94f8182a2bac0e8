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
