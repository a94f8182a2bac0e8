"""Checks made before anything is sent, so that mistakes come back as plain words, not HTTP 400s.

Patterns are anchored with fullmatch and use ASCII classes: Python's `$` also matches before a final
newline and `\\d` matches any Unicode digit (full-width '４', Arabic-Indic '٤'), neither of which Vonage
takes. Where the SDK has a type (vonage_utils.types.PhoneNumber, Dtmf, vonage_voice.TtsLanguageCode),
the value is checked against it too, so the lab never accepts what the SDK would then refuse.
"""

from __future__ import annotations

import re
from functools import cache
from urllib.parse import urlparse

from labkit.errors import InvalidInput

E164 = re.compile(r"[1-9][0-9]{6,14}")  # use fullmatch
DTMF = re.compile(r"[0-9*#p]+")  # use fullmatch
# Vonage: talk `text` is at most 1500 characters, not counting SSML tags (NCCO reference, talk action;
# /work/shared/reference/vonage-voice-api.md section 4; the SDK's Talk model has max_length=1500).
# The REST `PUT /v1/calls/{uuid}/talk` body documents no limit of its own (Voice OpenAPI 1.3.7,
# StartTalkRequest): the same limit is assumed there, UNCONFIRMED.
TALK_TEXT_LIMIT = 1500
_SSML_TAG = re.compile(r"<[^>]+>")


@cache
def _adapter(name: str):
    """A pydantic TypeAdapter for one of the SDK's own types (built once; importing pydantic is slow)."""
    from pydantic import TypeAdapter
    from vonage_utils import types

    return TypeAdapter(getattr(types, name))


def _sdk_accepts(type_name: str, value: str) -> bool:
    from pydantic import ValidationError

    try:
        _adapter(type_name).validate_python(value)
    except ValidationError:
        return False
    return True


def phone_number(value: object, what: str = "phone number") -> str:
    """An E.164 number in Vonage's wire form (digits only, no '+'): '+447700900001' -> '447700900001'.

    Refused, each with the number it probably meant: whitespace or a newline anywhere (a value pasted
    with a trailing newline must not be "cleaned" into a different string than the one checked), other
    separators (spaces, dashes, brackets, dots), and a leading 00 (the international dialling prefix of
    many countries: `0044770090001` silently became `44770090001` before, a number nobody typed).
    Vonage's form: "E.164, 7-15 digits, no +" (reference/vonage-voice-api.md section 1, `to.number`).
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidInput(f"The {what} must be a string like '447700900001', not {type(value).__name__}.")
    raw = str(value)
    text = raw[1:] if raw.startswith("+") else raw
    if text.isascii() and text.isdigit() and E164.fullmatch(text) and _sdk_accepts("PhoneNumber", text):
        return text
    digits = re.sub(r"[\s\-().+]", "", raw)
    hint = ""
    if digits.startswith("00") and digits.isascii() and digits.isdigit():
        digits = digits[2:]
        hint = " 00 is a dialling prefix, not part of the number: drop it."
    elif re.search(r"\s", raw):
        hint = " It holds whitespace or a line break (a value pasted with a trailing newline?)."
    elif digits != text:
        hint = " Separators (spaces, dashes, brackets, dots) are not part of it."
    if hint and E164.fullmatch(digits) and digits.isascii():
        hint += f" Did you mean {digits!r}?"
    raise InvalidInput(
        f"{raw!r} is not a valid {what}: use E.164, the country code then the number, 7 to 15 digits, "
        "no leading 0 or 00, plain ASCII digits with nothing between them (for example 447700900001 for a UK "
        f"mobile, 14155550100 for the US).{hint}"
    )


def typed_phone_number(text: str, what: str = "number to call", home: str | None = None) -> str:
    """A number as a person types it into a box (the panel, the softphone page): the one rule for typed
    numbers, with one short message and, where it can tell, the number meant.

    Understood: spaces, dashes, brackets and dots between digits, a leading '+', and a leading 00 (the
    international prefix people dial). A national number (leading 0, `07700 900001`) is read in the
    country of `home` (the lab's own number) and met with "did you mean 447700900001?", never guessed.
    Countries' dialling rules come from `phonenumbers` (Google's libphonenumber data)."""
    raw = str(text or "").strip()
    if not raw:
        raise InvalidInput(f"Type the {what}: the country code then the number, for example 447700900001.")
    digits = re.sub(r"[ \-().]", "", raw)
    digits = digits[1:] if digits.startswith("+") else digits[2:] if digits.startswith("00") else digits
    if digits.isascii() and digits.isdigit() and E164.fullmatch(digits) and _sdk_accepts("PhoneNumber", digits):
        return digits
    meant = _national_to_e164(digits, home) if digits.startswith("0") else None
    if meant:
        raise InvalidInput(f"{raw} looks like a national number: did you mean {meant}? (the country code, then "
                           "the number without its leading 0)")
    raise InvalidInput(f"{raw} is not a phone number: type the country code then the number, 7 to 15 digits, "
                       "for example 447700900001.")


def _national_to_e164(digits: str, home: str | None) -> str | None:
    """`digits` dialled nationally in the country of the number `home`, in E.164 (None when unsure)."""
    if not home or not digits.isascii() or not digits.isdigit():
        return None
    import phonenumbers

    try:
        country = phonenumbers.parse("+" + str(home).lstrip("+")).country_code
        number = phonenumbers.parse(digits, phonenumbers.region_code_for_country_code(country))
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    meant = f"{number.country_code}{number.national_number}"
    return meant if E164.fullmatch(meant) else None


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
    text = str(digits) if isinstance(digits, (str, int)) and not isinstance(digits, bool) else ""
    if not (text and DTMF.fullmatch(text) and text.isascii() and _sdk_accepts("Dtmf", text)):
        raise InvalidInput(
            f"{digits!r} is not a DTMF string: use the keys 0-9, * and #, and p for a 500 ms pause "
            "(nothing else, not even a space or a newline)."
        )
    return text


def talk_text(text: object, what: str = "say()") -> str:
    """Text for text-to-speech: not empty, and within Vonage's limit (SSML tags do not count)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"{what} needs some text to speak (a non-empty string), not {text!r:.40}.")
    spoken = _SSML_TAG.sub("", text) if text.lstrip().startswith("<speak") else text
    if len(spoken) > TALK_TEXT_LIMIT:
        raise InvalidInput(
            f"The text for {what} is {len(spoken)} characters; Vonage speaks at most {TALK_TEXT_LIMIT} "
            "(SSML tags not counted). Split it into several talks, or stream a recorded file instead."
        )
    return text


