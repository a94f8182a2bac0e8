"""Synthesise the lab's sample audio, so every file in audio/ is ours (MIT) and reproducible.

    python audio/make_audio.py            # (re)write the files next to this script
    python audio/make_audio.py --check    # regenerate in a temp dir and compare with the committed files

Everything is 16 kHz mono: WAV as 16-bit PCM, MP3 as constant bit rate (chunked decoding of VBR MP3
corrupts samples in libsndfile). Randomness is seeded, so the output is byte-for-byte identical on
every run with the same numpy/scipy/libsndfile.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import lfilter

RATE = 16000
SEED = 20240517
MP3_LEVEL = 0.6  # libsndfile compression level 0..1; 0.6 is ~64 kbit/s CBR at 16 kHz mono
HERE = Path(__file__).resolve().parent


# ---------------------------------------------------------------------------------------------- music


def _midi(note: int) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12.0)


def _pluck(freq: float, seconds: float, velocity: float) -> np.ndarray:
    """A soft electric-piano-like note: decaying harmonics, higher ones dying faster."""
    t = np.arange(int(seconds * RATE)) / RATE
    out = np.zeros_like(t)
    for k in range(1, 7):
        if k * freq >= RATE / 2 - 500:
            break
        out += np.sin(2 * np.pi * k * freq * t) * (1.0 / k**1.6) * np.exp(-t * (2.5 + 1.8 * k))
    attack = int(0.006 * RATE)
    out[:attack] *= 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, attack))
    release = int(0.05 * RATE)
    out[-release:] *= np.linspace(1.0, 0.0, release)
    return velocity * out


def _pad(freqs: list[float], seconds: float) -> np.ndarray:
    """A quiet sustained chord with slow attack and release, to glue the arpeggio together."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    out = sum(np.sin(2 * np.pi * f * t) + 0.25 * np.sin(2 * np.pi * 2 * f * t) for f in freqs)
    env = np.minimum(1.0, np.minimum(t / 0.25, (seconds - t) / 0.35)).clip(0.0, 1.0)
    return np.asarray(out) * env


def music(seconds_per_bar: float = 1.5) -> np.ndarray:
    """A 6 s I-vi-IV-V arpeggio loop (C, Am, F, G) in 3/4 at 120 bpm that wraps around seamlessly.

    6 s rather than 8 keeps the 16-bit WAV under 200 KB.
    """
    rng = np.random.default_rng(SEED)
    chords = [(48, [60, 64, 67]), (45, [57, 60, 64]), (41, [57, 60, 65]), (43, [59, 62, 67])]
    length = int(round(len(chords) * seconds_per_bar * RATE))
    tail = int(2.5 * RATE)  # notes ringing past the end are folded back onto the start
    buf = np.zeros(length + tail)

    def add(at_s: float, sound: np.ndarray, gain: float) -> None:
        i = int(round(at_s * RATE))
        buf[i : i + sound.size] += gain * sound

    pattern = [0, 1, 2, 3, 2, 1]  # eighth notes over (root, third, fifth, octave)
    eighth = seconds_per_bar / len(pattern)
    for c, (bass, triad) in enumerate(chords):
        start = c * seconds_per_bar
        tones = [*triad, triad[0] + 12]
        for j, idx in enumerate(pattern):
            velocity = float(rng.uniform(0.8, 1.0)) * (1.15 if j == 0 else 1.0)
            add(start + j * eighth, _pluck(_midi(tones[idx]), 1.2, velocity), 0.30)
        add(start, _pluck(_midi(bass), 1.6, 1.0), 0.5)
        add(start, _pad([_midi(n) for n in triad], seconds_per_bar + 0.3), 0.035)
    loop = buf[:length].copy()
    loop[:tail] += buf[length:]
    return loop / np.max(np.abs(loop)) * 0.7


# --------------------------------------------------------------------------------------------- prompt

# Formants (F1, F2, F3 in Hz) of a few vowels, roughly an adult male voice.
_VOWELS = {
    "e": (530, 1840, 2480),
    "o": (500, 900, 2400),
    "u": (330, 950, 2300),
    "a": (730, 1240, 2600),
    "@": (500, 1500, 2500),
    "i": (300, 2250, 3000),
}
_MURMUR = (300, 1100, 2500)  # l, w, m, n: voiced, low and muffled


def _resonators(x: np.ndarray, formants: tuple[int, ...], bandwidths: tuple[int, ...] = (80, 110, 160)) -> np.ndarray:
    """A cascade of two-pole resonators: the classic (Klatt-style) vocal tract model."""
    for f, bw in zip(formants, bandwidths, strict=True):
        r = np.exp(-np.pi * bw / RATE)
        a = [1.0, -2 * r * np.cos(2 * np.pi * f / RATE), r * r]
        x = lfilter([sum(a)], a, x)  # unity gain at DC keeps levels comparable between vowels
    return x


def _glottal(f0: np.ndarray) -> np.ndarray:
    """Band-limited glottal source for a per-sample f0 contour: harmonics falling at -12 dB/oct."""
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    out = np.zeros_like(f0)
    for k in range(1, int(RATE / 2 / f0.min())):
        alive = k * f0 < RATE / 2 - 200
        out += np.where(alive, np.sin(k * phase) / k**2, 0.0)
    return out


