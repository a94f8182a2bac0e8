"""`labkit doctor`: check settings, key, tunnel, server and audio files, and print one line per check."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from labkit.cli.checks import Check
from labkit.cli.doctor_account import account_checks, socket_check
from labkit.cli.ports import free_port as _free_port
from labkit.config import SECRET_FIELDS, WHERE, Settings, key_format, load_private_key
from labkit.errors import ConfigError, LabkitError, plain

PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent
AUDIO_SUFFIXES = frozenset({".mp3", ".wav", ".ogg", ".oga", ".opus", ".flac", ".m4a", ".aac", ".aif",
                            ".aiff", ".webm", ".wma", ".au"})
HEALTH_TIMEOUT = 10.0  # seconds for a /healthz request (through a tunnel it crosses the internet twice)



def doctor(*, tunnel: bool = True, server: bool = True, env_file: str | os.PathLike | None = None,
           account: bool = True) -> list[Check]:
    """Check everything the lab needs and return the results (also what `labkit doctor` prints).

    tunnel=False skips opening the ngrok tunnel (live mode); server=False skips starting the lab's
    server; account=False skips asking Vonage about the credentials, application and number (live).
    Secret values never appear in the results, only whether each one is set.
    """
    try:
        settings = Settings.load(env_file)
    except ConfigError as exc:
        return [Check("settings", False, "could not be read", advice=str(exc))]

    checks = [_mode_check(settings), *_settings_checks(settings), _key_check(settings)]
    live = settings.mode == "live"
    if live and account:

        checks.extend(account_checks(settings))
    elif live:
        checks.append(Check("account", None, "skipped (--no-account)"))
    port = settings.port or _free_port()
    tunnel_ok, opened = True, None
    if live:
        if tunnel:
            tunnel_check, opened = _tunnel_check(settings, port)
        else:
            tunnel_check = Check("tunnel", None, "skipped (--no-tunnel)")
        tunnel_ok = tunnel_check.ok is True
        checks.append(tunnel_check)
    if not server:
        checks.append(Check("server", None, "skipped (--no-server)"))
    elif live and not tunnel_ok:
        checks.append(Check("server", None, "skipped: the live server is reached through the tunnel"))
    elif live and settings.problems():
        checks.append(Check("server", None, "skipped: fix the live settings above first"))
    else:
        checks.extend(_server_checks(settings, port, env_file))
    if opened is not None:
        _close_unless_used(opened, port)
    checks.extend(_audio_checks())
    return _redacted(checks, settings)


def _mode_check(settings: Settings) -> Check:
    mode = settings.mode
    if settings.requested_mode != "auto":
        why = f"LABKIT_MODE={settings.requested_mode}"
    elif mode == "live":
        why = "VONAGE_APPLICATION_ID and VONAGE_PRIVATE_KEY are set"
    else:
        why = "no VONAGE_APPLICATION_ID + VONAGE_PRIVATE_KEY, so the local sandbox stands in for Vonage"
    where = f"; settings read from {settings.env_file} and the environment" if settings.env_file \
        else "; no .env file found, settings read from the environment"
    return Check("mode", True, f"{mode} ({why}{where})")


def _settings_checks(settings: Settings) -> list[Check]:
    which = settings.which_set()
    given = [name for name, is_set in which.items() if is_set]
    missing = [name for name, is_set in which.items() if not is_set]
    checks = [Check("settings", True, f"set: {', '.join(given) or 'none'}; not set: {', '.join(missing) or 'none'}")]
    if settings.mode == "live":
        for problem in settings.problems():
            name = problem.split(" ", 1)[0]
            if name == "VONAGE_PRIVATE_KEY":
                continue  # the private key check below says it better
            checks.append(Check(name, False, "needed for live mode", advice=problem))
    return checks


def _key_check(settings: Settings) -> Check:
    value = settings.private_key
    live = settings.mode == "live"
    if not value:
        if live:
            return Check("private key", False, "VONAGE_PRIVATE_KEY is not set",
                         advice=f"VONAGE_PRIVATE_KEY: {WHERE['VONAGE_PRIVATE_KEY']}")
        return Check("private key", True, "not set (not needed: the sandbox makes its own)")
    source = "PEM text" if "-----BEGIN" in value.replace("\\n", "\n") else "from a file"
    try:
        load_private_key(value)
    except ConfigError as exc:
        return Check("private key", False, f"VONAGE_PRIVATE_KEY ({source}) does not parse", advice=str(exc),
                     blocking=live)
    fmt = key_format(value)
    if fmt == "PKCS#1":
        detail = "parses; PKCS#1 (an RSA PRIVATE KEY PEM): the SDK rejects PKCS#1 text, so labkit " \
                 "converts it to PKCS#8 for you"
    elif fmt == "PKCS#8":
        detail = "parses; PKCS#8, as the SDK wants"
    else:
        detail = "parses (converted to PKCS#8 for the SDK)"
    return Check("private key", True, f"{detail} ({source})")


def _tunnel_check(settings: Settings, port: int) -> tuple[Check, Any]:
    """Open the tunnel the lab would use; returns the check and the Tunnel (None unless ngrok opened)."""
    if settings.public_url:
        return Check("tunnel", True, f"PUBLIC_URL is set, so no ngrok: {settings.public_url}"), None
    try:
        from labkit.live.tunnel.tunnel import Tunnel

        tunnel = Tunnel(settings)
        url = tunnel.open(port)
    except Exception as exc:  # an unexpected failure is still a plain line, not a traceback
        return Check("tunnel", False, "ngrok did not start", advice=plain(exc)), None
    return Check("tunnel", True, f"ngrok tunnel {url} -> 127.0.0.1:{port}"), tunnel


def _close_unless_used(tunnel: Any, port: int) -> None:
    """Close the doctor's tunnel unless a running lab serves that port (the agent stays for reuse)."""
    try:
        from labkit.lab.facade import running_lab

        lab = running_lab()
        if lab is not None and lab.port == port:
            return
    except Exception:
        pass
    try:
        tunnel.close()
    except LabkitError:
        pass