def language(value: object) -> str:
    """A text-to-speech language the Voice API knows (the SDK's TtsLanguageCode), like 'en-GB'."""
    from vonage_voice import TtsLanguageCode

    known = {code.value for code in TtsLanguageCode}
    if not isinstance(value, str) or value not in known:
        raise InvalidInput(
            f"{value!r} is not a text-to-speech language Vonage supports: use a code like 'en-US', 'en-GB', "
            f"'de-DE' or 'fr-FR' (all {len(known)}: [c.value for c in vonage_voice.TtsLanguageCode])."
        )
    return value


def style(value: object) -> int:
    """A voice style: a whole number >= 0 (0 is the language's default voice)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"style must be a whole number >= 0 (0 is the default voice), not {value!r}.")
    return value


def port(value: object, what: str = "port") -> int:
    """A TCP port to listen on: 0 (any free port) to 65535."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise InvalidInput(f"{what} must be a whole number from 0 to 65535 (0 picks any free port), not {value!r}.")
    return value


def public_url(value: object, what: str = "URL") -> str:
    """An http(s) URL the platform can fetch (Vonage calls webhooks and fetches audio over http(s) only)."""
    parsed = urlparse(value) if isinstance(value, str) else None
    if parsed is None or parsed.scheme.lower() not in ("http", "https") or not parsed.netloc:
        raise InvalidInput(f"{value!r} is not an http(s) URL for the {what}: give one starting with https://.")
    return value


def seconds(value: object, what: str, low: int, high: int) -> int:
    """A whole number of seconds within the API's range (length_timer, ringing_timer)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{what} must be a whole number of seconds from {low} to {high}, not {value!r}.")
    return value


# UNCONFIRMED: Vonage documents no limit on an NCCO's size or number of actions (the NCCO reference, the
# Voice API reference and its OpenAPI 1.3.7, where `ncco` is an array with no maxItems; see
# /work/shared/reference/vonage-voice-api.md sections 1 and 4). These bounds are the lab's own guess at
# "far beyond any real call script": a tutorial NCCO has 1-10 actions and a few kilobytes. They stop a
# runaway loop (10,000 actions, a 5 MB script) before it is sent; change them here if Vonage names its own.
NCCO_MAX_ACTIONS = 100
NCCO_MAX_BYTES = 128 * 1024


def ncco_size(actions: list, encoded_bytes: int) -> None:
    """Refuse an NCCO over the lab's bounds (`NCCO_MAX_ACTIONS`, `NCCO_MAX_BYTES` of JSON) before sending it."""
    if len(actions) > NCCO_MAX_ACTIONS:
        raise InvalidInput(
            f"This NCCO has {len(actions)} actions; the lab sends at most {NCCO_MAX_ACTIONS} (labkit.validate."
            "NCCO_MAX_ACTIONS; Vonage documents no limit, so this bound is the lab's). A call script that "
            "long is usually a loop gone wrong: use loop=0 on a talk or stream to repeat it instead.")
    if encoded_bytes > NCCO_MAX_BYTES:
        raise InvalidInput(
            f"This NCCO is {encoded_bytes:,} bytes of JSON; the lab sends at most {NCCO_MAX_BYTES:,} "
            "(labkit.validate.NCCO_MAX_BYTES; Vonage documents no limit, so this bound is the lab's). "
            "Serve long audio as a file (stream) rather than text, or split the script across event webhooks.")
