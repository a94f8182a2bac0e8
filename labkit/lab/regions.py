"""Each call is controlled where Vonage says: at the `region_url` of its answer webhook (or of an event).

Vonage sends `region_url`, "Regional API endpoint which should be used to control the call with REST API"
(vonage-java-sdk `voice/AnswerWebhook.java`; developer.vonage.com/en/voice/voice-api/concepts/regions), for
example `https://api-us-3.vonage.com` (vonage-voice-api.md, Voice REST "Hosts"). A call exists in one region,
and a control request sent to another "will return a 404" (vonage-platform.md section 9, [NDP:troubleshooting]).
So the lab keeps each call's host, and that call's stream, talk, DTMF, mute, earmuff, transfer, hang-up and
details requests go there, on a Voice client with the same credentials (the application's JWT). Creating
calls and downloading recordings keep the lab's host; the Application and Numbers APIs keep their own
(labkit.live.account); VONAGE_API_HOST stays the override for everything else (tests, capture stubs).

A `region_url` is followed only to a host that may receive the application's JWT: Vonage's own
(`*.vonage.com`, `*.nexmo.com`, judged by the last two labels as for recording downloads), the running
sandbox's regional address, or (live mode with VONAGE_API_HOST, which already receives the JWT) the same
host name as VONAGE_API_HOST on any port. A forged answer request cannot send the credentials elsewhere: an
untrusted `region_url` is ignored (one `region-ignored` event line) and the call stays on the lab's host.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

from labkit.lab.startup import voice_client

__all__ = ["LabRegions", "region_host"]


def region_host(url: Any, trusted_hosts: tuple[str, ...] = (), trusted_names: tuple[str, ...] = ()) -> str | None:
    """`host[:port]` of an https `region_url` the JWT may go to, else None.

    `trusted_hosts`: exact `host:port` values (the sandbox's regional address); `trusted_names`: host
    names accepted on any port (VONAGE_API_HOST's, in live mode)."""
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
    vonage = host.split(".")[-2:] in (["nexmo", "com"], ["vonage", "com"])
    if vonage or netloc in {h.lower() for h in trusted_hosts if h} or host in {n.lower() for n in trusted_names if n}:
        return netloc
    return None


class LabRegions:
    """The calls' regions: noted from webhooks, used by `Call` for its REST requests. Mixed into `Lab`."""

    _regions: dict[str, str]
    _regional: dict[str, Any]

    def _trusted_region_hosts(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        sandbox = getattr(self, "sandbox", None)
        if sandbox is not None:
            return (sandbox.region_host,), ()
        api_host = self.settings.api_host if self.mode == "live" else None  # type: ignore[attr-defined]
        return (), ((urlsplit(f"https://{api_host}").hostname or "",) if api_host else ())

    def _note_region(self, payload: dict[str, Any]) -> None:
        """Keep the `region_url` a webhook brings for its call (the first trusted one wins)."""
        url, uuid = payload.get("region_url"), payload.get("uuid")
        if not url or not isinstance(uuid, str) or uuid in self._regions:
            return
        host = region_host(url, *self._trusted_region_hosts())
        if host is None:
            self.events.add("lab", {"uuid": uuid, "status": "region-ignored",  # type: ignore[attr-defined]
                                    "region_url": str(url)[:200],
                                    "reason": "not a Vonage host: the call stays on the lab's Voice API host"})
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
