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
