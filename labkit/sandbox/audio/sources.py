"""Where the sandbox's audio comes from: text to speech, stream URLs, DTMF tones and beeps.

- `talk`: real speech from espeak-ng's library shipped in the `espeakng-loader` wheels (tts.py: pip
  only, deterministic, its warm-up done when the sandbox starts). When no engine loads, or with
  LABKIT_SANDBOX_TTS=babble, a deterministic speech-like babble (pitch contour + two formants per
  syllable) whose length follows the text at ~0.07 s per character. SSML `<break>` adds its pause
  with either engine.
- `stream`: the URL is fetched with requests (the lab serves files on http://127.0.0.1), decoded with
  labkit.media.audio.load, and cached per URL and rate, like Vonage caches stream files.
"""

from __future__ import annotations

import re
import threading
import zlib
from collections import OrderedDict
from urllib.parse import urlsplit

import numpy as np
import requests

from labkit.errors import AudioError
from labkit.media.audio import load as load_audio
from labkit.sandbox.audio import tts
from labkit.sandbox.wire.webhooks import LOOPBACK_HOSTS

SECONDS_PER_CHAR = 0.07
TALK_PEAK = 0.3 * 32767
FETCH_TIMEOUT = (2.0, 20.0)
DTMF_TONE_SECONDS = 0.1
DTMF_GAP_SECONDS = 0.1
DTMF_PAUSE_SECONDS = 0.5  # 'p' in a DTMF string
DTMF_FREQS = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}
_TAG = re.compile(r"<[^>]+>")
# (F1, F2) pairs of a few vowels: enough variety to sound like speech without any randomness
_VOWELS = [(730, 1090), (270, 2290), (530, 1840), (570, 840), (300, 870), (660, 1720), (490, 1350)]


_BREAK = re.compile(r"<break\b([^>]*)/?>", re.IGNORECASE)
_ATTR = re.compile(r"""(\w+)\s*=\s*["']([^"']*)["']""")
# SSML <break strength>: seconds. The SSML standard leaves the lengths to the engine; these follow the
# usual engines' comma (weak/medium), sentence (strong) and paragraph (x-strong) pauses. UNCONFIRMED.
BREAK_STRENGTHS = {"none": 0.0, "x-weak": 0.1, "weak": 0.35, "medium": 0.5, "strong": 0.75, "x-strong": 1.0}
MAX_BREAK_SECONDS = 10.0  # the common engines' cap on <break time>; UNCONFIRMED for Vonage


def _break_seconds(attrs: str) -> float:
    found = dict((k.lower(), v.strip().lower()) for k, v in _ATTR.findall(attrs))
    time_value = found.get("time")
    if time_value:
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s)", time_value)
        if match:
            seconds = float(match.group(1)) / (1000.0 if match.group(2) == "ms" else 1.0)
            return min(MAX_BREAK_SECONDS, seconds)
    return BREAK_STRENGTHS.get(found.get("strength", "medium"), BREAK_STRENGTHS["medium"])


def ssml_parts(text: str) -> list[str | float]:
    """SSML cut at its <break> tags: the text pieces (still SSML) and, between them, pauses in seconds."""
    parts: list[str | float] = []
    pos = 0
    for match in _BREAK.finditer(text or ""):
        parts.append(text[pos:match.start()])
        parts.append(_break_seconds(match.group(1)))
        pos = match.end()
    parts.append((text or "")[pos:])
    return [part for part in parts if not isinstance(part, str) or plain_text(part)]


def plain_text(text: str) -> str:
    """SSML stripped to the words it speaks (its length drives the talk's duration)."""
    return re.sub(r"\s+", " ", _TAG.sub(" ", text or "")).strip()


def _formants(x: np.ndarray, formants: list[tuple[float, float, float]], rate: int) -> np.ndarray:
    """Filter `x` through parallel two-pole resonators (freq, bandwidth, gain), in the frequency domain.

    numpy's FFT instead of scipy's lfilter: no scipy import on a call's first `talk` (the import
    alone takes long enough to be heard as silence at speed=10).
    """
    pad = int(0.03 * rate)  # the resonators ring for a few ms: keep their tail inside the buffer
    n = x.size + pad
    size = 1 << (n - 1).bit_length()
    spectrum = np.fft.rfft(x, size)
    w = np.exp(-2j * np.pi * np.fft.rfftfreq(size))  # e^{-j omega}
    response = np.zeros_like(spectrum)
    for freq, bw, gain in formants:
        r = np.exp(-np.pi * bw / rate)
        theta = 2 * np.pi * freq / rate
        response += gain * (1.0 - r) / (1.0 - 2 * r * np.cos(theta) * w + r * r * w * w)
    return np.fft.irfft(spectrum * response, size)[: x.size]


