"""The parts of labkit.testing that need no sandbox: DTMF and silence detection on known audio, and the
package's place in the layers (what it may import)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

from labkit.sandbox.audio.sources import dtmf_tones
from labkit.testing.signals import dtmf_digits, loud_spans

RATE = 16000
PACKAGE = Path(__file__).resolve().parents[2] / "labkit" / "testing"


def test_dtmf_tones_are_found_in_order_among_speech_like_noise():
    rng = np.random.default_rng(7)
    noise = (rng.normal(0, 800, RATE)).astype(np.int16)
    audio = np.concatenate([noise, dtmf_tones("159#*0", RATE), np.zeros(RATE // 2, np.int16), dtmf_tones("D", RATE)])
    assert dtmf_digits(audio, RATE) == "159#*0D"
    assert dtmf_digits(noise, RATE) == ""
    t = np.arange(RATE) / RATE
    assert dtmf_digits((8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16), RATE) == ""  # a plain tone is no key


def test_loud_spans_mark_where_sound_was():
    audio = np.zeros(RATE * 2, np.int16)
    audio[RATE // 2: RATE] = 5000
    assert loud_spans(audio, RATE) == [(0.5, 1.0)]
    assert loud_spans(np.zeros(RATE, np.int16), RATE) == []


def test_the_package_imports_only_the_layers_below_it():
    allowed = ("labkit.testing", "labkit.sandbox", "labkit.media", "labkit.errors", "labkit.config",
               "labkit.signing", "labkit.keys")
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name.startswith("labkit"):
                    assert name.startswith(allowed), f"{path.name} imports {name}"
        assert len(path.read_text().splitlines()) <= 400, f"{path.name} is over 400 lines"


class _HeardOnly:
    """What assert_heard_audio reads of a call: what the phone heard, and its story for a failure."""

    phone = None

    def __init__(self, heard):
        self.heard = heard

    def view(self):
        return {"uuid": "0" * 8, "status": "completed", "direction": "inbound", "from": "1", "to": "2"}


def test_audio_heard_with_gaps_counts_as_heard_and_audio_cut_short_does_not():
    """An app's sender that stalls leaves silence and shifts the rest: the whole file then correlates ~0.5,
    but every 0.1 s piece arrived in order. A file missing its second half was not heard."""
    import pytest

    from labkit.media import Recording
    from labkit.testing.assertions import assert_heard_audio

    said = Recording(str(PACKAGE.parents[1] / "audio" / "prompt.wav")).segment(0.2, 1.9)
    s, rate = said.samples, said.rate
    third = s.size // 3
    gap = np.zeros(int(0.05 * rate), np.int16)
    lead = np.zeros(rate // 2, np.int16)
    gappy = Recording(np.concatenate([lead, s[:third], gap, s[third:2 * third], gap, s[2 * third:]]), rate)
    assert gappy.correlate(said) < 0.6
    assert abs(assert_heard_audio(_HeardOnly(gappy), said) - 0.5) < 0.02  # where it started
    cut = Recording(np.concatenate([lead, s[: s.size // 2], np.zeros(s.size // 2, np.int16)]), rate)
    with pytest.raises(AssertionError, match=r"did not hear Recording: .*of its 0\.1 s pieces in order"):
        assert_heard_audio(_HeardOnly(cut), said, min_score=0.9)


def _voice_at(parts: list[np.ndarray]) -> object:
    from labkit.media import Recording

    return Recording(np.concatenate(parts).astype(np.int16), 16000)


def test_where_audio_heard_with_a_gap_or_missing_its_start_began():
    """The offset assert_heard_audio returns is where the file started to be heard. A stall 0.2 s in (the
    rest 0.25 s later) made one correlation over the file peak on the larger part, 0.25 s late; the first
    0.3 s never arriving made a missing piece match later in the voice and read the start 0.6 s late."""
    from labkit.media import Recording
    from labkit.testing.assertions import assert_heard_audio

    voice = Recording(str(PACKAGE.parents[1] / "examples" / "fastapi_echo_bot" / "hello.wav")).samples  # 16 kHz
    rate = 16000
    lead, gap = np.zeros(rate, np.int16), np.zeros(rate // 4, np.int16)
    cut = int(0.2 * rate)
    stalled = _voice_at([lead, voice[:cut], gap, voice[cut:], lead])
    assert stalled.find(voice)[1] > 1.2  # the whole-file peak: on the part after the gap
    assert abs(assert_heard_audio(_HeardOnly(stalled), (voice, rate)) - 1.0) < 0.01
    late = int(0.3 * rate)
    missing_start = _voice_at([lead, np.zeros(late, np.int16), voice[late:], lead])
    share, start = missing_start.find_pieces(voice)
    assert start is not None and abs(start - 1.0) < 0.01 and share > 0.85  # only the 0.1 and 0.2 s pieces lost


def test_a_piece_a_stall_cut_in_two_was_heard_and_a_piece_dropped_was_not():
    """Each stall on the live path splits the 0.1 s piece it falls in; a 2 s echo with two stalls read 89% of
    its pieces (under the 90% rule) though nothing was lost. Audio dropped without a gap is still missing."""
    from labkit.media import Recording

    voice = Recording(str(PACKAGE.parents[1] / "examples" / "fastapi_echo_bot" / "hello.wav")).samples
    rate, n = 16000, 1600
    stall = np.zeros(int(0.15 * rate), np.int16)
    a, b = int(0.43 * rate), int(1.27 * rate)  # inside pieces 4 and 12
    stalled = _voice_at([np.zeros(rate, np.int16), voice[:a], stall, voice[a:b], stall, voice[b:], stall])
    assert stalled.correlate(voice) < 0.6  # one correlation over the file cannot tell
    assert stalled.find_pieces(voice) == (1.0, 1.0)
    dropped = _voice_at([np.zeros(rate, np.int16), voice[:4 * n], voice[5 * n:12 * n], voice[13 * n:]])
    share, start = dropped.find_pieces(voice)
    assert start == 1.0 and share < 0.9  # pieces 4 and 12 never arrived: 17 of 19
