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

Layout, in layers (moto's split of state from HTTP, and its `moto_api` control surface apart):

    facade.py, identity.py  the `Sandbox` object that starts the parts, and where it is and who it is
    heap.py                 start-up objects frozen out of full garbage collections while it runs
    app.py                  the HTTPS app: the emulated APIs plus the control surface on one port
    control/                the emulator's own surface: /_labkit/ API, its OpenAPI, the page, connect()
    apis/                   the Voice, Application and Numbers APIs as Vonage serves them (auth, errors)
    engine/                 the platform model: calls, legs, conversations, phones, the NCCO engine
    audio/                  mixer, audio sources, speech, what a phone heard, WebSocket legs
    wire/                   HTTPS server, TLS, the webhook client (signing, chaos)

May import: media and the foundations (labkit.errors, labkit.signing, ...); never the lab's server, the
lab, live mode or the widgets. Inside, each layer imports only those below it. The sandbox is deterministic
apart from real time: at `speed=10` every timer and the audio clock run ten times faster.
"""

from __future__ import annotations

from typing import Any

from labkit.sandbox.engine.legs import SandboxCall
from labkit.sandbox.engine.phones import VirtualPhone
from labkit.sandbox.facade import Sandbox

__all__ = ["Sandbox", "SandboxCall", "VirtualPhone", "connect"]


def connect(url: str, *, verify: Any = None, token: str | None = None) -> Any:
    """A sandbox started elsewhere (`labkit sandbox`), driven over its control API with the same phone
    methods as here: `connect(url).phone("447700900001").say(text="hi")` (see labkit/sandbox/control/client.py)."""
    from labkit.sandbox.control.client import connect as _connect

    return _connect(url, verify=verify, token=token)