def _server_checks(settings: Settings, port: int, env_file: str | os.PathLike | None) -> list[Check]:
    """Start the lab (or find the running one) and ask its /healthz, locally and (live) publicly."""
    try:
        from labkit.lab.facade import Lab, running_lab
    except Exception as exc:
        return [Check("server", False, "labkit.lab.facade could not be imported",
                      advice=f"{type(exc).__name__}: {exc}. Reinstall labkit (pip install -e .).")]
    existing = running_lab()
    try:
        lab = existing or Lab.start(settings.mode, port=port, env_file=env_file, quiet=True)
    except Exception as exc:
        return [Check("server", False, f"the lab did not start in {settings.mode} mode", advice=plain(exc))]
    try:
        checks = [_health_check("server", lab.local_url, "the lab's server (local)")]
        if settings.mode == "live":
            checks.append(_health_check("public URL", lab.public_url, "the lab's server through its public URL"))
            if checks[-1].ok:

                checks.append(socket_check(lab))
        return checks
    finally:
        if existing is None:  # leave things as we found them
            try:
                lab.stop()
            except Exception:  # the checks are what matters here
                pass


def _health_check(name: str, base_url: str, what: str) -> Check:
    from urllib.error import HTTPError, URLError
    from urllib.request import Request, urlopen

    url = base_url.rstrip("/") + "/healthz"
    try:
        # the ngrok header skips the free plan's browser warning page (harmless elsewhere)
        request = Request(url, headers={"ngrok-skip-browser-warning": "1", "User-Agent": "labkit-doctor"})
        with urlopen(request, timeout=HEALTH_TIMEOUT) as response:
            body = json.loads(response.read().decode() or "{}")
    except HTTPError as exc:
        return Check(name, False, f"{url} answered HTTP {exc.code}",
                     advice=f"Something else answers there instead of {what}: check which port the URL "
                            "forwards to.")
    except (URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Check(name, False, f"{url} did not answer ({reason})",
                     advice=f"Is {what} running, and does the URL forward to its port?")
    if not (isinstance(body, dict) and body.get("ok")):
        return Check(name, False, f"{url} answered, but not like the lab's server",
                     advice="Another service answers there: check the port and PUBLIC_URL.")
    return Check(name, True, f"{what} answers at {url}")


def _audio_checks() -> list[Check]:
    """Which audio files Vonage can play, judged by its documented formats (the stream action's "mp3 or
    wav (16-bit)" and the codings Vonage lists: /work/shared/reference/vonage-voice-api.md, "stream"
    and "audio formats"), as `labkit.media.audio.probe` implements them."""
    from labkit.config import audio_dirs

    dirs = audio_dirs()
    files = [path for folder in dirs for path in sorted(folder.iterdir())
             if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES]
    if not files:
        looked = ", ".join(map(str, dirs)) or "./audio (missing) and LABKIT_AUDIO_DIRS (not set)"
        return [Check("audio", None, f"no audio files found in {looked}", blocking=False)]
    try:
        from labkit.media.audio import probe
    except Exception as exc:
        names = ", ".join(path.name for path in files)
        return [Check("audio", None, f"{len(files)} files ({names}); format check unavailable "
                      f"({type(exc).__name__}: {exc})", blocking=False)]
    checks = []
    for path in files:
        label = f"audio {path.name}"
        try:
            info = probe(path)
        except Exception as exc:
            checks.append(Check(label, False, "could not be read", advice=str(exc), blocking=False))
            continue
        detail = f"{info.format}/{info.subtype}, {info.rate} Hz, {info.channels} ch, {info.duration:.1f} s"
        if info.playable:
            checks.append(Check(label, True, f"{detail}; Vonage can play it", blocking=False))
        else:
            checks.append(Check(label, False, f"{detail}; Vonage cannot play it",
                                advice=info.reason or "Use MP3 or 16-bit PCM WAV.", blocking=False))
    return checks


def _redacted(checks: list[Check], settings: Settings) -> list[Check]:
    """Belt and braces: no secret value may reach the output, whatever a message quoted."""
    values: list[str] = []
    for name in SECRET_FIELDS:
        value = getattr(settings, name)
        if value and len(value) >= 4:
            values += [value, value.replace("\\n", "\n")]
    if not values:
        return checks

    def clean(text: str) -> str:
        for value in values:
            text = text.replace(value, "<secret>")
        return text

    return [Check(clean(c.check), c.ok, clean(c.detail), advice=clean(c.advice), blocking=c.blocking)
            for c in checks]


def print_report(checks: Sequence[Check], stream: TextIO | None = None) -> bool:
    """Print the checklist (one advice line under each failure); True when nothing blocks the lab."""
    out = stream or sys.stdout
    good, bad, skip, arrow = _marks(out)
    print("labkit doctor", file=out)
    for check in checks:
        mark = good if check.ok else (skip if check.ok is None else bad)
        print(f"  {mark} {check.check}: {check.detail}", file=out)
        if check.ok is False and check.advice:
            print(f"      {arrow} {check.advice}", file=out)
    blocking = [check for check in checks if check.fails]
    if blocking:
        print(f"{len(blocking)} problem{'s' if len(blocking) > 1 else ''} to fix before the lab can run.",
              file=out)
    else:
        print("Nothing blocks the lab.", file=out)
    return not blocking


def report_html(checks: Sequence[Check]) -> Any:
    """The checklist as a notebook table: long details wrap between words, not mid-word as the
    printed report does in a narrow output area (an `IPython.display.HTML`)."""
    import html

    from IPython.display import HTML

    rows = []
    for check in checks:
        mark, colour = (("\u2713", "#1b7a2f") if check.ok else ("\u2013", "#666") if check.ok is None
                        else ("\u2717", "#b00020"))
        advice = (f"<div style='color:#b00020'>\u2192 {html.escape(check.advice)}</div>"
                  if check.ok is False and check.advice else "")
        rows.append(f"<tr><td style='color:{colour};font-weight:bold;vertical-align:top'>{mark}</td>"
                    f"<td style='text-align:left;vertical-align:top;white-space:nowrap'>{html.escape(check.check)}</td>"
                    f"<td style='text-align:left;white-space:normal;overflow-wrap:break-word'>"
                    f"{html.escape(check.detail)}{advice}</td></tr>")
    blocking = [check for check in checks if check.fails]
    verdict = (f"{len(blocking)} problem{'s' if len(blocking) > 1 else ''} to fix before the lab can run."
               if blocking else "Nothing blocks the lab.")
    return HTML(f"<table class='labkit-doctor' style='max-width:100%'>{''.join(rows)}</table>"
                f"<p><b>{html.escape(verdict)}</b></p>")


def _marks(stream: TextIO) -> tuple[str, str, str, str]:
    """✓ ✗ – → where the terminal can show them, plain ASCII where it cannot (e.g. a cp1252 pipe)."""
    try:
        "✓✗–→".encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return "OK", "XX", "--", "->"
    return "✓", "✗", "–", "→"


def cmd_doctor(args: argparse.Namespace) -> int:
    checks = doctor(tunnel=not args.no_tunnel, server=not args.no_server, account=not args.no_account)
    return 0 if print_report(checks) else 1


def add_parser(commands: Any) -> None:
    doc = commands.add_parser("doctor", help="check settings, key, tunnel, server and audio files")
    doc.add_argument("--no-tunnel", action="store_true", help="do not open the ngrok tunnel (live mode)")
    doc.add_argument("--no-server", action="store_true", help="do not start the lab's server")
    doc.add_argument("--no-account", action="store_true",
                     help="do not ask Vonage about the credentials, application and number (live mode)")
    doc.set_defaults(func=cmd_doctor)
