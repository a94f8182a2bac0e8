"""The `labkit` command: `doctor`, `sandbox`, `lab` and `tunnel kill`.

Each command imports what it needs when it runs, so `labkit --help` is instant and a part that is
missing or broken only fails the check or command that uses it.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets as _secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from labkit.config import SECRET_FIELDS, WHERE, Settings, key_format, load_private_key
from labkit.errors import ConfigError, LabkitError, plain

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
AUDIO_SUFFIXES = frozenset({".mp3", ".wav", ".ogg", ".oga", ".opus", ".flac", ".m4a", ".aac", ".aif",
                            ".aiff", ".webm", ".wma", ".au"})
HEALTH_TIMEOUT = 10.0  # seconds for a /healthz request (through a tunnel it crosses the internet twice)


# --------------------------------------------------------------------------- doctor


class Check(tuple):
    """One doctor result. Unpacks as `(check, ok, detail)`; `ok` is True, False, or None (skipped/info).

    `advice` is the one line that says what to do when not ok; `blocking` says whether a failure stops
    the lab from running (an unplayable audio file does not).
    """

    def __new__(cls, check: str, ok: bool | None, detail: str, *, advice: str = "",
                blocking: bool = True) -> Check:
        self = super().__new__(cls, (check, ok, detail))
        self.advice = advice
        self.blocking = blocking
        return self

    def __getnewargs_ex__(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return tuple(self), {"advice": self.advice, "blocking": self.blocking}

    @property
    def check(self) -> str:
        return self[0]

    @property
    def ok(self) -> bool | None:
        return self[1]

    @property
    def detail(self) -> str:
        return self[2]

    @property
    def fails(self) -> bool:
        """True when this check stops the lab (a blocking failure)."""
        return self.ok is False and self.blocking

    def __repr__(self) -> str:
        extra = f", advice={self.advice!r}" if self.advice else ""
        return f"Check({self.check!r}, {self.ok!r}, {self.detail!r}{extra}, blocking={self.blocking!r})"


def doctor(*, tunnel: bool = True, server: bool = True,
           env_file: str | os.PathLike | None = None) -> list[Check]:
    """Check everything the lab needs and return the results (also what `labkit doctor` prints).

    tunnel=False skips opening the ngrok tunnel (live mode); server=False skips starting the lab's
    server. Secret values never appear in the results, only whether each one is set.
    """
    try:
        settings = Settings.load(env_file)
    except ConfigError as exc:
        return [Check("settings", False, "could not be read", advice=str(exc))]

    checks = [_mode_check(settings), *_settings_checks(settings), _key_check(settings)]
    live = settings.mode == "live"
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
        from labkit.tunnel import Tunnel

        tunnel = Tunnel(settings)
        url = tunnel.open(port)
    except Exception as exc:  # an unexpected failure is still a plain line, not a traceback
        return Check("tunnel", False, "ngrok did not start", advice=plain(exc)), None
    return Check("tunnel", True, f"ngrok tunnel {url} -> 127.0.0.1:{port}"), tunnel


def _close_unless_used(tunnel: Any, port: int) -> None:
    """Close the doctor's tunnel unless a running lab serves that port (the agent stays for reuse)."""
    try:
        from labkit.lab import running_lab

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
        from labkit.lab import Lab, running_lab
    except Exception as exc:
        return [Check("server", False, "labkit.lab could not be imported",
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


def _marks(stream: TextIO) -> tuple[str, str, str, str]:
    """✓ ✗ – → where the terminal can show them, plain ASCII where it cannot (e.g. a cp1252 pipe)."""
    try:
        "✓✗–→".encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return "OK", "XX", "--", "->"
    return "✓", "✗", "–", "→"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- commands


def cmd_doctor(args: argparse.Namespace) -> int:
    checks = doctor(tunnel=not args.no_tunnel, server=not args.no_server)
    return 0 if print_report(checks) else 1


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
        ]
        for label, value in rows:
            if value is not None:
                print(f"  {label:<15} {value}")
        print(
            "\nPoint the Vonage SDK at it (the SDK always uses https, so it must trust the sandbox CA):\n"
            f"  export REQUESTS_CA_BUNDLE={sandbox.ca_bundle}\n\n"
            "  from vonage import Auth, HttpClientOptions, Vonage\n"
            "  client = Vonage(\n"
            f"      Auth(application_id={sandbox.application_id!r}, private_key={str(sandbox.private_key_path)!r}),\n"
            f"      HttpClientOptions(api_host={sandbox.api_host!r}, timeout=10),\n"
            "  )\n\n"
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


def notebooks_dir(explicit: str | None = None) -> Path | None:
    """The notebooks folder: the one given, the repo's (next to the package), or ./notebooks."""
    candidates = [Path(explicit).expanduser()] if explicit else [PACKAGE_ROOT / "notebooks",
                                                                 Path.cwd() / "notebooks"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    return None


def lab_command(port: int, notebooks: Path) -> list[str]:
    """The JupyterLab command line (the token travels in JUPYTER_TOKEN, not in argv where ps shows it)."""
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--ServerApp.port_retries=0", f"--ServerApp.root_dir={notebooks}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI machines often run as root; Jupyter refuses it
    return command


def _first_free_port(start: int, tries: int = 20) -> int:
    for port in range(start, start + tries):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return _free_port()


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def cmd_lab(args: argparse.Namespace) -> int:
    settings = Settings.load()
    notebooks = notebooks_dir(args.notebooks)
    if notebooks is None:
        print("labkit: no notebooks folder found (looked next to the labkit package and in ./notebooks); "
              "run from the repository, or pass --notebooks DIR.", file=sys.stderr)
        return 1
    port = args.port or _first_free_port(8888)
    token = _secrets.token_hex(24)
    if settings.mode == "live":
        mode = "live mode: calls go to the real Vonage Voice API (credentials found)"
    else:
        mode = "sandbox mode: the local Voice API sandbox stands in for Vonage (no live credentials in " \
               ".env); put VONAGE_APPLICATION_ID and VONAGE_PRIVATE_KEY in .env for live mode"
    print(f"labkit lab: {mode}")
    print(f"Starting JupyterLab on {notebooks} ...", flush=True)
    env = dict(os.environ, JUPYTER_TOKEN=token)
    proc = subprocess.Popen(lab_command(port, notebooks), cwd=notebooks, env=env)
    try:
        if _wait_for_port(port, proc):
            url = f"http://127.0.0.1:{port}/lab?token={token}"
            rule = "=" * min(len(url) + 4, 100)
            print(f"\n{rule}\n  Open the lab in your browser:\n  {url}\n  ({mode.split(':')[0]}; Ctrl-C stops "
                  f"it)\n{rule}\n", flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        print("\nStopping JupyterLab...", flush=True)
        proc.terminate()
        try:
            return proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()


def cmd_tunnel_kill(args: argparse.Namespace) -> int:
    from labkit.tunnel import kill_agents

    stopped = kill_agents()
    if stopped:
        print(f"Stopped {len(stopped)} ngrok agent{'s' if len(stopped) > 1 else ''} "
              f"(pid {', '.join(map(str, stopped))}).")
    else:
        print("No ngrok agent started by labkit is running.")
    return 0


# --------------------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labkit", description="A Jupyter lab for the Vonage Voice API.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    doc = commands.add_parser("doctor", help="check settings, key, tunnel, server and audio files")
    doc.add_argument("--no-tunnel", action="store_true", help="do not open the ngrok tunnel (live mode)")
    doc.add_argument("--no-server", action="store_true", help="do not start the lab's server")
    doc.set_defaults(func=cmd_doctor)

    sb = commands.add_parser("sandbox", help="run the local Voice API sandbox until Ctrl-C")
    sb.add_argument("--port", type=int, default=0, help="HTTPS port (default: a free one)")
    sb.add_argument("--speed", type=float, default=1.0, help="clock factor: 2 runs calls twice as fast")
    sb.set_defaults(func=cmd_sandbox)

    lab = commands.add_parser("lab", help="open JupyterLab on the notebooks")
    lab.add_argument("--port", type=int, default=0, help="JupyterLab port (default: 8888 or the next free)")
    lab.add_argument("--notebooks", help="notebooks folder (default: the repository's notebooks/)")
    lab.set_defaults(func=cmd_lab)

    tunnel = commands.add_parser("tunnel", help="manage the ngrok agent")
    tunnel_commands = tunnel.add_subparsers(dest="tunnel_command", metavar="ACTION")
    tunnel_commands.required = True
    kill = tunnel_commands.add_parser("kill", help="stop every ngrok agent labkit started")
    kill.set_defaults(func=cmd_tunnel_kill)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `labkit ...`; returns the exit code (0 ok, 1 a problem, 2 bad usage)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LabkitError as exc:
        print(f"labkit {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
