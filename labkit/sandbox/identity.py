"""Where a running sandbox is and who it is: its addresses, the TLS trust a client needs, and the account's
credentials. `SandboxIdentity` is mixed into `labkit.sandbox.Sandbox` (labkit/sandbox/facade.py), whose
`__init__` and `start()` set what it reads (`_port`, `_tls`, `_creds`, `_account`, `_platform`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.errors import SandboxError
from labkit.sandbox.engine.regions import region_url_for
from labkit.sandbox.wire.tls import ensure_tls, write_bundle

if TYPE_CHECKING:  # pragma: no cover
    from labkit.sandbox.apis.accounts import Account

__all__ = ["SandboxIdentity"]


class SandboxIdentity:
    """The sandbox's addresses (port, base URLs, API host), TLS trust and account credentials."""

    http: bool
    vonage_hostnames: bool
    home: Path
    _port: int | None
    _tls: Any
    _creds: Any
    _account: Account
    _platform: Any

    @property
    def port(self) -> int:
        if self._port is None:
            raise SandboxError("The sandbox is not started: call sandbox.start() first.")
        return self._port

    @property
    def base_url(self) -> str:
        """'https://127.0.0.1:PORT' ('http://...' with http=True)."""
        return f"{'http' if self.http else 'https'}://127.0.0.1:{self.port}"

    @property
    def vonage_base_url(self) -> str:
        """'https://api.nexmo.com' (with ':PORT' unless 443): where clients with Vonage's host names
        reach this sandbox once api.nexmo.com maps to 127.0.0.1 (vonage_hostnames=True)."""
        scheme = "http" if self.http else "https"
        default = 80 if self.http else 443
        port = getattr(self, "vonage_port", None) or self.port  # 443 behind the proxy or the Node preload
        return f"{scheme}://api.nexmo.com" + ("" if port == default else f":{port}")

    @property
    def region_url(self) -> str:
        """The `region_url` answer webhooks carry: the sandbox's second address, or with vonage_hostnames
        the regional host name of the default application (labkit/sandbox/engine/regions.py)."""
        self.port  # noqa: B018 - raises when not started
        return region_url_for(self._platform, None)

    @property
    def region_host(self) -> str:
        """`region_url` as host[:port], for HttpClientOptions(api_host=...) of a call's requests."""
        return self.region_url.split("://", 1)[1]

    @property
    def api_host(self) -> str:
        """'127.0.0.1:PORT', for HttpClientOptions(api_host=...)."""
        return f"127.0.0.1:{self.port}"

    @property
    def ca_path(self) -> Path:
        """The sandbox CA certificate (PEM)."""
        if self._tls is None:
            self._tls = ensure_tls(self.home, vonage_hostnames=self.vonage_hostnames)
        return self._tls.ca_cert

    @property
    def ca_bundle(self) -> Path:
        """A CA bundle = the CAs the environment already trusts + the sandbox CA (rewritten on access)."""
        if self._tls is None:
            self._tls = ensure_tls(self.home, vonage_hostnames=self.vonage_hostnames)
        return write_bundle(self._tls, self.home / "tls" / "bundle.pem")

    def trust(self) -> Path:
        """Point REQUESTS_CA_BUNDLE at `ca_bundle`, so the SDK (requests) verifies the sandbox.

        The bundle keeps every CA already trusted, so other HTTPS requests keep working.
        """
        bundle = self.ca_bundle
        os.environ["REQUESTS_CA_BUNDLE"] = str(bundle)
        return bundle

    @property
    def application_id(self) -> str:
        return self._creds.application_id

    @property
    def private_key_path(self) -> Path:
        """The application's private key (PKCS#8 PEM), made once per installation."""
        return self._creds.private_key_path

    @property
    def api_key(self) -> str:
        """The account's (fake) API key, as carried in signed webhooks."""
        return self._creds.api_key

    @property
    def api_secret(self) -> str:
        """The account's (fake) API secret: HTTP Basic with `api_key` for the Application and Numbers APIs."""
        return self._creds.api_secret

    @property
    def signature_secret(self) -> str:
        """The account's webhook signature secret (signs the webhooks of applications with
        signed_callbacks on, as Vonage does with the secret on the dashboard's settings page)."""
        return self._account.signature_secret

    @property
    def account(self) -> Account:
        """The account's applications and numbers (what the Application and Numbers APIs serve)."""
        return self._account

    @property
    def number(self) -> str:
        """The application's own virtual Vonage number (inbound calls reach it via `dial`)."""
        return self._platform.number