def babble(text: str, rate: int, style: int = 0) -> np.ndarray:
    """Deterministic speech-like audio for `text` at `rate`: ~0.07 s per character."""
    words = plain_text(text)
    if not words:
        return np.zeros(0, dtype=np.int16)
    seed = zlib.crc32(words.encode("utf-8"))
    pieces: list[np.ndarray] = []
    base_f0 = 115.0 + 12.0 * (int(style or 0) % 4)
    total_chars = len(words)
    done_chars = 0
    for token in re.findall(r"[^\s.,;:!?]+|[.,;:!?]+|\s+", words):
        n = int(round(len(token) * SECONDS_PER_CHAR * rate))
        if n <= 0:
            continue
        if not token.strip() or not any(c.isalnum() for c in token):
            pieces.append(np.zeros(n))
            done_chars += len(token)
            continue
        # one word: split into syllables of ~3 characters, each a voiced vowel-like segment
        syllables = max(1, round(len(token) / 3))
        edges = np.linspace(0, n, syllables + 1).astype(int)
        for s in range(syllables):
            m = int(edges[s + 1] - edges[s])
            if m <= 0:
                continue
            h = zlib.crc32(token.encode("utf-8"), seed + s)
            f1, f2 = _VOWELS[h % len(_VOWELS)]
            # declining pitch over the sentence, a small rise-fall inside each syllable
            progress = (done_chars + len(token) * s / syllables) / max(1, total_chars)
            t = np.arange(m) / rate
            f0 = base_f0 * (1.15 - 0.25 * progress) * (1 + 0.06 * np.sin(np.pi * t / max(t[-1], 1e-3)))
            phase = np.cumsum(f0 / rate)
            source = (phase % 1.0) * 2 - 1  # sawtooth: rich in harmonics like a glottal pulse train
            voiced = _formants(source, [(f1, 90, 1.0), (f2, 120, 0.6)], rate)
            env = np.sin(np.pi * np.arange(m) / m) ** 0.6
            pieces.append(voiced * env)
        done_chars += len(token)
    audio = np.concatenate(pieces) if pieces else np.zeros(0)
    peak = np.abs(audio).max(initial=0.0)
    if peak > 0:
        audio = audio * (TALK_PEAK / peak)
    return np.clip(np.rint(audio), -32768, 32767).astype(np.int16)


DEFAULT_CACHE_MB = 256  # LABKIT_SANDBOX_CACHE_MB: fetched files, decoded streams and talk audio together


def _size(value: object) -> int:
    return int(value.nbytes) if isinstance(value, np.ndarray) else len(value)  # type: ignore[arg-type]