def prompt() -> np.ndarray:
    """About 2 s of speech-like syllables ("hel-lo, wel-come to the lab" in rhythm and pitch)."""
    rng = np.random.default_rng(SEED + 1)
    # (onset consonant kind, vowel, vowel seconds, pitch accent, pause after)
    syllables = [
        ("h", "e", 0.13, 1.10, 0.00),
        ("l", "o", 0.24, 1.00, 0.16),
        ("w", "e", 0.14, 1.15, 0.00),
        ("l", "@", 0.10, 1.00, 0.00),
        ("m", "@", 0.10, 0.95, 0.04),
        ("t", "u", 0.12, 1.00, 0.00),
        ("d", "@", 0.08, 0.95, 0.00),
        ("l", "a", 0.26, 1.05, 0.00),
        ("b", "@", 0.03, 0.90, 0.00),
    ]
    lead, trail = 0.10, 0.15
    total = lead + trail + sum(0.06 + v + p for _, _, v, _, p in syllables)
    out = np.zeros(int(total * RATE) + RATE // 10)
    pos = lead
    n_syll = len(syllables)
    for i, (cons, vowel, vs, accent, pause) in enumerate(syllables):
        formants = _VOWELS[vowel]
        base_f0 = 135 - 30 * i / n_syll  # declination across the phrase
        if cons in ("h", "t", "d", "b"):
            cs = 0.05 if cons in ("h", "t") else 0.02
            noise = rng.standard_normal(int(cs * RATE))
            shaped = _resonators(noise, formants) if cons == "h" else lfilter([1, -0.95], [1], noise)
            env = np.hanning(shaped.size)
            gain = 0.015 if cons == "h" else 0.05
            i0 = int(pos * RATE)
            out[i0 : i0 + shaped.size] += gain * shaped * env / (np.max(np.abs(shaped)) + 1e-9)
            pos += cs
            murmur = 0.0
        else:
            murmur = 0.06
        seconds = murmur + vs
        n = int(seconds * RATE)
        t = np.arange(n) / RATE
        f0 = base_f0 * accent * (1 + 0.08 * np.sin(np.pi * t / seconds)) * (1 + 0.004 * rng.standard_normal())
        src = _glottal(f0)
        voiced = _resonators(src, formants)
        if murmur:
            m = int(murmur * RATE)
            # murmur -> vowel: crossfade from a muffled nasal/liquid into the vowel's formants
            nasal = _resonators(src[: m + int(0.03 * RATE)], _MURMUR)
            fade = np.linspace(1.0, 0.0, nasal.size)
            voiced[: nasal.size] = 0.35 * fade * nasal + (1 - fade) * voiced[: nasal.size]
        env = np.ones(n)
        a, r = min(int(0.02 * RATE), n // 2), min(int(0.06 * RATE), n // 2)
        env[:a] = np.linspace(0, 1, a)
        env[-r:] = np.linspace(1, 0, r)
        i0 = int(pos * RATE)
        out[i0 : i0 + n] += voiced * env / (np.max(np.abs(voiced)) + 1e-9) * (0.8 if accent > 1 else 0.65)
        pos += seconds + pause
    out = out[: int((pos + trail) * RATE)]
    return out / np.max(np.abs(out)) * 0.6


# ------------------------------------------------------------------------------------------- the rest


def beep(freq: float = 1000.0, seconds: float = 0.25) -> np.ndarray:
    """A 1 kHz beep with 10 ms raised-cosine edges (no clicks), like a voicemail tone."""
    t = np.arange(int(seconds * RATE)) / RATE
    x = 0.5 * np.sin(2 * np.pi * freq * t)
    edge = int(0.01 * RATE)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, edge))
    x[:edge] *= ramp
    x[-edge:] *= ramp[::-1]
    return x


def silence(seconds: float = 2.0) -> np.ndarray:
    return np.zeros(int(seconds * RATE))


def _pcm16(x: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(x, -1.0, 1.0) * 32767).astype(np.int16)


FILES: dict[str, tuple[Callable[[], np.ndarray], tuple[str, ...]]] = {
    "music": (music, ("wav", "mp3")),
    "silence": (silence, ("wav", "mp3")),
    "prompt": (prompt, ("wav", "mp3")),
    "beep": (beep, ("wav",)),
}


def write_all(out_dir: Path) -> list[Path]:
    """Write every sample file into ``out_dir`` and return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (make, kinds) in FILES.items():
        samples = _pcm16(make())
        for kind in kinds:
            path = out_dir / f"{name}.{kind}"
            if kind == "wav":
                sf.write(path, samples, RATE, format="WAV", subtype="PCM_16")
            else:
                sf.write(path, samples, RATE, format="MP3", bitrate_mode="CONSTANT", compression_level=MP3_LEVEL)
            written.append(path)
    return written


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write into (default: audio/)")
    parser.add_argument("--check", action="store_true", help="regenerate in a temp folder and compare")
    args = parser.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = write_all(Path(tmp))
            bad = [
                p.name for p in fresh if not (args.out / p.name).is_file() or _digest(p) != _digest(args.out / p.name)
            ]
        if bad:
            print(f"differs from a fresh build: {', '.join(bad)} (run python audio/make_audio.py)")
            return 1
        print(f"all {len(fresh)} files match a fresh build")
        return 0
    for path in write_all(args.out):
        info = sf.info(path)
        print(f"{path.name:12s} {info.duration:5.2f} s {info.subtype:15s} {path.stat().st_size / 1024:6.1f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
