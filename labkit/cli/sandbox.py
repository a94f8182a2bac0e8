"""`labkit sandbox`: run the local Voice API on its own until Ctrl-C, for apps in any language.

Every setting an app needs is a flag (the application's webhooks, signing, its number, the clock speed);
they go through the sandbox's Python `configure(...)`, the same path a notebook uses. The banner says how
to point the Python SDK, the Node SDK and curl at it, and where the control API (`/_labkit/`) is.
"""

from __future__ import annotations

import argparse
import contextlib
import select
import signal
import socket
from typing import Any


def _wait_until_interrupted() -> None:
    """Block until Ctrl-C or SIGTERM raises KeyboardInterrupt here, in the main thread.

    Why not one long sleep: the kernel hands a signal sent to the process to any of its threads that
    does not block it (signal(7)); Python runs its handlers only in the main thread, and only wakes it
    when the signal interrupted that thread. A SIGTERM taken by the server's or the clock's thread left
    `time.sleep(3600)` asleep, and the sandbox running, for an hour (seen once in CI, and reproduced
    with tgkill on the clock thread). The signal module's wake-up fd is written by whichever thread
    takes the signal, so the main thread wakes at once; the 1 s timeout is a second guard.
    """
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    try:
        while True:  # the handler raises once this thread runs Python again, after select returns
            select.select([reader], [], [], 1.0)
            with contextlib.suppress(BlockingIOError):
                reader.recv(512)
    finally:
        signal.set_wakeup_fd(previous)
        reader.close()
        writer.close()


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _configure(sandbox: Any, args: argparse.Namespace) -> None:
    """Apply the application flags through `Sandbox.configure` (only those given)."""
    given = {
        "answer_url": args.answer_url, "event_url": args.event_url, "fallback_answer_url": args.fallback_url,
        "answer_method": args.answer_method, "event_method": args.event_method,
        "signature_secret": args.signature_secret, "number": args.number,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if given:
        sandbox.configure(**given)


def banner(sandbox: Any, speed: float, proxy: Any = None) -> str:
    """What `labkit sandbox` prints: where it is, and set-up lines per language (and, with `proxy`, the
    environment for clients with hard-coded hosts)."""
    base, ca, bundle = sandbox.base_url, sandbox.ca_path, sandbox.ca_bundle
    app_id, key, number = sandbox.application_id, sandbox.private_key_path, sandbox.number
    settings = getattr(sandbox, "settings", None)
    lines = [f"labkit sandbox: a local Voice API at {base} (speed {speed:g}x)"]
    rows = [
        ("base URL", base),
        ("region URL", f"{getattr(sandbox, 'region_url', base)}  (answer webhooks' region_url: control each call "
                       "there)"),
        ("control API", f"{base}/_labkit/  (phones, calls, heard.wav; described at {base}/_labkit/openapi.json)"),
        ("softphone page", f"{base}/  (a browser on this machine: phones ring there; Listen and Talk)"),
        ("", "  the browser warns about the certificate unless it trusts the CA certificate below"
             + ("" if base.startswith("http://") else " (or start with --http)")),
        ("CA certificate", ca),
        ("CA bundle", f"{bundle}  (system CAs + the sandbox CA)"),
        ("application id", app_id),
        ("private key", key),
        ("number", number),
        ("API key", getattr(sandbox, "api_key", None)),
        ("API secret", getattr(sandbox, "api_secret", None)),  # the sandbox's own fake account: printed
        ("signature secret", getattr(sandbox, "signature_secret", None)),
    ]
    if settings is not None:
        rows += [("answer_url", settings.answer_url or "(not set: --answer-url)"),
                 ("event_url", settings.event_url or "(not set: --event-url)")]
        if settings.fallback_answer_url:
            rows.append(("fallback_url", settings.fallback_answer_url))
        rows.append(("signed webhooks", "yes" if settings.signature_secret else "no (--signature-secret)"))
    chaos = getattr(sandbox, "webhook_chaos", None)
    if chaos is not None:
        rows.append(("webhook chaos", f"jitter {chaos.jitter:g} s, duplicate {chaos.duplicate:g} (--chaos)"))
    lines += [f"  {label:<17} {value}" for label, value in rows if value is not None]
    host = base.split("://", 1)[1]
    plain = base.startswith("http://")
    cacert = "" if plain else f"--cacert {ca} "
    if getattr(sandbox, "vonage_hostnames", False) and proxy is None:
        from labkit.sandbox.wire.tls import VONAGE_HOSTNAMES

        names = " ".join(n for n in VONAGE_HOSTNAMES if not n.startswith("*"))
        lines += [
            "",
            f"Vonage host names: the certificate covers them and recording URLs use {sandbox.vonage_base_url}.",
            "Map them to this machine for clients with hard-coded hosts (see the README), e.g. in /etc/hosts:",
            f"  127.0.0.1 {names}",
        ]
    if proxy is not None:
        from labkit.cli.sandbox_env import client_env, env_lines

        lines += [
            "",
            f"Without root (--vonage-proxy): a CONNECT proxy at {proxy.url} tunnels Vonage's API hosts on 443",
            "(api.nexmo.com, rest.nexmo.com, api.vonage.com, api-*.vonage.com, api-*.nexmo.com) to this sandbox",
            "and refuses every other host; Node, which ignores HTTPS_PROXY, gets a --require preload. Recording",
            f"URLs use {sandbox.vonage_base_url}. Paste into the client's shell (clients with hard-coded hosts):",
            *[f"  {line}" for line in env_lines(client_env(sandbox, proxy.url))],
        ]
    if plain:
        lines += ["", "Plain HTTP (--http): the Python SDK always uses https; use this for clients that need http."]
    lines += [
        "",
        "Python SDK (it always uses https, so it must trust the sandbox CA):",
        f"  export REQUESTS_CA_BUNDLE={bundle}",
        "  from vonage import Auth, HttpClientOptions, Vonage",
        "  client = Vonage(",
        f"      Auth(application_id={app_id!r}, private_key={str(key)!r}),",
        f"      HttpClientOptions(api_host={host!r}, timeout=10),",
        "  )",
        "  # applications and numbers (HTTP Basic with the API key and secret), as on Vonage:",
        f"  account = Vonage(Auth(api_key={getattr(sandbox, 'api_key', '')!r}, "
        f"api_secret={getattr(sandbox, 'api_secret', '')!r}),",
        f"                   HttpClientOptions(api_host={host!r}, rest_host={host!r}))",
        "",
        "Node SDK (@vonage/server-sdk):",
        *([] if plain else [f"  export NODE_EXTRA_CA_CERTS={ca}"]),
        "  const { Vonage } = require('@vonage/server-sdk');",
        f"  const vonage = new Vonage({{ applicationId: '{app_id}', privateKey: '{key}' }},",
        f"                            {{ apiHost: '{base}' }});",
        "",
        "curl (drive the virtual phones; the control API needs no credentials on this machine):",
        f"  curl {cacert}-X POST {base}/_labkit/phones -H 'Content-Type: application/json' \\",
        "       -d '{\"number\": \"447700900001\", \"answer_after\": 1}'",
        f"  curl {cacert}-X POST {base}/_labkit/phones/447700900001/dial -d '{{}}' \\",
        "       -H 'Content-Type: application/json'      # an inbound call to the application's number",
        f"  curl {cacert}-o heard.wav {base}/_labkit/phones/447700900001/heard.wav",
        "",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from labkit.sandbox import Sandbox
    from labkit.sandbox.heap import return_big_buffers

    return_big_buffers()  # this process is the sandbox's alone: freed audio goes back to the system

    kwargs: dict[str, Any] = {"port": args.port, "speed": args.speed}
    if args.home:
        kwargs["home"] = args.home
    if args.http:
        kwargs["http"] = True
    if args.vonage_hostnames or args.vonage_proxy:
        kwargs["vonage_hostnames"] = True
    if (args.env_file or args.proxy_port) and not args.vonage_proxy:
        from labkit.errors import ConfigError

        raise ConfigError("--proxy-port and --env-file go with --vonage-proxy")
    if args.vonage_proxy:
        if args.http:
            from labkit.errors import ConfigError

            raise ConfigError("--vonage-proxy tunnels TLS to the sandbox: it cannot be used with --http")
        kwargs["vonage_port"] = 443  # clients reach the names on 443, through the proxy or the Node preload
    sandbox = Sandbox(**kwargs)
    _configure(sandbox, args)  # before start: the first call already sees the application's settings
    if args.chaos is not None:  # the flag wins over LABKIT_SANDBOX_CHAOS
        from labkit.sandbox.wire.webhooks import WebhookChaos

        try:
            sandbox.webhook_chaos = WebhookChaos.parse(args.chaos)
        except ValueError as exc:
            from labkit.errors import ConfigError

            raise ConfigError(f"--chaos: {exc}") from None
    sandbox.start()
    proxy = None
    if args.vonage_proxy:
        from labkit.sandbox.wire.vonage_proxy import VonageProxy

        try:
            proxy = VonageProxy(("127.0.0.1", sandbox.port), port=args.proxy_port).start()
        except OSError as exc:
            sandbox.stop()
            from labkit.errors import PortInUseError

            raise PortInUseError(f"--proxy-port {args.proxy_port}: {exc}") from None
        if args.env_file:
            from labkit.cli.sandbox_env import client_env, write_env_file

            write_env_file(args.env_file, client_env(sandbox, proxy.url))
    previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        print(banner(sandbox, args.speed, proxy), flush=True)
        _wait_until_interrupted()
    except KeyboardInterrupt:
        print("\nStopping the sandbox...", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if proxy is not None:
            proxy.stop()
        sandbox.stop()
    print("Sandbox stopped.", flush=True)
    return 0


def add_parser(commands: Any) -> None:
    sb = commands.add_parser("sandbox", help="run the local Voice API sandbox until Ctrl-C",
                             description="A local Vonage Voice API for apps in any language.")
    sb.add_argument("--port", type=int, default=0, help="HTTPS port (default: a free one)")
    sb.add_argument("--speed", type=float, default=1.0, help="clock factor: 2 runs calls twice as fast")
    sb.add_argument("--home", default=None, help="folder for the CA, keys and recordings "
                                                 "(default: labkit's state folder /sandbox)")
    sb.add_argument("--http", action="store_true",
                    help="serve plain HTTP (for clients that need http on a port other than 443, e.g. Node SDK 2.x)")
    sb.add_argument("--vonage-hostnames", action="store_true",
                    help="a certificate that also covers api.nexmo.com, rest.nexmo.com, api.vonage.com and "
                         "api-*.vonage.com, and recording URLs on api.nexmo.com (map those names to this machine)")
    sb.add_argument("--vonage-proxy", action="store_true",
                    help="for clients with hard-coded hosts, without root: implies --vonage-hostnames, serves a "
                         "CONNECT proxy that tunnels only Vonage's API hosts to the sandbox (HTTPS_PROXY) and "
                         "prints the environment to paste (Node: a --require preload)")
    sb.add_argument("--proxy-port", type=int, default=0, help="the proxy's port (default: a free one)")
    sb.add_argument("--env-file", metavar="PATH",
                    help="with --vonage-proxy: also write that environment as `export` lines to PATH")
    sb.add_argument("--chaos", metavar="SPEC",
                    help="deliver webhooks as a network may: late, out of order, twice ('on', 'off', or "
                         "'jitter=0.2,duplicate=0.2,seed=7'; default: LABKIT_SANDBOX_CHAOS, else off)")
    app = sb.add_argument_group("the application (like its page on the Vonage dashboard)")
    app.add_argument("--answer-url", help="where inbound calls fetch their NCCO")
    app.add_argument("--event-url", help="where call events go")
    app.add_argument("--fallback-url", help="the fallback answer URL, tried when the answer URL fails")
    app.add_argument("--answer-method", choices=("GET", "POST"), type=str.upper, help="default GET")
    app.add_argument("--event-method", choices=("GET", "POST"), type=str.upper, help="default POST")
    app.add_argument("--signature-secret", help="sign webhooks (HS256 JWT in Authorization) with this secret")
    app.add_argument("--number", help="the application's virtual number (E.164 without '+')")
    sb.set_defaults(func=cmd_sandbox)
