"""`VonageSandbox`: one sandbox as a test sees it, started as its own process (`labkit sandbox`, the
default) or in this process, with everything an app needs to use it and the control API to drive it.

    sb = VonageSandbox.start(home, speed=10)            # or in_process=True
    sb.api_host, sb.ca_bundle, sb.application_id, sb.private_key_path, sb.number, sb.env()
    sb.client()                                          # the vonage SDK pointed at it
    sb.configure_app(answer_url=..., event_url=...)      # through the Application API, as on Vonage
    sb.phone("447700900001", answer_after=0).dial()
    sb.reset(); sb.stop()

Either way it is reached only over HTTPS (the Voice, Application and Numbers APIs and `/_labkit/`), so
a test behaves the same in both modes and the process mode is what any other language gets.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from labkit.sandbox.control.client import RemoteSandbox, connect
from labkit.testing.calls import Call
from labkit.testing.phones import Phone

__all__ = ["VonageSandbox"]


class VonageSandbox:
    """A running sandbox for tests: addresses, credentials, `env()`, SDK clients, phones, reset."""

    def __init__(self, *, url: str, ca_path: str | None, ca_bundle: str | None, application_id: str,
                 private_key_path: str, api_key: str, api_secret: str, signature_secret: str, number: str,
                 speed: float, chaos: str | None, owner: Any) -> None:
        self.url = url
        self.api_host = url.split("://", 1)[1]  # HttpClientOptions(api_host=...): host:port, no scheme
        self.rest_host = self.api_host  # the Application and Numbers APIs are on the same port
        self.ca_path = ca_path
        self.ca_bundle = ca_bundle
        self.application_id = application_id
        self.private_key_path = Path(private_key_path)
        self.api_key = api_key
        self.api_secret = api_secret
        self.signature_secret = signature_secret
        self.number = number
        self.speed = speed
        self.chaos = chaos
        self.signed = True  # signed_callbacks for configure_app unless told (the marker's `signed`)
        self._client: Any = None
        self._owner = owner  # the SandboxProcess, or the in-process Sandbox
        self.remote: RemoteSandbox = connect(url, verify=ca_path or True)

    # ------------------------------------------------------------------ start / stop

    @classmethod
    def start(cls, home: Path, *, speed: float = 1.0, chaos: str | None = None,
              in_process: bool = False) -> VonageSandbox:
        """Start a sandbox with its keys and certificates in `home` (made once per home)."""
        if in_process:
            return cls._start_in_process(home, speed, chaos)
        from labkit.testing.process import SandboxProcess

        flags = ["--chaos", chaos] if chaos else []
        proc = SandboxProcess(home, *flags, speed=speed)
        try:
            rows = proc.rows
            return cls(url=proc.url, ca_path=proc.ca, ca_bundle=proc.bundle,
                       application_id=rows["application id"], private_key_path=rows["private key"],
                       api_key=rows["API key"], api_secret=rows["API secret"],
                       signature_secret=rows["signature secret"], number=rows["number"], speed=speed,
                       chaos=chaos, owner=proc)
        except Exception:
            proc.stop()
            raise

    @classmethod
    def _start_in_process(cls, home: Path, speed: float, chaos: str | None) -> VonageSandbox:
        from labkit.sandbox import Sandbox

        sb = Sandbox(speed=speed, home=home)
        if chaos:
            from labkit.sandbox.wire.webhooks import WebhookChaos

            sb.webhook_chaos = WebhookChaos.parse(chaos)
        sb.start()
        return cls(url=sb.base_url, ca_path=str(sb.ca_path), ca_bundle=str(sb.ca_bundle),
                   application_id=sb.application_id, private_key_path=str(sb.private_key_path),
                   api_key=sb.api_key, api_secret=sb.api_secret, signature_secret=sb.signature_secret,
                   number=sb.number, speed=speed, chaos=chaos, owner=sb)

    @property
    def in_process(self) -> bool:
        return not hasattr(self._owner, "proc")

    @property
    def sandbox(self) -> Any:
        """The in-process `labkit.sandbox.Sandbox` (AttributeError in process mode: use the control API)."""
        if not self.in_process:
            raise AttributeError("this sandbox runs in its own process: drive it with .remote (the control API)")
        return self._owner

    def stop(self) -> None:
        self.remote.close()
        self._owner.stop()

    def reset(self) -> None:
        """Forget every call, phone, recording and webhook (between tests)."""
        self.remote.reset()

    # ------------------------------------------------------------------ what an app needs

    def env(self) -> dict[str, str]:
        """The environment an app (Python, Node, or a CLI) needs to use this sandbox instead of Vonage.

        VONAGE_* for the app's own settings; REQUESTS_CA_BUNDLE (the Python SDK, through requests) and
        SSL_CERT_FILE (httpx, aiohttp, urllib) get the bundle of system CAs plus the sandbox CA;
        NODE_EXTRA_CA_CERTS (Node, the Node SDK) the sandbox CA; VONAGE_API_URL is the Node SDK's `apiHost`.
        """
        env = {
            "VONAGE_APPLICATION_ID": self.application_id,
            "VONAGE_PRIVATE_KEY": str(self.private_key_path),
            "VONAGE_API_KEY": self.api_key,
            "VONAGE_API_SECRET": self.api_secret,
            "VONAGE_SIGNATURE_SECRET": self.signature_secret,
            "VONAGE_NUMBER": self.number,
            "VONAGE_API_HOST": self.api_host,
            "VONAGE_REST_HOST": self.rest_host,
            "VONAGE_API_URL": self.url,
            "LABKIT_SANDBOX_URL": self.url,
        }
        if self.ca_bundle:
            env["REQUESTS_CA_BUNDLE"] = str(self.ca_bundle)
            env["SSL_CERT_FILE"] = str(self.ca_bundle)
        if self.ca_path:
            env["NODE_EXTRA_CA_CERTS"] = str(self.ca_path)
        return env

    def trust(self) -> None:
        """Point this process's REQUESTS_CA_BUNDLE at the bundle, so the Python SDK verifies the sandbox
        (the SDK's session honours the environment's bundle over its own `verify`)."""
        if self.ca_bundle:
            os.environ["REQUESTS_CA_BUNDLE"] = str(self.ca_bundle)

    def client(self, timeout: int = 10) -> Any:
        """The vonage Python SDK configured for this sandbox: JWT (application id and key) for the Voice
        API, API key and secret for the Application and Numbers APIs."""
        from vonage import Auth, HttpClientOptions, Vonage

        self.trust()
        if self._client is not None and timeout == 10:
            return self._client
        client = Vonage(Auth(application_id=self.application_id, private_key=str(self.private_key_path),
                             api_key=self.api_key, api_secret=self.api_secret),
                        HttpClientOptions(api_host=self.api_host, rest_host=self.rest_host, timeout=timeout))
        if timeout == 10:
            self._client = client
        return client

    # ------------------------------------------------------------------ the application

    def configure_app(self, answer_url: str | None = None, event_url: str | None = None,
                      fallback_url: str | None = None, *, answer_method: str = "GET", event_method: str = "POST",
                      signed: bool | None = None) -> dict:
        """Point the sandbox's application (the one its number is linked to) at an app, through the
        Application API as on Vonage (`PUT /v2/applications/{id}`). `signed` is `signed_callbacks`
        (default `self.signed`, on as on Vonage), so webhooks carry a JWT signed with `signature_secret`.
        Returns the application as the API answered it."""
        from vonage_application import ApplicationConfig, Capabilities, Voice, VoiceUrl, VoiceWebhooks

        hooks: dict[str, Any] = {}
        if answer_url:
            hooks["answer_url"] = VoiceUrl(address=answer_url, http_method=answer_method.upper())
        if event_url:
            hooks["event_url"] = VoiceUrl(address=event_url, http_method=event_method.upper())
        if fallback_url:
            hooks["fallback_answer_url"] = VoiceUrl(address=fallback_url, http_method=answer_method.upper())
        config = ApplicationConfig(name="labkit sandbox", capabilities=Capabilities(
            voice=Voice(webhooks=VoiceWebhooks(**hooks), signed_callbacks=self.signed if signed is None else signed)))
        app = self.client().application.update_application(self.application_id, config)
        return app.model_dump(exclude_none=True)

    # ------------------------------------------------------------------ phones and calls

    def phone(self, number: str, **behaviour: Any) -> Phone:
        """A virtual phone (answer_after, outcome, hangup_after, machine); see labkit/testing/phones.py."""
        return Phone(self.remote, number, **behaviour)

    def call(self, uuid: str) -> Call:
        """A call by its uuid (e.g. what `create_call` returned), with its phone when it has one; a busy
        or failing phone never holds the call, so this is how a test finds those."""
        view = self.remote.call(uuid)
        phone = Phone(self.remote, view["phone"]) if view.get("phone") else None
        return Call(self.remote, uuid, phone)

    @property
    def webhooks(self) -> dict:
        """Every webhook the sandbox sent this test (GET /_labkit/webhooks), with chaos counts."""
        return self.remote.webhooks

    def __repr__(self) -> str:
        mode = "in-process" if self.in_process else "process"
        return f"<VonageSandbox {self.url} {mode} speed={self.speed:g}{' chaos' if self.chaos else ''}>"
