"""Why a call went wrong, in the words of the person whose app it is.

The engine keeps each leg's precise failures (`SandboxCall.errors`: "answer_url URL: connection failed
(ConnectionError)", an NCCO's validation detail, a stream it could not fetch). The control API, the
softphone page and the notebook panel show them as one sentence that says what happened to *your app*
and what to do, so a person sees why without opening a terminal. One mapping, used by every surface.
"""

from __future__ import annotations

import re

_WEBHOOK = re.compile(r"^(?P<which>answer_url|event_url|fallback_url) (?P<url>\S+): (?P<why>.*)$")


def in_words(error: str) -> str:
    """One engine error as a sentence for the app's author."""
    found = _WEBHOOK.match(error)
    if found:
        url, why = found["url"], found["why"]
        if why.startswith("connection failed"):
            return f"your app at {url} refused the connection: is it running, on that port?"
        if why.startswith("timeout"):
            return f"your app at {url} did not answer in time: is a handler stuck or slow?"
        if why.startswith("HTTP "):
            code = why.split()[1]
            hint = "look at your app's log for the error" if code.startswith("5") else \
                "check the route and method your app serves"
            return f"your app at {url} answered HTTP {code}: {hint}"
        if "not JSON" in why:
            return f"your app at {url} answered, but not with an NCCO (a JSON list of actions)"
        return f"your app at {url} could not be reached: {why}"
    if error.startswith(("stream ", "musicOnHoldUrl ")):
        return f"an audio file could not be played ({error}): check its URL and that it is MP3 or WAV"
    if error.startswith("could not open "):
        return f"{error}: is your WebSocket server running?"
    if "NCCO" in error or error.startswith(("action ", "the NCCO")):
        return f"your app's NCCO was refused: {error}"
    return error


def problem(errors: list[str]) -> str | None:
    """The first thing that went wrong on a leg, in words (None when nothing did)."""
    return in_words(errors[0]) if errors else None
