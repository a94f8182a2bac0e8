"""Assertions on what a call did, whose failure messages say what happened instead.

    assert_heard_audio(call, "greeting.wav")       # correlation with the file, wherever it lines up
    assert_heard_text(call, "Press 1 for music")   # the sandbox spoke it (talk), and the caller heard it
    assert_heard_dtmf(call, "123")                 # tones the caller heard (Goertzel, not a log)
    assert_silent(call, 0.0, 1.5)                  # nothing audible in that span (call seconds)
    assert_ended(call, "completed", by="app")      # final status and who hung up
    assert_webhook(call, "event", status="answered")  # one exchange with the app, by payload fields

Speech is checked against what the sandbox knows it said (its talk texts and their times), not with
speech recognition: the text must have been played, and that stretch of what the phone heard must be
audible. On failure the heard audio is saved next to the test report and its path is in the message.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.testing.report import describe_call, save_heard
from labkit.testing.signals import dtmf_digits, level_dbfs, loud_spans

if TYPE_CHECKING:  # pragma: no cover
    from labkit.testing.calls import Call

__all__ = ["assert_ended", "assert_heard_audio", "assert_heard_dtmf", "assert_heard_text", "assert_silent",
           "assert_webhook"]

AUDIBLE_DBFS = -45.0  # a talk's stretch of heard audio must be louder than this to count as heard
SILENT_DBFS = -50.0


def _fail(call: Call, message: str, *, audio: bool = True) -> AssertionError:
    """The AssertionError to raise: the message, the call's story, and where its heard audio went."""
    try:
        story = describe_call(call.view())
    except Exception as exc:  # the sandbox is gone: the message itself still matters most
        story = f"(the call's story is not available: {exc.__class__.__name__}: {exc})"
    saved = save_heard(call) if audio and call.phone is not None else ""
    return AssertionError(f"{message}\n{story}{saved}")


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)).strip().lower()  # SSML tags do not count


def _spans(spans: list[tuple[float, float]]) -> str:
    if not spans:
        return "nothing audible"
    shown = ", ".join(f"{a:.2f}-{b:.2f} s" for a, b in spans[:8])
    return f"sound at {shown}" + (f" (+{len(spans) - 8} more)" if len(spans) > 8 else "")


PIECES_HEARD = 0.9  # of a file's 0.1 s pieces, found in order, for audio that arrived with gaps


def assert_heard_audio(call: Call, reference: str | Path | Any, *, min_score: float = 0.6,
                       after: float | None = None, before: float | None = None) -> float:
    """The caller heard `reference` (a WAV/MP3 path, bytes, a Recording or (samples, rate)).

    The score is the peak normalised cross-correlation (0..1; a faithful copy scores ~1, other audio
    near 0), found at any lag; `after`/`before` bound where it may start (call seconds after answer).
    Audio that arrived with gaps (an app's sender stalled on a busy machine: silence, then the rest, later)
    scores low as a whole, so it also counts as heard when `PIECES_HEARD` of its 0.1 s pieces are found in
    order. Returns the offset in seconds where it started.

    Where it started comes from the pieces whenever they were found: after a gap, one correlation over the
    whole file peaks where the larger part lines up, later than the start by the gap (a 0.25 s stall 0.2 s
    into a 2 s voice read 0.25 s late; under load, the echo bot's echo read up to 0.12 s late).
    """
    heard = call.heard
    score, offset = heard.find(reference)
    share, first = heard.find_pieces(reference)
    if share >= PIECES_HEARD and first is not None:
        score, offset = max(score, min_score), first
    name = Path(reference).name if isinstance(reference, (str, Path)) else type(reference).__name__
    where_ok = (after is None or offset >= after - 0.02) and (before is None or offset <= before + 0.02)
    if score >= min_score and where_ok:
        return offset
    if score < min_score:
        why = (f"the caller did not hear {name}: best correlation {score:.2f} at {offset:.2f} s "
               f"(needs {min_score:.2f}), and {share:.0%} of its 0.1 s pieces in order (needs "
               f"{PIECES_HEARD:.0%}); in {heard.duration:.1f} s of call they heard "
               f"{_spans(loud_spans(heard.samples, heard.rate))}")
    else:
        why = (f"the caller heard {name} at {offset:.2f} s (correlation {score:.2f}), outside "
               f"{after if after is not None else 0:g}-{before if before is not None else heard.duration:g} s")
    raise _fail(call, why)


