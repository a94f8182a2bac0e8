"""How a lab starts: the webhook server and socket hub first, then the mode's part (the sandbox, or the
tunnel and the live account), then the SDK client. `LabStartup` is mixed into `labkit.lab.facade.Lab`, which
holds the state these methods set; `Lab.start()` (idempotent, arguments checked) calls `_start()`.
"""

from __future__ import annotations

import secrets
import threading
from urllib.parse import urlparse

from labkit.config import load_private_key, recordings_dir
from labkit.errors import LabkitError, SandboxError

__all__ = ["HTTP_TIMEOUT", "REGISTRY_THREAD", "LabStartup", "voice_client", "warn_unsigned"]

REGISTRY_THREAD = "labkit-lab"
HTTP_TIMEOUT = 10.0  # seconds: the SDK has none by default, and a hung server would block a cell forever


class LabStartup:
    """The lab's start-up, by mode (sandbox or live); the state it sets belongs to `Lab`."""

    def _start(self) -> None:
        from labkit.server import ServerContext, ServerRunner, create_app
        from labkit.server.browser_audio import BrowserAudioHub
        from labkit.server.limits import limits_for
        from labkit.server.sockets import SocketHub

        if self.mode == "live":
            self.settings.require_live()
        self._signature_secret = self.settings.signature_secret if self.mode == "live" \
            else secrets.token_urlsafe(24)
        self.sockets = SocketHub(self.events, resolve_audio=self.audio_path, folder=recordings_dir(),
                                 speed=self._speed if self.mode == "sandbox" else 1.0)
        ctx = ServerContext(events=self.events, answer=self._on_answer_webhook,
                            instruction=self._on_event_webhook, audio_dirs=self.audio_dirs,
                            signature_secret=self._signature_secret, sockets=self.sockets, mode=self.mode,
                            browser_audio=BrowserAudioHub())
        self._ctx = ctx
        self.browser_audio = ctx.browser_audio
        self.runner = ServerRunner(create_app(ctx), "127.0.0.1", self._requested_port,
                                   on_stop=self._close_connections, limits=limits_for(self.settings.env_file)).start()
        if self.mode == "sandbox":
            self._start_sandbox()
        else:
            self._start_live()
        self._keeper = threading.Thread(target=self._stop_event.wait, name=REGISTRY_THREAD, daemon=True)
        self._keeper.lab = self  # type: ignore[attr-defined]
        self._keeper.start()
        if not self._quiet:
            print(self.describe())
            if self._account_note:
                print(self._account_note)

    def _close_connections(self) -> str | None:
        """The server is stopping: the pages' audio sockets, then the calls' (what had to be cut, if any)."""
        self.browser_audio.close_all()
        return self.sockets.close_all()

    def _start_sandbox(self) -> None:
        from vonage_http_client import HttpClientOptions

        from labkit.sandbox import Sandbox
        from labkit.sdk_auth import ParsedKeyAuth as Auth  # the RSA key parsed once, not per request

        self.public_url = self.local_url
        try:
            sb = Sandbox(port=0, speed=self._speed).start()
        except LabkitError:
            raise
        except Exception as exc:
            raise SandboxError(f"The sandbox could not start: {type(exc).__name__}: {exc}") from exc
        sb.trust()
        self.sandbox = sb
        self._ctx.application_id = sb.application_id
        # The account's signature secret, as a user copies it from the dashboard; the application is
        # then configured through the Application API, exactly as in live mode (labkit/live/account.py).
        self._signature_secret = self._ctx.signature_secret = sb.signature_secret
        from labkit.live.account import LabUrls, clients, point_application

        apps, numbers = clients(sb.api_key, sb.api_secret, api_host=sb.api_host, rest_host=sb.api_host)
        point_application(apps, numbers, sb.application_id, LabUrls.for_base(self.public_url),
                          number=sb.number, signed=True)
        self.number = sb.number
        self._voice = voice_client(Auth(application_id=sb.application_id, private_key=str(sb.private_key_path)),
                                   HttpClientOptions(api_host=sb.api_host, timeout=HTTP_TIMEOUT))

    def _start_live(self) -> None:
        from vonage_http_client import HttpClientOptions

        from labkit.live.tunnel.tunnel import Tunnel
        from labkit.sdk_auth import ParsedKeyAuth as Auth  # the RSA key parsed once, not per request

        s = self.settings
        key = load_private_key(s.private_key or "")  # PKCS#8 text: the SDK refuses PKCS#1
        self.tunnel = Tunnel(s)
        self.public_url = self.tunnel.open(self.port).rstrip("/")
        host = urlparse(self.public_url).hostname
        if host:
            self._ctx.allowed_hosts.add(host.lower())
        self.number = s.vonage_number
        hosts = {k: v for k, v in (("api_host", s.api_host), ("rest_host", s.rest_host)) if v}
        self._ctx.application_id = s.application_id
        if not self._signature_secret:
            warn_unsigned(self.public_url)
        self._voice = voice_client(Auth(application_id=s.application_id, private_key=key),
                                   HttpClientOptions(timeout=HTTP_TIMEOUT, **hosts))
        from labkit.live.account import follow_lab

        self._account_note, self._account_restore = follow_lab(s, self.public_url, take_number=self._take_number)


def warn_unsigned(public_url: str) -> None:
    """Live mode without a signature secret: say plainly what the open tunnel allows, and the fix."""
    import sys

    from labkit.lab.webhooks import UNSIGNED_SOCKETS_NOTE

    print(f"WARNING: VONAGE_SIGNATURE_SECRET is not set, so the lab cannot tell Vonage's webhooks from anyone "
          f"else's. Anyone who finds {public_url} can post fake call events, fetch call scripts (and the "
          "socket links in them) from the answer webhook, and download the lab's audio files. Set "
          "VONAGE_SIGNATURE_SECRET in .env to the signature secret from the Vonage dashboard (API settings), "
          "turn on signed callbacks for the application, and restart the lab. " + UNSIGNED_SOCKETS_NOTE,
          file=sys.stderr)


def voice_client(auth, options):
    """The SDK's Voice client on its HTTP client, as `vonage.Vonage` builds it, without importing every
    other Vonage API along with it (`import vonage` alone costs about 0.4 s)."""
    from importlib.metadata import version

    from vonage_http_client import HttpClient
    from vonage_voice import Voice

    return Voice(HttpClient(auth, options, version("vonage")))
