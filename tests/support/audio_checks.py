"""Checks on audio that went through the paced sender and the sandbox's clock, shared by the tests."""

from __future__ import annotations

import numpy as np

from labkit.media.frames import frame_samples


def without_silent_ticks(samples: np.ndarray, rate: int) -> np.ndarray:
    """The audio with every all-zero 20 ms tick taken out: the ticks where the platform's buffer ran dry.

    On a loaded machine, with the sandbox faster than real time, the lab's sender can stall for longer
    than the platform's jitter buffer, and the platform then plays silence until audio arrives, as Vonage
    does. Where those gaps fall depends on the machine, so a test of *what* was heard takes them out."""
    n = frame_samples(rate)
    blocks = samples[: samples.size // n * n].reshape(-1, n)
    return blocks[np.abs(blocks.astype(np.int32)).max(axis=1) > 0].ravel()
