"""A piece of call audio you can look at, listen to, save and compare in a notebook.

A :class:`Recording` is either backed by a file (read lazily, and re-read if the file grows, e.g.
while the call is still recording) or by samples in memory. Its notebook display shows a short
summary, the waveform and spectrogram, and a player.
"""

from __future__ import annotations

import base64
import html
import io
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labkit.errors import AudioError, InvalidInput
from labkit.media.audio import AudioSource, _check_rate, as_int16, load
from labkit.media.matching import best_match, pieces_in_order

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Sequence

    from IPython.display import Audio
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["Recording"]

# Embedding audio in a notebook stores it base64 in the .ipynb; beyond this the inline display
# shows the summary and plot only (call .play() explicitly to embed anyway).
INLINE_AUDIO_MAX_SECONDS = 600.0


class Recording:
    """int16 mono audio plus what the lab knows about where it came from.

    ``Recording(path)`` reads the file on first use of ``samples``; ``Recording(samples, rate)``
    wraps samples (int16 kept as is, -1..1 floats converted). Metadata: ``call_uuid``,
    ``started_at``, ``frames_received``, ``frames_malformed``, ``label``.
    """

    def __init__(
        self,
        source: str | os.PathLike | np.ndarray | Sequence[float] | None = None,
        rate: int | None = None,
        *,
        call_uuid: str | None = None,
        started_at: datetime | None = None,
        frames_received: int = 0,
        frames_malformed: int = 0,
        label: str | None = None,
    ) -> None:
        self.call_uuid = call_uuid
        self.started_at = started_at
        self.frames_received = int(frames_received)
        self.frames_malformed = int(frames_malformed)
        self.label = label
        self.path: Path | None = None
        self._samples: np.ndarray | None = None
        self._stamp: tuple[int, int, bytes] | None = None  # (size, mtime_ns, header) of the file we read
        self._rate: int | None = None
        if source is None:
            raise InvalidInput("Recording needs a path or samples (with a rate)")
        if isinstance(source, (str, os.PathLike)):
            self.path = Path(os.fspath(source)).expanduser()
            if not self.path.is_file():
                raise AudioError(f"recording '{self.path}' does not exist; check the path")
            if rate is not None:
                self._rate = _check_rate(rate)
        else:
            if rate is None:
                raise InvalidInput("Recording(samples, rate): samples need their sample rate, e.g. 16000")
            self._rate = _check_rate(rate)
            arr = as_int16(source)
            if arr.ndim != 1:
                raise InvalidInput(f"a Recording is mono: pass 1-D samples, not shape {arr.shape}")
            self._samples = arr

    # ------------------------------------------------------------------ data

    @property
    def rate(self) -> int:
        """Sample rate in Hz (a file's own rate unless one was given)."""
        if self._rate is None:
            self._rate = int(self._info().samplerate)
        return self._rate

    @property
    def samples(self) -> np.ndarray:
        """int16 mono samples; a file-backed recording re-reads its file when it has changed."""
        if self.path is None:
            assert self._samples is not None
            return self._samples
        stamp = self._file_stamp()
        if self._samples is None or stamp != self._stamp:
            samples = load(self.path, self.rate)
            samples.flags.writeable = False  # shared cache: copy before editing
            self._samples, self._stamp = samples, stamp
        return self._samples

    @property
    def duration(self) -> float:
        """Length in seconds (from the header for a file not read yet)."""
        if self.path is not None and self._samples is None:
            info = self._info()
            return float(info.frames) / info.samplerate if info.samplerate else 0.0
        return self.samples.size / self.rate

    def __len__(self) -> int:
        return int(self.samples.size)

    def _file_stamp(self) -> tuple[int, int, bytes]:
        """What says the file changed: its size and time, and its header, because a recording written
        through a map (labkit.media.wav_tail) grows inside space reserved ahead, changing neither."""
        assert self.path is not None
        try:
            st = self.path.stat()
            with open(self.path, "rb") as fh:
                head = fh.read(64)
        except OSError as exc:
            raise AudioError(f"recording '{self.path}' cannot be read any more: {exc}") from exc
        return st.st_size, st.st_mtime_ns, head

    def _info(self) -> Any:
        import soundfile as sf

        assert self.path is not None
        try:
            return sf.info(str(self.path))
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(f"cannot read recording '{self.path}': {exc}. Use MP3 or 16-bit PCM WAV.") from exc

    # ------------------------------------------------------------------ slicing and measures

    def _span(self, start_s: float | None, end_s: float | None) -> tuple[int, int]:
        n = self.samples.size
        a = 0 if start_s is None else int(round(start_s * self.rate))
        b = n if end_s is None else int(round(end_s * self.rate))
        if start_s is not None and end_s is not None and end_s < start_s:
            raise InvalidInput(f"end ({end_s} s) is before start ({start_s} s)")
        return min(max(a, 0), n), min(max(b, 0), n)

    def segment(self, start_s: float | None = None, end_s: float | None = None) -> Recording:
        """A new in-memory Recording of ``start_s``..``end_s`` seconds (clipped to the audio)."""
        a, b = self._span(start_s, end_s)
        started = self.started_at + timedelta(seconds=a / self.rate) if self.started_at else None
        label = f"{self.label or 'recording'} [{a / self.rate:.2f}-{b / self.rate:.2f} s]"
        return Recording(
            np.array(self.samples[a:b]), self.rate, call_uuid=self.call_uuid, started_at=started, label=label
        )

    def rms(self, start_s: float | None = None, end_s: float | None = None) -> float:
        """Root-mean-square level as a fraction of full scale (0 = silence, ~0.707 = full sine)."""
        a, b = self._span(start_s, end_s)
        if b <= a:
            return 0.0
        x = self.samples[a:b].astype(np.float64) / 32768.0
        return float(np.sqrt(np.mean(x * x)))

    def correlate(self, reference: AudioSource | np.ndarray, rate: int | None = None) -> float:
        """Peak normalised cross-correlation (0..1) with ``reference``, wherever it lines up.

        Each alignment is normalised by the energy of the overlapping stretch only, so audio that
        arrives late, among silence or at another level still scores ~1; unrelated audio scores
        near 0. ``reference`` is a path, bytes, a Recording, ``(samples, rate)``, or samples at
        ``rate`` (default this recording's rate); it is resampled to this recording's rate.
        """
        return self.find(reference, rate)[0]

    def find(self, reference: AudioSource | np.ndarray, rate: int | None = None) -> tuple[float, float]:
        """(correlation, offset in seconds) of the best match of ``reference`` in this recording.

        A negative offset means the recording starts partway into the reference (it is shorter).
        """
        if isinstance(reference, (np.ndarray, list)):
            reference = (np.asarray(reference), rate or self.rate)
        ref = load(reference, self.rate)
        score, lag = best_match(self.samples, ref)
        return score, lag / self.rate

    def coverage(self, reference: AudioSource | np.ndarray, rate: int | None = None, *, piece_s: float = 0.1,
                 min_score: float = 0.8) -> float:
        """The share (0..1) of ``reference``, cut in ``piece_s`` pieces, found in this recording in order.

        What "the phone heard what we sent" means on a live path: a sender that stalls on a busy machine
        leaves a gap of silence and shifts the rest, which drops one correlation over the whole reference
        to ~0.5 although every piece arrived. Silent pieces of the reference are not counted.
        """
        return self.find_pieces(reference, rate, piece_s=piece_s, min_score=min_score)[0]

    def find_pieces(self, reference: AudioSource | np.ndarray, rate: int | None = None, *, piece_s: float = 0.1,
                    min_score: float = 0.8) -> tuple[float, float | None]:
        """(`coverage`, where the reference started: the first piece found minus its place in the reference).

        The pieces counted are the longest chain of matches in order, each heard after the one before it
        ended (gaps and dropped audio may come between, never overlaps). Why a chain and not the first match
        of each piece in turn: a piece that never arrived can still match elsewhere (a voice repeats itself),
        and taking it moved the start 0.6 s late and dropped the true pieces after it (first 0.3 s of a 2 s
        voice missing: start read 1.60 s instead of 1.00 s, coverage 72% instead of 89%).
        None for the start when no piece was found.
        """
        if isinstance(reference, (np.ndarray, list)):
            reference = (np.asarray(reference), rate or self.rate)
        ref = load(reference, self.rate)
        share, lag = pieces_in_order(self.samples, ref, max(1, int(round(piece_s * self.rate))), min_score)
        return share, (None if lag is None else lag / self.rate)

    # ------------------------------------------------------------------ output

    def save(self, path: str | os.PathLike) -> Path:
        """Write the audio to ``path`` (16-bit PCM WAV; ``.mp3`` gives a CBR MP3). Returns the path."""
        import soundfile as sf

        p = Path(os.fspath(path)).expanduser()
        p.parent.mkdir(parents=True, exist_ok=True)
        mp3 = p.suffix.lower() == ".mp3"
        try:
            if mp3:
                sf.write(str(p), self.samples, self.rate, format="MP3", bitrate_mode="CONSTANT")
            else:
                sf.write(str(p), self.samples, self.rate, format="WAV", subtype="PCM_16")
        except (OSError, sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(f"cannot save the recording to '{p}': {exc}") from exc
        return p

    def play(self) -> Audio:
        """An ``IPython.display.Audio`` player at the recorded level (no normalisation)."""
        from IPython.display import Audio

        if self.samples.size == 0:
            raise AudioError("the recording is empty: there is nothing to play")
        return Audio(data=self.samples.astype(np.float32) / 32768.0, rate=self.rate, normalize=False)

    def plot(self, ax: Axes | Sequence[Axes] | None = None) -> Figure:
        """Waveform and spectrogram (one Axes: waveform only). Fast for hour-long recordings."""
        from labkit.media.plots import recording_figure

        return recording_figure(self.samples, self.rate, title=self._title(), ax=ax)

    def _title(self) -> str:
        """A title that fits over the figure (10 in wide): the name clipped, the call by its short id."""
        name = self.label or (self.path.stem if self.path else "recording")
        parts = [name if len(name) <= 48 else name[:47] + "\u2026",
                 f"{self.duration:.2f} s at {self.rate / 1000:g} kHz"]
        if self.call_uuid:
            parts.append(f"call {self.call_uuid[:8]}")
        return ", ".join(parts)

    def summary(self) -> dict[str, Any]:
        """The facts shown in the notebook table."""
        facts: dict[str, Any] = {
            "label": self.label,
            "duration": f"{self.duration:.2f} s",
            "rate": f"{self.rate} Hz",
            "rms": f"{self.rms():.3f} of full scale",
            "path": str(self.path) if self.path else None,
            "call_uuid": self.call_uuid,
            "started_at": self.started_at.isoformat(timespec="seconds") if self.started_at else None,
        }
        if self.frames_received or self.frames_malformed:
            facts["frames"] = f"{self.frames_received} received, {self.frames_malformed} malformed"
        return {k: v for k, v in facts.items() if v is not None}

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>"
            for k, v in self.summary().items()
        )
        parts = [f"<table>{rows}</table>"]
        if self.samples.size:
            buf = io.BytesIO()
            self.plot().savefig(buf, format="png", dpi=72)
            png = base64.b64encode(buf.getvalue()).decode("ascii")
            parts.append(f"<img alt='waveform and spectrogram' src='data:image/png;base64,{png}'/>")
            if self.duration <= INLINE_AUDIO_MAX_SECONDS:
                parts.append(self.play()._repr_html_())
            else:
                parts.append(
                    f"<p>Audio not embedded ({self.duration / 60:.0f} min would bloat the notebook): "
                    "call <code>.play()</code> to listen.</p>"
                )
        else:
            parts.append("<p>(empty recording)</p>")
        return "<div class='labkit-recording'>" + "".join(parts) + "</div>"

    def __repr__(self) -> str:
        where = f" '{self.path}'" if self.path else ""
        label = f" {self.label!r}" if self.label else ""
        return f"<Recording{label}{where} {self.duration:.2f} s at {self.rate} Hz>"
