"""Checks made before anything is sent, so that mistakes come back as plain words, not HTTP 400s."""

from __future__ import annotations

import re
from urllib.parse import urlparse

from labkit.errors import InvalidInput

E164 = re.compile(r"^[1-9]\d{6,14}$")
DTMF = re.compile(r"^[0-9*#p]+$")


def phone_number(value: object, what: str = "phone number") -> str:
    """An E.164 number without '+' or spaces (Vonage's wire form): '+44 7700 900001' -> '447700900001'."""
    if not isinstance(value, (str, int)):
        raise InvalidInput(f"The {what} must be a string like '447700900001', not {type(value).__name__}.")
    text = re.sub(r"[\s\-().]", "", str(value)).lstrip("+")
    if text.startswith("00"):
        text = text[2:]
    if not E164.match(text):
        raise InvalidInput(
            f"{value!r} is not a valid {what}: use E.164, the country code then the number, 7 to 15 digits, "
            "no leading 0 (for example 447700900001 for a UK mobile, 14155550100 for the US)."
        )
    return text


def level(value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"level must be a number between -1 and 1, not {value!r}.") from None
    if not -1.0 <= v <= 1.0:
        raise InvalidInput(f"level {v} is out of range: it goes from -1 (quietest) to 1 (loudest); 0 is normal.")
    return round(v, 1)


def loop(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"loop must be a whole number >= 0 (0 repeats until stopped), not {value!r}.")
    return value


def dtmf(digits: object) -> str:
    text = str(digits) if isinstance(digits, (str, int)) else ""
    if not text or not DTMF.match(text):
        raise InvalidInput(
            f"{digits!r} is not a DTMF string: use the keys 0-9, * and #, and p for a 500 ms pause."
        )
    return text


def public_url(value: str, what: str = "URL") -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InvalidInput(f"{value!r} is not an http(s) URL for the {what}.")
    return value


def seconds(value: object, what: str, low: int, high: int) -> int:
    """A whole number of seconds within the API's range (length_timer, ringing_timer)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{what} must be a whole number of seconds from {low} to {high}, not {value!r}.")
    return value
