"""`labkit setup`: the first-time set-up, without the dashboard.

With the account's API key and secret it creates a Voice application (a key pair made here; the
private key saved with mode 0600 and never printed), lists the account's numbers and links the chosen
one, and writes `.env`. It never overwrites a value without asking (`--overwrite` says yes for an
unattended run), never prints a secret, and runs unattended with `--yes` and flags.

The application is created through the Application API v2 and the number linked through the Numbers
API, with the real SDK's clients (labkit/live/account.py), so the same command works against the sandbox
(`--api-host/--rest-host`, the sandbox's printed API key and secret).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError, LabkitError

PLACEHOLDER = "https://example.com"  # until the lab's first start points the webhooks at it


def _ask(question: str, default: str | None = None, *, secret: bool = False) -> str:
    prompt = f"{question}{f' [{default}]' if default else ''}: "
    answer = getpass.getpass(prompt) if secret else input(prompt)
    return answer.strip() or (default or "")


def _confirm(question: str) -> bool:
    return input(f"{question} [y/N]: ").strip().lower() in ("y", "yes")


def _write_private(path: Path, pem: str) -> None:
    """The private key, readable by its owner only (0600), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(pem)
    os.replace(tmp, path)


def _free_name(path: Path) -> Path:
    """`path`, or path-2, path-3... when it exists (an existing key is never overwritten)."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def _pick_number(numbers: list[Any], wanted: str | None, interactive: bool) -> Any | None:
    if wanted:
        match = next((n for n in numbers if n.msisdn == wanted.lstrip("+")), None)
        if match is None:
            have = ", ".join(n.msisdn for n in numbers) or "none"
            raise ConfigError(f"{wanted} is not a number of this account (it has: {have}). Buy it on the "
                              "dashboard (Numbers > Buy numbers) or pick one of those.")
        return match
    if len(numbers) == 1:
        return numbers[0]
    if not numbers:
        return None
    if not interactive:
        raise ConfigError("The account has several numbers: choose one with --number "
                          f"({', '.join(n.msisdn for n in numbers)}).")
    for i, n in enumerate(numbers, 1):
        print(f"  {i}. {n.msisdn} ({n.country}, linked to {n.app_id or 'no application'})")
    choice = _ask("Which number should the lab use", "1")
    try:
        return numbers[int(choice) - 1]
    except (ValueError, IndexError):
        raise ConfigError(f"{choice!r} is not one of 1-{len(numbers)}.") from None


def _write_env(env_file: Path, values: dict[str, str], *, interactive: bool, overwrite: bool) -> list[str]:
    """Set each value in `env_file` (other lines kept); returns one line per setting, no secrets."""
    from dotenv import dotenv_values, set_key

    existing = dotenv_values(env_file) if env_file.is_file() else {}
    if not env_file.exists():
        fd = os.open(env_file, os.O_WRONLY | os.O_CREAT, 0o600)  # it will hold the API secret
        os.close(fd)
    report = []
    for name, value in values.items():
        shown = "<secret>" if "SECRET" in name else value
        old = existing.get(name)
        if old == value:
            report.append(f"{name} unchanged")
            continue
        if old and not overwrite and not (interactive and _confirm(f"{env_file} already sets {name}. Replace it?")):
            report.append(f"{name} kept (already set; --overwrite replaces it)")
            continue
        set_key(str(env_file), name, value, quote_mode="never")
        report.append(f"{name}={shown}")
    os.chmod(env_file, 0o600)  # it holds the API secret: owner only (set_key rewrites the file)
    return report


def run_setup(args: argparse.Namespace) -> int:
    from vonage_application import ApplicationConfig, Capabilities, Voice, VoiceUrl, VoiceWebhooks
    from vonage_http_client import errors as http_errors
    from vonage_numbers import UpdateNumberParams

    from labkit.keys import new_key_pair
    from labkit.live.account import clients

    interactive = not args.yes and sys.stdin.isatty()
    api_key = args.api_key or os.environ.get("VONAGE_API_KEY") or (interactive and _ask("Vonage API key"))
    api_secret = args.api_secret or os.environ.get("VONAGE_API_SECRET") or (
        interactive and _ask("Vonage API secret", secret=True))
    if not api_key or not api_secret:
        raise ConfigError("labkit setup needs the account's API key and secret (Vonage dashboard > home page): "
                          "pass --api-key and --api-secret, or set VONAGE_API_KEY and VONAGE_API_SECRET.")
    env_file = Path(args.env_file)
    apps, numbers_api = clients(api_key, api_secret, api_host=args.api_host,
                                rest_host=args.rest_host or args.api_host)
    base = (args.public_url or PLACEHOLDER).rstrip("/")
    public, private = new_key_pair()
    config = ApplicationConfig(
        name=args.name,
        capabilities=Capabilities(voice=Voice(
            webhooks=VoiceWebhooks(answer_url=VoiceUrl(address=f"{base}/webhooks/answer", http_method="GET"),
                                   event_url=VoiceUrl(address=f"{base}/webhooks/event", http_method="POST")),
            signed_callbacks=True)),
        keys={"public_key": public})
    try:
        owned, _count, _next = numbers_api.list_owned_numbers()  # first: it checks the credentials too
        number = _pick_number(owned, args.number, interactive)
        app = apps.create_application(config)
        key_path = _free_name(Path(args.key_file))
        _write_private(key_path, private)
        print(f"Created the Voice application {app.name!r}: {app.id}")
        print(f"Saved its private key to {key_path} (mode 0600; Vonage keeps only the public key).")
        if number is not None:
            numbers_api.update_number(UpdateNumberParams(country=number.country, msisdn=number.msisdn,
                                                         app_id=app.id))
            print(f"Linked {number.msisdn} to it (inbound calls to that number reach the lab).")
        else:
            print("The account has no number yet: buy one on the dashboard (Numbers > Buy numbers), then "
                  "run `labkit setup --number <it>` again or set VONAGE_NUMBER.")
    except http_errors.AuthenticationError:
        raise ConfigError("Vonage refused the API key and secret (401): copy both again from the dashboard's "
                          "home page.") from None
    values = {"VONAGE_APPLICATION_ID": app.id, "VONAGE_PRIVATE_KEY": str(key_path.resolve()),
              "VONAGE_API_KEY": api_key, "VONAGE_API_SECRET": api_secret}
    if number is not None:
        values["VONAGE_NUMBER"] = number.msisdn
    for name, value in (("VONAGE_API_HOST", args.api_host), ("VONAGE_REST_HOST", args.rest_host or args.api_host)):
        if value:
            values[name] = value
    report = _write_env(env_file, values, interactive=interactive, overwrite=args.overwrite)
    print(f"{env_file}:")
    for line in report:
        print(f"  {line}")
    print("Next: `labkit doctor` checks it all; Lab.start() points the application's webhooks at the lab.")
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    try:
        return run_setup(args)
    except EOFError:
        raise LabkitError("labkit setup stopped: no answer on the terminal (use --yes and flags to run "
                          "unattended).") from None


def add_parser(commands: Any) -> None:
    p = commands.add_parser("setup", help="create a Voice application, link a number, write .env")
    p.add_argument("--api-key", help="the account's API key (default: VONAGE_API_KEY, or asked)")
    p.add_argument("--api-secret", help="the account's API secret (default: VONAGE_API_SECRET, or asked)")
    p.add_argument("--name", default="labkit", help="the application's name (default: labkit)")
    p.add_argument("--number", help="the number to link (default: the only one, or asked)")
    p.add_argument("--env-file", default=".env", help="the .env file to write (default: ./.env)")
    p.add_argument("--key-file", default="private.key", help="where to save the private key (default: ./private.key)")
    p.add_argument("--public-url", help="the lab's public URL, if already known (else placeholders the lab "
                                        "replaces at start)")
    p.add_argument("--api-host", help="another Vonage-compatible API host (host[:port]), e.g. the sandbox")
    p.add_argument("--rest-host", help="its Numbers API host (default: the same as --api-host)")
    p.add_argument("--yes", action="store_true", help="unattended: never prompt")
    p.add_argument("--overwrite", action="store_true", help="replace values .env already sets")
    p.set_defaults(func=cmd_setup)
