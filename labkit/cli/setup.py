"""`labkit setup`: the first-time set-up without the dashboard, and safe to run again.

With the account's API key and secret it finds or creates the lab's Voice application, links the chosen
number to it, and writes `.env`. Run again, it changes nothing that is already right:

- it reuses the application `.env` names (when the account still has it) or, failing that, one with the
  same name (`--name`, default "labkit"), rather than creating a second one; a reused application's key is
  kept when `.env` holds its private half, and replaced (a new key pair; the old private key stops working)
  only when the user agrees (asked, or `--overwrite`);
- it never links a number to an application `.env` will not name: every `.env` value is decided, and any
  replacement agreed, before the account is touched; the application id, key and number are written
  together, in one atomic write, or not at all (labkit/cli/setup_env.py);
- a number linked to another application, or forwarded to SIP or a phone, moves only when the user agrees:
  asked, naming that application, or `--take-number` (under `--yes` without it, setup stops), as Vonage's
  CLI asks before moving a linked number (vonage-cli `src/commands/apps/numbers/link.js`); the update
  re-sends the number's other fields (labkit/live/number_link.py);
- it asks for the signature secret (hidden input, or `--signature-secret`) and says where the dashboard
  shows it, so that `labkit doctor` is green after a clean set-up;
- a new application is created with `privacy.improve_ai = false` sent explicitly (the API's default is
  true [OAS-APP]; Vonage's CLI sends false by default, vonage-platform.md section 10).

It never prints a secret. The same command works against the sandbox (`--api-host/--rest-host`, the
sandbox's printed API key and secret), through the real SDK's clients (labkit/live/account.py).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from labkit.cli.setup_env import TRIO, free_name, key_matches, read_env, write_env, write_private
from labkit.errors import ConfigError, LabkitError
from labkit.live.number_link import where_to

PLACEHOLDER = "https://example.com"  # until the lab's first start points the webhooks at it
SIGNATURE_WHERE = "Vonage dashboard > API Settings > Signature secret (the account's, for signed webhooks)"


def _ask(question: str, default: str | None = None, *, secret: bool = False) -> str:
    prompt = f"{question}{f' [{default}]' if default else ''}: "
    answer = getpass.getpass(prompt) if secret else input(prompt)
    return answer.strip() or (default or "")


def _confirm(question: str) -> bool:
    return input(f"{question} [y/N]: ").strip().lower() in ("y", "yes")


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


def _applications(http: Any) -> list[dict[str, Any]]:
    """Every application of the account (raw JSON), page by page (`page_size` at most 100 [OAS-APP])."""
    out: list[dict[str, Any]] = []
    page = 1
    while True:
        body = http.get(http.api_host, "/v2/applications", {"page_size": 100, "page": page}, "basic") or {}
        out += (body.get("_embedded") or {}).get("applications") or []
        if page >= int(body.get("total_pages") or 1):
            return out
        page += 1


def _find_application(http: Any, env_id: str | None, name: str) -> tuple[dict[str, Any] | None, str]:
    """The application to reuse and why: the one `.env` names, else the first with `name`; else (None, note)."""
    from vonage_http_client import errors as http_errors

    note = ""
    if env_id:
        try:
            return http.get(http.api_host, f"/v2/applications/{env_id}", None, "basic"), "named in .env"
        except http_errors.NotFoundError:
            note = f".env names application {env_id}, which this account does not have"
    same = [a for a in _applications(http) if a.get("name") == name]
    if same:
        more = f" (the first of {len(same)} with that name)" if len(same) > 1 else ""
        return same[0], f"found by its name {name!r}{more}"
    return None, note


def _agree(question: str, *, interactive: bool, flag: bool, flag_name: str, refusal: str) -> None:
    """Go on only if the user agrees: the flag, or yes at the prompt; else ConfigError (nothing changed)."""
    if flag or (interactive and _confirm(question)):
        return
    how = f"answer yes, or run with {flag_name}" if interactive else f"run with {flag_name}"
    raise ConfigError(f"{refusal} Nothing was changed on the account or in .env ({how} to go ahead).")


def run_setup(args: argparse.Namespace) -> int:
    from vonage_http_client import errors as http_errors

    from labkit.keys import new_key_pair
    from labkit.live.account import app_name, clients
    from labkit.live.number_link import find_number, forwarding, link_number

    interactive = not args.yes and sys.stdin.isatty()
    api_key = args.api_key or os.environ.get("VONAGE_API_KEY") or (interactive and _ask("Vonage API key"))
    api_secret = args.api_secret or os.environ.get("VONAGE_API_SECRET") or (
        interactive and _ask("Vonage API secret", secret=True))
    if not api_key or not api_secret:
        raise ConfigError("labkit setup needs the account's API key and secret (Vonage dashboard > home page): "
                          "pass --api-key and --api-secret, or set VONAGE_API_KEY and VONAGE_API_SECRET.")
    env_file = Path(args.env_file)
    existing = read_env(env_file)
    apps, numbers_api = clients(api_key, api_secret, api_host=args.api_host, rest_host=args.rest_host or args.api_host)
    http = apps.http_client
    try:
        owned, _count, _next = numbers_api.list_owned_numbers()  # first: it checks the credentials too
        wanted = args.number or (existing.get("VONAGE_NUMBER") if any(
            n.msisdn == existing.get("VONAGE_NUMBER") for n in owned) else None)
        number = _pick_number(owned, wanted, interactive)
        app, why = _find_application(http, existing.get("VONAGE_APPLICATION_ID"), args.name)
        plan = _plan(args, existing, app, why, number, interactive, env_file,
                     lambda other: app_name(apps, other), find_number(numbers_api, number.msisdn) if number else None,
                     forwarding)
        made = None
        try:
            if app is None:
                made, key_path = _create(apps, args, new_key_pair())
                app_id = made["id"]
            else:
                app_id, key_path = app["id"], plan["key_path"]
            if number is not None:
                linked = link_number(numbers_api, app_id, number.msisdn, take=True, for_session=False,
                                     app_name=lambda other: app_name(apps, other))
                for line in linked.changes or [f"number {number.msisdn} already linked to it"]:
                    print(f"{line[0].upper()}{line[1:]}.")
            if app is not None and plan["new_key"]:  # last before .env: the old key stops working here
                _replace_key(http, app, key_path, new_key_pair())
        except BaseException:
            if made is not None:  # nothing half-done: the application made here goes again
                http.delete(http.api_host, f"/v2/applications/{made['id']}", None, "basic")
            raise
    except http_errors.AuthenticationError:
        raise ConfigError("Vonage refused the API key and secret (401): copy both again from the dashboard's "
                          "home page.") from None
    if number is None:
        print("The account has no number yet: buy one on the dashboard (Numbers > Buy numbers), then "
              "run `labkit setup --number <it>` again or set VONAGE_NUMBER.")
    values = {"VONAGE_APPLICATION_ID": app_id, "VONAGE_PRIVATE_KEY": str(Path(key_path).resolve())
              if not plan["key_from_env"] else existing["VONAGE_PRIVATE_KEY"],
              "VONAGE_API_KEY": api_key, "VONAGE_API_SECRET": api_secret}
    if number is not None:
        values["VONAGE_NUMBER"] = number.msisdn
    if plan["signature_secret"]:
        values["VONAGE_SIGNATURE_SECRET"] = plan["signature_secret"]
    for name, value in (("VONAGE_API_HOST", args.api_host), ("VONAGE_REST_HOST", args.rest_host or args.api_host)):
        if value:
            values[name] = value
    report = write_env(env_file, values)
    print(f"{env_file}:")
    for line in report:
        print(f"  {line}")
    if not plan["signature_secret"]:
        print(f"VONAGE_SIGNATURE_SECRET is not set: copy it from {SIGNATURE_WHERE} into {env_file} (or run "
              "labkit setup --signature-secret ...), so the lab can tell Vonage's webhooks from anyone else's.")
    print("Next: `labkit doctor` checks it all; Lab.start() points the application's webhooks at the lab.")
    return 0


def _plan(args: argparse.Namespace, existing: dict[str, str], app: dict[str, Any] | None, why: str, number: Any,
          interactive: bool, env_file: Path, name_of: Any, raw_number: dict[str, Any] | None,
          forwarding: Any) -> dict[str, Any]:
    """Every decision, and every agreement, before the account or `.env` is touched."""
    if app is not None:
        print(f"Reusing the Voice application {app.get('name')!r} ({app['id']}), {why}.")
    elif why:
        print(f"{why}: a new application is made.")
    plan: dict[str, Any] = {"new_key": app is None, "key_from_env": False, "key_path": free_name(Path(args.key_file))}
    if raw_number is not None:
        current = raw_number.get("app_id") or None
        other = current if current and current != (app or {}).get("id") else None
        forward = forwarding(raw_number)
        parts = []
        if other:
            name = name_of(other)
            parts.append(f"is linked to another application, {name!r} ({other})" if name
                         else f"is linked to another application ({other})")
        if forward:
            parts.append(f"forwards its calls to {where_to(*forward)} (voiceCallbackType {forward[0]}, which "
                         "Vonage puts before any application)")
        if parts:
            what = f"Number {number.msisdn} " + " and ".join(parts)
            _agree(f"{what}. Move it to the lab's application{' and clear the forwarding' if forward else ''}? "
                   "Its calls then reach the lab, not there", interactive=interactive, flag=args.take_number,
                   flag_name="--take-number", refusal=f"{what}.")
    if app is not None:
        public = (app.get("keys") or {}).get("public_key")
        if key_matches(existing.get("VONAGE_PRIVATE_KEY"), public):
            plan.update(new_key=False, key_from_env=True, key_path=existing["VONAGE_PRIVATE_KEY"])
        else:
            what = (f"The application {app.get('name')!r} ({app['id']}) has a key pair whose private key .env does "
                    "not hold")
            _agree(f"{what}. Give it a new key pair? (the old private key stops working)", interactive=interactive,
                   flag=args.overwrite, flag_name="--overwrite", refusal=f"{what}.")
            plan["new_key"] = True
    planned = {"VONAGE_APPLICATION_ID": app["id"] if app is not None else None,
               "VONAGE_PRIVATE_KEY": existing.get("VONAGE_PRIVATE_KEY") if plan["key_from_env"] else None,
               "VONAGE_NUMBER": number.msisdn if number is not None else existing.get("VONAGE_NUMBER")}
    replaced = [name for name in TRIO if existing.get(name) and existing[name] != planned[name]]
    if replaced:
        names = ", ".join(replaced)
        _agree(f"{env_file} already sets {names}. Replace (the application id, key and number go together)?",
               interactive=interactive, flag=args.overwrite, flag_name="--overwrite",
               refusal=f"{env_file} already sets {names}, and labkit setup writes the application id, key and number "
                       "together or not at all, so that .env and the account agree.")
    secret = args.signature_secret or existing.get("VONAGE_SIGNATURE_SECRET")
    if not secret and interactive:
        print(f"The signature secret lets the lab check that webhooks come from Vonage: {SIGNATURE_WHERE}.")
        secret = _ask("Signature secret (hidden; Enter to skip)", secret=True)
    plan["signature_secret"] = secret or None
    return plan


def _create(apps: Any, args: argparse.Namespace, pair: tuple[str, str]) -> tuple[dict[str, Any], Path]:
    """A new Voice application with the public key made here, signed callbacks on, improve_ai off."""
    base = (args.public_url or PLACEHOLDER).rstrip("/")
    public, private = pair
    hooks = {"answer_url": {"address": f"{base}/webhooks/answer", "http_method": "GET"},
             "event_url": {"address": f"{base}/webhooks/event", "http_method": "POST"}}
    body = {"name": args.name, "keys": {"public_key": public},
            "capabilities": {"voice": {"webhooks": hooks, "signed_callbacks": True}},
            "privacy": {"improve_ai": False}}  # sent explicitly: the API's default is true [OAS-APP]
    http = apps.http_client
    made = http.post(http.api_host, "/v2/applications", body, "basic")
    key_path = free_name(Path(args.key_file))
    write_private(key_path, private)
    print(f"Created the Voice application {made.get('name')!r}: {made['id']}")
    print(f"Saved its private key to {key_path} (mode 0600; Vonage keeps only the public key).")
    return made, key_path


def _replace_key(http: Any, app: dict[str, Any], key_path: Path, pair: tuple[str, str]) -> None:
    """Give a reused application a new key pair (agreed first): read-modify-write of the whole application."""
    public, private = pair
    body = {k: v for k, v in app.items() if k not in ("_links", "id", "keys")}
    body["keys"] = {"public_key": public}
    http.put(http.api_host, f"/v2/applications/{app['id']}", body, "basic")
    write_private(key_path, private)
    print(f"Gave it a new key pair; saved the private key to {key_path} (mode 0600).")


def cmd_setup(args: argparse.Namespace) -> int:
    try:
        return run_setup(args)
    except EOFError:
        raise LabkitError("labkit setup stopped: no answer on the terminal (use --yes and flags to run "
                          "unattended).") from None


def add_parser(commands: Any) -> None:
    p = commands.add_parser("setup", help="find or create the lab's Voice application, link a number, write .env")
    p.add_argument("--api-key", help="the account's API key (default: VONAGE_API_KEY, or asked)")
    p.add_argument("--api-secret", help="the account's API secret (default: VONAGE_API_SECRET, or asked)")
    p.add_argument("--name", default="labkit", help="the application's name, reused when it exists (default: labkit)")
    p.add_argument("--number", help="the number to link (default: .env's, the only one, or asked)")
    p.add_argument("--take-number", action="store_true",
                   help="move the number from another application (or clear its SIP/phone forwarding) without asking")
    p.add_argument("--signature-secret", help=f"the account's signature secret (default: asked, hidden; "
                                              f"{SIGNATURE_WHERE})")
    p.add_argument("--env-file", default=".env", help="the .env file to write (default: ./.env)")
    p.add_argument("--key-file", default="private.key", help="where to save the private key (default: ./private.key)")
    p.add_argument("--public-url", help="the lab's public URL, if already known (else placeholders the lab "
                                        "replaces at start)")
    p.add_argument("--api-host", help="another Vonage-compatible API host (host[:port]), e.g. the sandbox")
    p.add_argument("--rest-host", help="its Numbers API host (default: the same as --api-host)")
    p.add_argument("--yes", action="store_true", help="unattended: never prompt (refuse what needs an answer)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the application id, key and number .env already sets, or a reused application's key")
    p.set_defaults(func=cmd_setup)
