"""`labkit sandbox` in its own process, for the project's tests: the harness ships with the package
(labkit/testing/process.py, what the pytest plugin's `vonage_sandbox` uses); here it gains the raw-wire
helpers the sandbox's own tests use (a request as curl makes it, the application's JWT)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import requests

from labkit.testing.process import READY, labkit_command
from labkit.testing.process import SandboxProcess as _SandboxProcess

__all__ = ["READY", "PluginSandbox", "SandboxProcess", "labkit_command"]


class SandboxProcess(_SandboxProcess):
    """The package's harness, plus requests on the wire for the sandbox's own tests."""

    def raw(self, method: str, path: str, **kw: Any) -> requests.Response:
        """One request to the sandbox (`path` from the root, e.g. "/_labkit/phones"), as curl would make it."""
        kw.setdefault("timeout", 30)
        return requests.request(method, self.url + path, verify=self.ca or True, **kw)

    def request(self, method: str, control_path: str, **kw: Any) -> requests.Response:
        """A control API request (`/_labkit/<control_path>`) that must succeed."""
        r = self.raw(method, f"/_labkit/{control_path}", **kw)
        assert r.status_code < 400, f"{method} /_labkit/{control_path}: {r.status_code} {r.text[:300]}"
        return r

    def bearer(self) -> dict[str, str]:
        """`Authorization: Bearer <JWT>` of the sandbox application (its private key under --home), as the
        SDKs sign Voice API requests (RS256, application_id, iat, exp, jti)."""
        now = int(time.time())
        claims = {"application_id": self.rows["application id"], "iat": now, "exp": now + 600,
                  "jti": str(uuid.uuid4())}
        token = jwt.encode(claims, (self.home / "private.key").read_bytes(), algorithm="RS256")
        return {"Authorization": f"Bearer {token}"}


class PluginSandbox:
    """The pytest plugin's `vonage_sandbox` in process mode (one `labkit sandbox` per session and xdist
    worker, reset before each test), seen as the sandbox's own tests see a `SandboxProcess`: the banner's
    rows, url, CA and home of the process, and the same raw-wire helpers."""

    raw = SandboxProcess.raw
    request = SandboxProcess.request
    bearer = SandboxProcess.bearer

    def __init__(self, vonage_sandbox: Any) -> None:
        self.vonage = vonage_sandbox
        self._proc = vonage_sandbox._owner  # labkit.testing.process.SandboxProcess

    def __getattr__(self, name: str) -> Any:
        return getattr(self._proc, name)