def assert_heard_text(call: Call, text: str, *, exact: bool = False) -> dict:
    """The sandbox spoke `text` to the caller (an NCCO or REST talk containing it, case and spacing
    aside; `exact=True` for the whole text) and the caller heard sound while it played.

    Returns the played item ({"text", "at", "seconds", "by"}).
    """
    want = _norm(text)
    talks = [item for item in call.played if item["kind"] == "talk"]
    matches = [t for t in talks if (_norm(t["text"]) == want if exact else want in _norm(t["text"]))]
    if not matches:
        said = "; ".join(f"{t['at']:.2f} s {t['text']!r}" for t in talks) or "nothing (no talk was played)"
        raise _fail(call, f"the caller was never told {text!r}. The sandbox spoke: {said}")
    heard = call.heard
    for item in matches:
        end = heard.duration if item["seconds"] is None else item["at"] + item["seconds"]
        span = heard.segment(item["at"], min(end, heard.duration))
        if span.samples.size and level_dbfs(span.samples) > AUDIBLE_DBFS:
            return item
    item = matches[-1]
    raise _fail(call, f"the sandbox spoke {item['text']!r} at {item['at']:.2f} s, but the caller heard "
                      f"{'nothing' if heard.duration < item['at'] else 'silence'} then "
                      f"(heard {heard.duration:.2f} s of call; did the call end, or was the caller muted?)")


def assert_heard_dtmf(call: Call, digits: str) -> str:
    """The caller heard the DTMF tones `digits`, in that order (among any others). Returns all heard."""
    heard = call.heard
    found = dtmf_digits(heard.samples, heard.rate)
    it = iter(found)
    if all(d in it for d in digits.upper()):
        return found
    sent = [p.get("digits") for p in call.played if p["kind"] == "dtmf"]
    raise _fail(call, f"the caller did not hear the DTMF tones {digits!r}: they heard "
                      f"{found or 'no tones'!r}" + (f"; the app sent {sent}" if sent else "; the app sent none"))


def assert_silent(call: Call, start: float, end: float, *, threshold_dbfs: float = SILENT_DBFS) -> None:
    """Nothing audible reached the caller from `start` to `end` (call seconds after answer)."""
    heard = call.heard
    if heard.duration < end - 0.02:
        raise _fail(call, f"the call lasted {heard.duration:.2f} s for the caller, less than the {end:g} s "
                          "that should be silent")
    span = heard.segment(start, end)
    spans = [(a + start, b + start) for a, b in loud_spans(span.samples, span.rate, threshold_dbfs)]
    if spans:
        raise _fail(call, f"the caller heard sound between {start:g} and {end:g} s: {_spans(spans)} "
                          f"(level {level_dbfs(span.samples):.0f} dBFS)")


def assert_ended(call: Call, status: str = "completed", *, by: str | None = None) -> None:
    """The call ended with `status`; `by` who: phone (the caller), app, ncco (the NCCO ran out), platform."""
    view = call.view()
    final = view["status"]
    ended_by = view.get("ended_by")
    if ended_by is None:
        raise _fail(call, f"the call has not ended: it is {final!r}", audio=False)
    if final != status or (by is not None and ended_by != by):
        want = f"{status!r}" + (f" ended by {by}" if by else "")
        raise _fail(call, f"expected the call to end {want}; it ended {final!r}, ended by {ended_by}")


def assert_webhook(call: Call, kind: str = "event", **payload: Any) -> dict:
    """One webhook of this call of `kind` (answer, event, instruction) whose payload has these fields
    (e.g. `status="answered"`, `dtmf={"digits": "1", "timed_out": False}`). Returns the exchange."""
    hooks = [h for h in call.webhooks if h["kind"] == kind]
    for hook in hooks:
        if all(hook["payload"].get(k) == v for k, v in payload.items()):
            return hook
    wanted = ", ".join(f"{k}={v!r}" for k, v in payload.items()) or "any payload"
    raise _fail(call, f"no {kind} webhook with {wanted} among {len(hooks)} {kind} webhooks of this call",
                audio=False)
