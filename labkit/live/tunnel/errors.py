"""pyngrok's failures in plain words: `translate_error` turns each into the `TunnelError` subclass that says
what happened and what to do (the one mapping); `redact` keeps the authtoken out of every message.

Used by labkit.live.tunnel.tunnel (the Tunnel) and labkit.live.tunnel.processes (pyngrok's log lines).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from labkit.config import WHERE
from labkit.errors import (
    TunnelAuthtokenInvalidError,
    TunnelError,
    TunnelInstallError,
    TunnelSessionLimitError,
    TunnelTimeoutError,
)

__all__ = ["AUTH_CODES", "SESSION_LIMIT_CODES", "redact", "translate_error"]

AUTH_CODES = frozenset({"ERR_NGROK_4018", "ERR_NGROK_105", "ERR_NGROK_107"})
SESSION_LIMIT_CODES = frozenset({"ERR_NGROK_108"})
_CODE = re.compile(r"ERR_NGROK_\d+")


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "<redacted>")
    return text


# --------------------------------------------------------------------------- error mapping


def translate_error(
    exc: BaseException,
    *,
    startup_timeout: float | None = None,
    elapsed: float | None = None,
    secrets: Iterable[str] = (),
) -> TunnelError:
    """Turn a pyngrok exception into the TunnelError subclass that says what to do (the one mapping).

    `elapsed` (seconds spent starting the agent) tells a startup timeout from an agent that quit early.
    The result carries `ngrok_error_code` and `agent_log` (the agent's lines, secrets redacted).
    """
    from pyngrok.exception import (
        PyngrokNgrokError,
        PyngrokNgrokHTTPError,
        PyngrokNgrokInstallError,
        PyngrokNgrokURLError,
    )

    secrets = [s for s in secrets if s]
    lines = [redact(getattr(log, "line", str(log)), secrets) for log in getattr(exc, "ngrok_logs", None) or []]
    agent_error = getattr(exc, "ngrok_error", None)
    message = redact(str(exc), secrets)
    code = getattr(exc, "ngrok_error_code", None)
    if code is None:
        found = _CODE.search(" ".join([message, agent_error or "", *lines]))
        code = found.group(0) if found else None
    detail = _one_line(redact(agent_error, secrets) if agent_error else message)
    fallback = "set PUBLIC_URL to a public https URL that forwards to the lab's port instead of ngrok"

    error: TunnelError
    if isinstance(exc, PyngrokNgrokInstallError) or "ngrok binary was not found" in message:
        error = TunnelInstallError(
            "ngrok is not installed and could not be downloaded: no internet? Install the ngrok agent "
            "and put it on PATH or set PYNGROK_NGROK_PATH to it, or " + fallback + f". ({detail})"
        )
    elif code in AUTH_CODES:
        error = TunnelAuthtokenInvalidError(
            f"ngrok refused the authtoken ({code}): it is mistyped, revoked, or the account is not "
            f"verified. Copy it again from {WHERE['NGROK_AUTHTOKEN'].split(' (')[0]} into NGROK_AUTHTOKEN "
            "in .env and restart the kernel, or " + fallback + "."
        )
    elif code in SESSION_LIMIT_CODES:
        error = TunnelSessionLimitError(
            f"Another ngrok agent is already using this account's only session ({code}). Stop it: close "
            "other notebooks or terminals running ngrok, or run `labkit tunnel kill` (it stops agents "
            "labkit started, even from a kernel that died); the ngrok dashboard's Agents page lists "
            "running agents. Or " + fallback + "."
        )
    elif isinstance(exc, (PyngrokNgrokHTTPError, PyngrokNgrokURLError)):
        error = TunnelError(
            f"The ngrok agent's local API failed ({detail}). Run `labkit tunnel kill` and try again."
        )
    elif (
        isinstance(exc, PyngrokNgrokError)
        and startup_timeout is not None
        and elapsed is not None
        and elapsed >= 0.9 * startup_timeout
    ):
        last = f" The agent's last error: {detail}." if agent_error else ""
        error = TunnelTimeoutError(
            f"ngrok did not connect within {startup_timeout:g} s.{last} No internet, or a firewall or "
            "proxy blocks ngrok? Check the connection and try again, allow a longer startup timeout "
            "(Tunnel(settings, startup_timeout=...)), or " + fallback + "."
        )
    elif code:
        error = TunnelError(f"ngrok failed with {code}: {detail}. Look {code} up in ngrok's error "
                            "reference, or " + fallback + ".")
    else:
        error = TunnelError(f"ngrok failed: {detail}. Run `labkit tunnel kill` and try again, or "
                            + fallback + ".")
    error.ngrok_error_code = code  # type: ignore[attr-defined]
    error.agent_log = lines  # type: ignore[attr-defined]
    return error


def _one_line(text: str, limit: int = 240) -> str:
    """The agent's multi-line error (escaped \\n and \\r\\n inside logfmt) as one short line."""
    text = re.sub(r"(\\r|\\n|\s)+", " ", text).strip().rstrip(".")
    return text if len(text) <= limit else text[: limit - 1] + "…"
