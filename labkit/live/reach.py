"""Can the platform fetch an audio URL? Checked before a REST stream is started.

Vonage answers `PUT /stream` with 200 whatever the URL, and its documentation names no event for a
stream it could not fetch (reference/vonage-voice-api.md, stream; UNCONFIRMED), so a typo would
otherwise play silence with no trace. The lab asks the URL itself first: the sandbox runs on this
machine, so what fails here fails there; in live mode Vonage fetches from the internet, so a loopback
or private address is refused outright.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlparse

from labkit.errors import AudioError, InvalidInput

PROBE_TIMEOUT = 5.0  # seconds: Vonage's own fetch gives up about as soon (UNCONFIRMED)


def _private(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False  # unresolvable here: the probe below says so
    addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}
    return bool(addresses) and all(a.is_loopback or a.is_private or a.is_link_local for a in addresses)


def check_audio_url(url: str, *, live: bool, timeout: float = PROBE_TIMEOUT) -> None:
    """Raise a labkit error saying why the platform could not fetch `url`; return when it can."""
    import requests

    host = urlparse(url).hostname or ""
    if live and _private(host):
        raise InvalidInput(
            f"{url} is on {host}, which only this network can reach: Vonage fetches stream audio from the "
            "internet. Give the name of a file the lab serves (it is reached through the tunnel), or a public URL."
        )
    try:
        with requests.get(url, headers={"Range": "bytes=0-1023"}, timeout=timeout, stream=True,
                          allow_redirects=True) as response:
            status, kind = response.status_code, response.headers.get("Content-Type", "")
    except requests.RequestException as exc:
        reason = type(exc).__name__.replace("Error", " error").replace("Timeout", "timeout").strip()
        raise AudioError(
            f"{url} could not be fetched ({reason}), so the call would hear nothing. Check the address, or "
            "give the name of a file the lab serves; pass check=False if only Vonage can reach it."
        ) from None
    if status >= 400:
        raise AudioError(
            f"{url} answered HTTP {status}, so the call would hear nothing. Check the address, or give the "
            "name of a file the lab serves."
        )
    if kind and not kind.lower().startswith(("audio/", "application/octet-stream", "binary/")):
        raise AudioError(f"{url} is {kind.split(';')[0]}, not audio: Vonage plays MP3 or WAV files.")
