"""What the panel and the softphone share: the click guard, the error line, WAV bytes for players.

Every click handler goes through `guarded`, so a failed click reads as one plain sentence in the
widget's error line instead of a traceback in the kernel log (where nobody looking at buttons sees
it). labkit's own errors are already worded for people; anything else gets its type name in front.
"""

from __future__ import annotations

import functools
import html
import io
import wave
from collections.abc import Callable
from typing import Any, TypeVar

import ipywidgets as widgets
import numpy as np

from labkit.errors import AudioError, plain

F = TypeVar("F", bound=Callable[..., Any])

ERROR_STYLE = "color:#b00020"
OK_STYLE = "color:#1b7a2f"


def error_line() -> widgets.HTML:
    """The HTML widget a panel shows its last failure in (empty when the last click worked)."""
    line = widgets.HTML(value="")
    line.add_class("labkit-error")
    return line


def show_error(owner: Any, exc: BaseException | None) -> None:
    """Put `exc` (or nothing) in `owner.error` and remember it as `owner.last_error`."""
    owner.last_error = exc
    owner.error.value = "" if exc is None else (
        f"<span style='{ERROR_STYLE}'>&#9888; {html.escape(plain(exc))}</span>")


def guarded(method: F) -> F:
    """Wrap a widget handler: clear the error line, run, and show any exception there instead of raising.

    Works for button clicks (`handler(button)`) and trait observers (`handler(change)`) alike, because
    it passes every argument through.
    """

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = method(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - that is the point: no tracebacks out of a click
            show_error(self, exc)
            trace = getattr(self, "trace", None)
            if trace is not None:
                trace.value = ""  # the last click's tick belongs to a click that worked, not to this one
            return None
        if getattr(self, "last_error", None) is not None:
            show_error(self, None)
        return result

    return wrapper  # type: ignore[return-value]


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """16-bit mono WAV file bytes, the value an `ipywidgets.Audio(format="wav")` plays."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(int(rate))
        out.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    return buf.getvalue()


def recording_wav(recording: Any) -> bytes:
    """WAV bytes of a Recording's samples as recorded (refused, like `Recording.play()`, when empty)."""
    samples = recording.samples
    if not len(samples):
        raise AudioError("the recording is empty: there is nothing to play")
    return wav_bytes(samples, recording.rate)


def keypad(on_press: Callable[[str], Any], *, width: str = "38px") -> tuple[widgets.GridBox, dict[str, widgets.Button]]:
    """A 4 x 3 telephone keypad; each button calls `on_press(digit)`."""
    keys: dict[str, widgets.Button] = {}
    for digit in "123456789*0#":
        button = widgets.Button(description=digit, layout=widgets.Layout(width=width, height="32px"),
                                tooltip=f"send {digit}")
        button.on_click(lambda _b, d=digit: on_press(d))
        keys[digit] = button
    grid = widgets.GridBox(list(keys.values()), layout=widgets.Layout(
        grid_template_columns=f"repeat(3, {width})", grid_gap="3px"))
    return grid, keys
