"""`labkit sandbox`: run the local Voice API on its own until Ctrl-C, for apps in any language."""

from __future__ import annotations

import argparse
import signal
import time
from typing import Any


def _wait_until_interrupted() -> None:
    """Block until Ctrl-C (or SIGTERM); sleeping in a loop keeps it interruptible on every platform."""
    while True:
        time.sleep(3600)


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_sandbox(args: argparse.Namespace) -> int:
    from labkit.sandbox import Sandbox

    sandbox = Sandbox(port=args.port, speed=args.speed).start()
    previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        print(f"labkit sandbox: a local Voice API at {sandbox.base_url} (speed {args.speed:g}x)")
        rows = [
            ("base URL", sandbox.base_url),
            ("CA certificate", sandbox.ca_path),
            ("CA bundle", f"{sandbox.ca_bundle}  (system CAs + the sandbox CA)"),
            ("application id", sandbox.application_id),
            ("private key", sandbox.private_key_path),
            ("number", getattr(sandbox, "number", None)),
            ("API key", sandbox.api_key),
            ("API secret", sandbox.api_secret),  # the sandbox's own fake account: printed like the rest
            ("signature secret", sandbox.signature_secret),
        ]
        for label, value in rows:
            if value is not None:
                print(f"  {label:<17} {value}")
        print(
            "\nPoint the Vonage SDK at it (the SDK always uses https, so it must trust the sandbox CA):\n"
            f"  export REQUESTS_CA_BUNDLE={sandbox.ca_bundle}\n\n"
            "  from vonage import Auth, HttpClientOptions, Vonage\n"
            "  client = Vonage(\n"
            f"      Auth(application_id={sandbox.application_id!r}, private_key={str(sandbox.private_key_path)!r}),\n"
            f"      HttpClientOptions(api_host={sandbox.api_host!r}, timeout=10),\n"
            "  )\n"
            "  # applications and numbers (HTTP Basic), as on Vonage:\n"
            f"  account = Vonage(Auth(api_key={sandbox.api_key!r}, api_secret={sandbox.api_secret!r}),\n"
            f"                   HttpClientOptions(api_host={sandbox.api_host!r}, rest_host={sandbox.api_host!r}))\n\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        _wait_until_interrupted()
    except KeyboardInterrupt:
        print("\nStopping the sandbox...", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        sandbox.stop()
    print("Sandbox stopped.")
    return 0

def add_parser(commands: Any) -> None:
    sb = commands.add_parser("sandbox", help="run the local Voice API sandbox until Ctrl-C")
    sb.add_argument("--port", type=int, default=0, help="HTTPS port (default: a free one)")
    sb.add_argument("--speed", type=float, default=1.0, help="clock factor: 2 runs calls twice as fast")
    sb.set_defaults(func=cmd_sandbox)
