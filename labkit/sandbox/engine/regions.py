"""The `region_url` the sandbox sends in answer webhooks, and where each call's control requests arrived.

Vonage's answer webhook carries `region_url`, "Regional API endpoint which should be used to control the
call with REST API" (vonage-java-sdk `voice/AnswerWebhook.java`), e.g. `https://api-us-3.vonage.com`
(developer.vonage.com/en/vcr/providers/voice, vonage-voice-api.md "Hosts"). The sandbox sends a regional
address too, so a client that ignores it is seen doing so:

- with `--vonage-hostnames`, the real regional host name of the application's `region` (the Application
  API's `region` values and their hosts, [OAS-APP]); with no region set, `api-us-3.vonage.com`, the
  documented example (UNCONFIRMED: which region Vonage names for an application without one);
- otherwise a second address of the sandbox's own (the same API on a second port of 127.0.0.1).

Each leg counts the Voice API requests about it by the host they were sent to (`control_hosts`, shown by
the control API's call view). The sandbox serves a call at either address (whether Vonage answers 404 at
the global host for a call in a region is not documented beyond the 2021 troubleshooting guide).
"""

from __future__ import annotations

from typing import Any

__all__ = ["REGION_HOSTS", "region_url_for"]

# Application API `capabilities.voice.region` -> its host [OAS-APP], [PY-APP:enums.py]
REGION_HOSTS = {"na-east": "api-us-3.vonage.com", "na-west": "api-us-4.vonage.com",
                "eu-east": "api-eu-4.vonage.com", "eu-west": "api-eu-3.vonage.com",
                "apac-sng": "api-ap-3.vonage.com", "apac-australia": "api-ap-4.vonage.com"}
DEFAULT_REGION_HOST = "api-us-3.vonage.com"  # UNCONFIRMED: the documented example value


def region_url_for(p: Any, leg: Any) -> str:
    """The `region_url` of `leg`'s answer webhook (see the module docstring)."""
    if p.region_base:
        return p.region_base
    if p.vonage_port is None:
        return p.base_url
    app = p.account.get(getattr(leg, "application_id", None)) if p.account is not None else None
    region = (getattr(app, "voice_extra", None) or {}).get("region")
    host = REGION_HOSTS.get(str(region), DEFAULT_REGION_HOST)
    scheme, default = ("http", 80) if p.base_url.startswith("http://") else ("https", 443)
    return f"{scheme}://{host}" + ("" if p.vonage_port == default else f":{p.vonage_port}")
