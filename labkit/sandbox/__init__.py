"""A faithful local Vonage Voice API: the real `vonage` SDK talks to it over HTTPS.

    from labkit.sandbox import Sandbox
    sb = Sandbox(speed=1.0).start()          # idempotent; HTTPS on 127.0.0.1 (port 0 = any free port)
    sb.trust()                               # REQUESTS_CA_BUNDLE -> system CAs + the sandbox CA
    account = Vonage(Auth(api_key=sb.api_key, api_secret=sb.api_secret),      # as on Vonage: the
                     HttpClientOptions(api_host=sb.api_host, rest_host=sb.api_host))  # Application API
    account.application.update_application(sb.application_id, ...)  # sets its answer/event URLs
    client = Vonage(Auth(application_id=sb.application_id, private_key=sb.private_key_path),
                    HttpClientOptions(api_host=sb.api_host, timeout=10))
    client.voice.create_call(...)            # the sandbox calls your webhooks, runs the NCCO ...
    sb.phone("447700900001").heard           # ... and the virtual phone keeps what it heard
    sb.stop()

Layout (like moto's models, split): `facade` (the `Sandbox` object) and `identity` (its addresses and
credentials), `platform` (state and registry), `legs`, `conversations`, `recordings`, `platform_audio`
(players and the mixing tick), `lifecycle` (each leg's story), `ncco` (validation and actions), `api`
(what each endpoint does), `responses` (HTTP), `exceptions` (wire format of errors), `applications` +
`responses_accounts` (the account: Application API v2 and Numbers API), `auth`, `tls`, `webhooks`,
`clock`, `mixer`, `phones` + `heard_audio`, `websocket_leg`, `sources`. The sandbox is deterministic
apart from real time: at `speed=10` every timer and the audio clock run ten times faster.
"""

from __future__ import annotations

from typing import Any

from labkit.sandbox.facade import Sandbox
from labkit.sandbox.legs import SandboxCall
from labkit.sandbox.phones import VirtualPhone

__all__ = ["Sandbox", "SandboxCall", "VirtualPhone", "connect"]


def connect(url: str, *, verify: Any = None, token: str | None = None) -> Any:
    """A sandbox started elsewhere (`labkit sandbox`), driven over its control API with the same phone
    methods as here: `connect(url).phone("447700900001").say(text="hi")` (see labkit/sandbox/client.py)."""
    from labkit.sandbox.client import connect as _connect

    return _connect(url, verify=verify, token=token)