class AudioSources:
    """Caches for synthesized talk and fetched stream files (thread-safe, bounded in items and in bytes).

    The bytes bound covers all three caches together; the least recently used entries go first, and an
    item larger than the whole bound is used once and not kept (an hour-long file would otherwise stay).
    """

    def __init__(self, max_items: int = 64, max_bytes: int | None = None) -> None:
        from labkit.config import bound

        self._lock = threading.Lock()
        self._talk: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._files: OrderedDict[str, bytes] = OrderedDict()
        self._decoded: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._inflight: dict[tuple, threading.Lock] = {}  # (url, rate) or ("talk", key) being made
        self._max = max_items
        self.max_bytes = max_bytes if max_bytes is not None else \
            bound("LABKIT_SANDBOX_CACHE_MB", DEFAULT_CACHE_MB) * 1024 * 1024
        self._order: OrderedDict[tuple[int, object], int] = OrderedDict()  # (cache id, key) -> bytes, LRU first
        self.cached_bytes = 0
        self._session = requests.Session()
        self._loop_session = requests.Session()
        self._loop_session.trust_env = False

    def _remember(self, cache: OrderedDict, key: object, value: object) -> None:
        """Keep `value` (lock held), dropping the least recently used entries past either bound."""
        size = _size(value)
        if size > self.max_bytes:
            return
        self._forget(cache, key)
        cache[key] = value
        self._order[(id(cache), key)] = size
        self.cached_bytes += size
        while len(cache) > self._max:
            self._forget(cache, next(iter(cache)))
        while self.cached_bytes > self.max_bytes and self._order:
            (cache_id, old), _ = next(iter(self._order.items()))
            owner = next(c for c in (self._talk, self._files, self._decoded) if id(c) == cache_id)
            self._forget(owner, old)

    def _forget(self, cache: OrderedDict, key: object) -> None:
        if key in cache:
            del cache[key]
            self.cached_bytes -= self._order.pop((id(cache), key), 0)

    def _touch(self, cache: OrderedDict, key: object) -> None:
        """A cache hit: the entry becomes the most recently used (lock held)."""
        cache.move_to_end(key)
        if (id(cache), key) in self._order:
            self._order.move_to_end((id(cache), key))

    def talk(self, text: str, rate: int, language: str | None = None, style: int | None = None) -> np.ndarray:
        """Speech for `text` at `rate` (espeak-ng, else the babble), cached."""
        key = (text, rate, language, style, tts.wanted())
        with self._lock:
            hit = self._talk.get(key)
            if hit is not None:
                self._touch(self._talk, key)
            gate = self._inflight.setdefault(("talk", key), threading.Lock()) if hit is None else None
        if hit is not None:
            return hit
        with gate:  # a prefetch already synthesizing this text: wait for it rather than do it twice
            with self._lock:
                hit = self._talk.get(key)
            if hit is not None:
                return hit
            try:
                pieces = []
                parts = ssml_parts(text)
                for part in parts:  # each SSML <break> adds its pause between the words
                    if isinstance(part, float):
                        pieces.append(np.zeros(int(round(part * rate)), dtype=np.int16))
                    else:
                        words = part if len(parts) == 1 else plain_text(part)
                        pieces.append(self._speak(words, rate, language, style))
                audio = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int16)
                audio.flags.writeable = False
                with self._lock:
                    self._remember(self._talk, key, audio)
            finally:
                with self._lock:
                    self._inflight.pop(("talk", key), None)
            return audio

    def _speak(self, text: str, rate: int, language: str | None, style: int | None) -> np.ndarray:
        audio = tts.speak(text, rate, language)
        return audio if audio is not None else babble(text, rate, style or 0)

    def prefetch_talk(self, text: str, rate: int, language: str | None = None, style: int | None = None) -> None:
        """Synthesize `text` in the background, so the talk starts without a gap when its turn comes.

        Nothing when it is cached or being made: a call's opening talk was made while its
        `POST /v1/calls` was answered, and a thread started for nothing there took the GIL from the
        call's set-up."""
        key = (text, rate, language, style, tts.wanted())
        with self._lock:
            if key in self._talk or ("talk", key) in self._inflight:
                return
        threading.Thread(target=self.talk, args=(text, rate, language, style), name="sandbox-prefetch-talk",
                         daemon=True).start()

    def fetch(self, url: str) -> bytes:
        """The bytes at `url` (cached); AudioError with the reason when it cannot be fetched."""
        with self._lock:
            hit = self._files.get(url)
            if hit is not None:
                self._touch(self._files, url)
        if hit is not None:
            return hit
        host = urlsplit(url).hostname or ""
        sess = self._loop_session if host in LOOPBACK_HOSTS else self._session
        try:
            response = sess.get(url, timeout=FETCH_TIMEOUT)
        except requests.RequestException as exc:
            raise AudioError(f"could not fetch {url}: {exc.__class__.__name__}") from None
        if response.status_code != 200:
            raise AudioError(f"could not fetch {url}: HTTP {response.status_code}")
        data = response.content
        with self._lock:
            self._remember(self._files, url, data)
        return data

    def stream(self, url: str, rate: int) -> np.ndarray:
        """The audio file at `url` decoded to int16 mono at `rate` (cached per URL and rate)."""
        key = (url, rate)
        with self._lock:
            hit = self._decoded.get(key)
            if hit is not None:
                self._touch(self._decoded, key)
                return hit
            gate = self._inflight.setdefault(key, threading.Lock())
        with gate:  # one fetch per URL and rate at a time; the others wait and reuse it
            with self._lock:
                hit = self._decoded.get(key)
            if hit is not None:
                return hit
            try:
                audio = load_audio(self.fetch(url), rate)
            finally:
                with self._lock:
                    self._inflight.pop(key, None)
            audio.flags.writeable = False
            with self._lock:
                self._remember(self._decoded, key, audio)
            return audio

    def prefetch(self, url: str, rate: int) -> None:
        """Fetch and decode `url` in the background, so the stream starts without a gap later.

        Vonage caches stream files; the sandbox fetches the ones an NCCO names as soon as it starts.
        Failures are ignored here: the action itself reports them when it runs.
        """
        with self._lock:
            if (url, rate) in self._decoded or (url, rate) in self._inflight:
                return

        def work() -> None:
            try:
                self.stream(url, rate)
            except Exception:
                pass

        threading.Thread(target=work, name="sandbox-prefetch", daemon=True).start()

    def close(self) -> None:
        self._session.close()
        self._loop_session.close()


def dtmf_tones(digits: str, rate: int) -> np.ndarray:
    """Standard DTMF tone pairs for `digits` (100 ms tone, 100 ms gap; 'p' = 500 ms pause)."""
    tone_n = int(DTMF_TONE_SECONDS * rate)
    gap = np.zeros(int(DTMF_GAP_SECONDS * rate))
    t = np.arange(tone_n) / rate
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.005)
    parts: list[np.ndarray] = []
    for d in digits.upper():
        if d == "P":
            parts.append(np.zeros(int(DTMF_PAUSE_SECONDS * rate)))
            continue
        low, high = DTMF_FREQS.get(d, (0, 0))
        if not low:
            continue
        parts.append(0.25 * 32767 * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t)) / 2 * ramp)
        parts.append(gap)
    audio = np.concatenate(parts) if parts else np.zeros(0)
    return np.clip(np.rint(audio), -32768, 32767).astype(np.int16)


def beep(rate: int, seconds: float = 0.25, freq: float = 1000.0) -> np.ndarray:
    """The record action's start beep."""
    t = np.arange(int(seconds * rate)) / rate
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.005)
    return np.rint(0.3 * 32767 * np.sin(2 * np.pi * freq * t) * ramp).astype(np.int16)
