"""Downloading the file of a `record` action, with the application's JWT sent to Vonage's hosts only.

`LabDownloads` is mixed into `labkit.lab.facade.Lab` (it uses the lab's Voice client, settings, sandbox and
socket hub's folder).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from labkit.errors import CallError, InvalidInput
from labkit.lab.calls import api_errors
from labkit.lab.startup import HTTP_TIMEOUT

__all__ = ["LabDownloads"]


class LabDownloads:
    """`lab.download_recording(...)`."""

    def download_recording(self, url_or_event: Any, path: str | os.PathLike | None = None):
        """Fetch the file of a `record` action (its event, or the event's recording_url) as a Recording.

        Works in both modes, with the application's JWT and a timeout. (The SDK's own
        `download_recording` accepts only vonage.com / nexmo.com URLs, so it refuses the sandbox's.)
        """
        import requests

        from labkit.media.recording import Recording

        payload = getattr(url_or_event, "payload", url_or_event)
        url = payload.get("recording_url") if isinstance(payload, Mapping) else payload
        if not isinstance(url, str) or not url.startswith("https://"):
            raise InvalidInput(f"{url_or_event!r} is not a record event or an https recording_url.")
        self._check_recording_host(url)  # the application's JWT goes to Vonage (or the sandbox) only
        http = self.voice.http_client
        with api_errors("Downloading the recording"):  # timeouts and refused connections, in plain words
            response = requests.get(url, headers={"Authorization": http.auth.create_jwt_auth_string()},
                                    timeout=HTTP_TIMEOUT)
        if response.status_code >= 400:
            reason = {401: "the Voice API refused the application's credentials",
                      404: f"there is no such recording at {urlsplit(url).netloc} (Vonage keeps them for a "
                           "limited time)"}.get(
                response.status_code, f"the server answered {response.status_code}")
            raise CallError(f"Downloading the recording failed: {reason}.", status=response.status_code)
        kind = response.headers.get("Content-Type", "")
        suffix = ".wav" if "wav" in kind else ".ogg" if "ogg" in kind else ".mp3"
        name = (payload.get("recording_uuid") if isinstance(payload, Mapping) else None) or url.rstrip("/").rsplit(
            "/", 1)[-1]
        target = Path(path) if path else self.sockets.folder / f"record-{name}{suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(response.content)
        return Recording(target, call_uuid=payload.get("uuid") if isinstance(payload, Mapping) else None,
                         label=f"recording {name}")

    def _check_recording_host(self, url: str) -> None:
        """The JWT goes to Vonage's hosts, the running sandbox, or the VONAGE_API_HOST in use only."""
        from labkit.live.account import check_recording_host

        check_recording_host(url, (self.settings.api_host if self.mode == "live" else None,
                                   self.sandbox.api_host if self.sandbox is not None else None))
