"""Each call is controlled where Vonage says: at the `region_url` of its answer webhook (or of an event).

Vonage sends `region_url`, "Regional API endpoint which should be used to control the call with REST API"
(vonage-java-sdk `voice/AnswerWebhook.java`; developer.vonage.com/en/voice/voice-api/concepts/regions), for
example `https://api-us-3.vonage.com` (vonage-voice-api.md, Voice REST "Hosts"). A call exists in one region,
and a control request sent to another "will return a 404" (vonage-platform.md section 9, [NDP:troubleshooting]).
So the lab keeps each call's host, and that call's stream, talk, DTMF, mute, earmuff, transfer, hang-up and
details requests go there, on a Voice client with the same credentials (the application's JWT). Creating
calls and downloading recordings keep the lab's host; the Application and Numbers APIs keep their own
(labkit.live.account); VONAGE_API_HOST stays the override for everything else (tests, capture stubs).

A `region_url` is followed only to a host that may receive the application's JWT: in live mode Vonage's own
(`*.vonage.com`, `*.nexmo.com`, judged by the last two labels as for recording downloads); in sandbox mode
the running sandbox's regional address; and with VONAGE_API_HOST set (a test's Vonage-compatible host, which
already receives the JWT) only that host name, on any port: the override stays whole, so a test's calls
never reach Vonage. A forged answer request cannot send the credentials elsewhere: an untrusted
`region_url` is ignored (one `region-ignored` event line) and the call stays on the lab's host.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

from labkit.lab.startup import voice_client

__all__ = ["LabRegions", "region_host"]


def region_host(url: Any, trusted_hosts: tuple[str, ...] = (), trusted_names: tuple[str, ...] = (), *,
                vonage: bool = True) -> str | None:
    """`host[:port]` of an https `region_url` the JWT may go to, else None.

    `trusted_hosts`: exact `host:port` values (the sandbox's regional address); `trusted_names`: host
    names accepted on any port (VONAGE_API_HOST's); `vonage`: Vonage's own hosts too."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").lower().rstrip(".")
    if parts.scheme != "https" or not host or parts.username or parts.password or parts.path not in ("", "/"):
        return None
    netloc = host + (f":{port}" if port else "")
    ours = vonage and host.split(".")[-2:] in (["nexmo", "com"], ["vonage", "com"])
    if ours or netloc in {h.lower() for h in trusted_hosts if h} or host in {n.lower() for n in trusted_names if n}:
        return netloc
    return None


class LabRegions:
    """The calls' regions: noted from webhooks, used by `Call` for its REST requests. Mixed into `Lab`."""

    _regions: dict[str, str]
    _regional: dict[str, Any]

    def _region_trust(self) -> dict[str, Any]:
        """What `region_host` accepts for this lab (see the module docstring)."""
        sandbox = getattr(self, "sandbox", None)
        if sandbox is not None:
            return {"trusted_hosts": (sandbox.region_host,), "vonage": False}
        api_host = self.settings.api_host if self.mode == "live" else None  # type: ignore[attr-defined]
        if api_host:
            return {"trusted_names": (urlsplit(f"https://{api_host}").hostname or "",), "vonage": False}
        return {"vonage": True}

    def _note_region(self, payload: dict[str, Any]) -> None:
        """Keep the `region_url` a webhook brings for its call (the first trusted one wins)."""
        url, uuid = payload.get("region_url"), payload.get("uuid")
        if not url or not isinstance(uuid, str) or uuid in self._regions:
            return
        host = region_host(url, **self._region_trust())
        if host is None:
            self.events.add("lab", {"uuid": uuid, "status": "region-ignored",  # type: ignore[attr-defined]
                                    "region_url": str(url)[:200],
                                    "reason": "not a host the lab sends its credentials to: the call stays on "
                                              "the lab's Voice API host"})
            return
        self._regions[uuid] = host

    def region_of(self, uuid: str) -> str | None:
        """The host call `uuid` is controlled at, when its webhooks named one."""
        host = self._regions.get(uuid)
        return f"https://{host}" if host else None

    def voice_for(self, uuid: str) -> Any:
        """The Voice client for call `uuid`: the lab's own, or one on the call's regional host with the
        same credentials and timeout (made once per host)."""
        voice = self.voice  # type: ignore[attr-defined]  # raises when the lab is not running
        host = self._regions.get(uuid)
        if not host or host == voice.http_client.api_host:
            return voice
        with _LOCK:
            client = self._regional.get(host)
            if client is None:
                from vonage_http_client import HttpClientOptions

                base = voice.http_client
                client = voice_client(base.auth, HttpClientOptions(api_host=host, rest_host=base.rest_host,
                                                                   timeout=base._timeout))  # noqa: SLF001 - no public accessor
                self._regional[host] = client
        return client


_LOCK = threading.Lock()
