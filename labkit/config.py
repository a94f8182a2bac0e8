"""Settings from the environment and `.env`: which mode the lab runs in, and the live credentials.

Secrets (private key, signature secret, ngrok authtoken) never appear in a repr or a message: only
whether each one is set.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Literal

from labkit.errors import ConfigError

Mode = Literal["sandbox", "live"]
E164 = re.compile(r"[1-9][0-9]{6,14}")  # ASCII digits only; use fullmatch
SECRET_FIELDS = ("private_key", "signature_secret", "ngrok_authtoken", "api_secret")

# Where each live setting comes from, for the one message that lists what is missing.
WHERE = {
    "VONAGE_APPLICATION_ID": "Vonage dashboard > Applications > your voice application > Application ID",
    "VONAGE_PRIVATE_KEY": "the private.key downloaded when you generated the application's keys "
    "(a file path, or the PEM text itself)",
    "VONAGE_NUMBER": "Vonage dashboard > Numbers > Your numbers, linked to the application (E.164, no '+')",
    "TO_NUMBER": "the phone you want the lab to call (E.164, no '+', e.g. 447700900001)",
    "NGROK_AUTHTOKEN": "ngrok dashboard > Your Authtoken (or set PUBLIC_URL to a public URL you already have)",
    "PUBLIC_URL": "a public https URL that forwards to the lab's port, instead of ngrok",
    "VONAGE_API_KEY": "Vonage dashboard > home page > API key (lets the lab point your application at it)",
    "VONAGE_API_SECRET": "Vonage dashboard > home page > API secret",
    "LABKIT_TAKE_NUMBER": "1 lets the lab move VONAGE_NUMBER from another application (or clear its SIP/phone "
    "forwarding) for the session; lab.stop() puts it back",
}


def _env_file_default() -> Path | None:
    """The nearest `.env` from the working directory upwards (notebooks run from notebooks/)."""
    here = Path.cwd()
    for folder in (here, *here.parents):
        candidate = folder / ".env"
        if candidate.is_file():
            return candidate
    return None


def state_dir() -> Path:
    """Per-installation state (sandbox certificate and keys, the event journal): `LABKIT_HOME` or
    ~/.cache/labkit. A folder that cannot be made or written (a file in the way, no permission, a
    read-only disk) is a ConfigError that says what to do, not an OSError from deep inside a start."""
    given = os.environ.get("LABKIT_HOME")
    path = Path(given).expanduser() if given else Path.home() / ".cache" / "labkit"
    name = f"LABKIT_HOME ({path})" if given else f"the lab's state folder {path} (LABKIT_HOME unset)"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"{name} is a file, not a folder: set LABKIT_HOME to a folder the lab may write "
                          "(or unset it for ~/.cache/labkit), or move that file away.") from None
    except OSError as exc:
        raise ConfigError(f"{name} cannot be created ({exc.strerror or exc}): set LABKIT_HOME to a folder "
                          "you can write, for example LABKIT_HOME=~/labkit-state.") from None
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{name} is not a folder this user can write: fix its permissions (chmod u+rwx), "
                          "or set LABKIT_HOME to a folder you can write.")
    return path


def bound(name: str, default: int, low: int = 1) -> int:
    """A size limit from the environment (the README lists each with its default): a whole number >= low."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low:
        raise ConfigError(f"{name}={raw!r} must be a whole number of at least {low} (default {default}).")
    return value


def recordings_dir(day: date | None = None) -> Path:
    """Where the lab's WebSocket recordings go: LABKIT_RECORDINGS, else LABKIT_HOME/recordings/<YYYY-MM-DD>
    (one folder per day, never the notebook's working folder). Not created here: the recorder does that,
    and reports a folder it cannot make as a recording fault rather than failing the call."""
    base = os.environ.get("LABKIT_RECORDINGS")
    root = Path(base).expanduser() if base else Path(
        os.environ.get("LABKIT_HOME") or Path.home() / ".cache" / "labkit") / "recordings"
    return root / (day or date.today()).isoformat()


def audio_dirs() -> list[Path]:
    """Where the lab looks for audio files, in order: LABKIT_AUDIO_DIRS, ./audio, the repo's audio/."""
    dirs: list[Path] = []
    raw = [p for p in os.environ.get("LABKIT_AUDIO_DIRS", "").split(os.pathsep) if p.strip()]
    package_audio = Path(__file__).resolve().parent.parent / "audio"
    for candidate in [Path(p).expanduser() for p in raw] + [Path.cwd() / "audio", package_audio]:
        resolved = candidate.resolve()
        if resolved.is_dir() and resolved not in dirs:
            dirs.append(resolved)
    return dirs


@dataclass(frozen=True)
class Settings:
    """Everything the lab reads from its environment. Build with `Settings.load()`."""

    application_id: str | None = None
    private_key: str | None = field(default=None, repr=False)
    vonage_number: str | None = None
    to_number: str | None = None
    signature_secret: str | None = field(default=None, repr=False)
    ngrok_authtoken: str | None = field(default=None, repr=False)
    public_url: str | None = None
    requested_mode: str = "auto"
    port: int = 0
    sandbox_speed: float = 1.0
    env_file: str | None = None
    api_key: str | None = None
    api_secret: str | None = field(default=None, repr=False)
    api_host: str | None = None  # VONAGE_API_HOST: another Vonage-compatible host (host[:port]) for live mode
    rest_host: str | None = None  # VONAGE_REST_HOST: the Numbers API's host, likewise
    ngrok_domain: str | None = None  # NGROK_DOMAIN: a reserved ngrok domain, the same URL every start
    # LABKIT_UNSIGNED_SOCKETS: live mode without a signature secret hands socket tokens to answer requests
    # it cannot check (anyone who finds the tunnel can then open a WebSocket and a recording). Off unless set.
    unsigned_sockets: bool = False
    take_number: bool = False  # LABKIT_TAKE_NUMBER: the user lets the lab move VONAGE_NUMBER for the session

    @classmethod
    def load(cls, env_file: str | os.PathLike | None = None, environ: dict | None = None) -> Settings:
        """Read `environ` (default os.environ) over the values in `env_file` (default: nearest .env)."""
        from dotenv import dotenv_values

        path = Path(env_file) if env_file else _env_file_default()
        values: dict[str, str | None] = {}
        if path is not None and path.is_file():
            values.update(dotenv_values(path))
        values.update(os.environ if environ is None else environ)

        def get(name: str) -> str | None:
            value = values.get(name)
            return value.strip() if isinstance(value, str) and value.strip() else None

        mode = (get("LABKIT_MODE") or "auto").lower()
        if mode not in ("auto", "sandbox", "live"):
            raise ConfigError(f"LABKIT_MODE={mode!r} is not one of sandbox, live, auto (the default).")
        try:
            port = int(get("LABKIT_PORT") or 0)
            speed = float(get("LABKIT_SANDBOX_SPEED") or 1.0)
        except ValueError as exc:
            raise ConfigError(f"LABKIT_PORT must be an integer and LABKIT_SANDBOX_SPEED a number: {exc}") from None
        if not 0 <= port <= 65535 or not 0 < speed <= 1000:
            raise ConfigError(f"LABKIT_PORT must be 0-65535 (0: any free port), not {port}, and LABKIT_SANDBOX_SPEED "
                              f"a factor above 0 (1 is real time), not {speed:g}.")
        return cls(
            application_id=get("VONAGE_APPLICATION_ID"),
            private_key=get("VONAGE_PRIVATE_KEY"),
            vonage_number=_strip_plus(get("VONAGE_NUMBER")),
            to_number=_strip_plus(get("TO_NUMBER")),
            signature_secret=get("VONAGE_SIGNATURE_SECRET"),
            ngrok_authtoken=get("NGROK_AUTHTOKEN"),
            public_url=(get("PUBLIC_URL") or "").rstrip("/") or None,
            requested_mode=mode,
            port=port,
            sandbox_speed=speed,
            env_file=str(path) if path else None,
            api_key=get("VONAGE_API_KEY"),
            api_secret=get("VONAGE_API_SECRET"),
            api_host=_host(get("VONAGE_API_HOST")),
            rest_host=_host(get("VONAGE_REST_HOST")),
            ngrok_domain=get("NGROK_DOMAIN"),
            unsigned_sockets=_flag("LABKIT_UNSIGNED_SOCKETS", get("LABKIT_UNSIGNED_SOCKETS")),
            take_number=_flag("LABKIT_TAKE_NUMBER", get("LABKIT_TAKE_NUMBER")),
        )

    @property
    def mode(self) -> Mode:
        """live when asked, or (auto) when an application id and key are present; else sandbox."""
        if self.requested_mode == "live":
            return "live"
        if self.requested_mode == "sandbox":
            return "sandbox"
        return "live" if (self.application_id and self.private_key) else "sandbox"

    def which_set(self) -> dict[str, bool]:
        """Which settings hold a value (never the values): for `labkit doctor` and reprs."""
        names = {
            "VONAGE_APPLICATION_ID": self.application_id,
            "VONAGE_PRIVATE_KEY": self.private_key,
            "VONAGE_NUMBER": self.vonage_number,
            "TO_NUMBER": self.to_number,
            "VONAGE_SIGNATURE_SECRET": self.signature_secret,
            "NGROK_AUTHTOKEN": self.ngrok_authtoken,
            "PUBLIC_URL": self.public_url,
            "VONAGE_API_KEY": self.api_key,
            "VONAGE_API_SECRET": self.api_secret,
            "VONAGE_API_HOST": self.api_host,
            "VONAGE_REST_HOST": self.rest_host,
            "NGROK_DOMAIN": self.ngrok_domain,
        }
        return {name: bool(value) for name, value in names.items()}

    def problems(self) -> list[str]:
        """Every reason live mode cannot run, one line each with where to get the value."""
        out: list[str] = []
        if not self.application_id:
            out.append(f"VONAGE_APPLICATION_ID is missing: {WHERE['VONAGE_APPLICATION_ID']}")
        elif not re.fullmatch(r"[0-9a-fA-F-]{36}", self.application_id):
            out.append("VONAGE_APPLICATION_ID is not a UUID like aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee: "
                       f"{WHERE['VONAGE_APPLICATION_ID']}")
        if not self.private_key:
            out.append(f"VONAGE_PRIVATE_KEY is missing: {WHERE['VONAGE_PRIVATE_KEY']}")
        else:
            try:
                load_private_key(self.private_key)
            except ConfigError as exc:
                out.append(str(exc))
        if not self.vonage_number:
            out.append(f"VONAGE_NUMBER is missing: {WHERE['VONAGE_NUMBER']}")
        elif not E164.fullmatch(self.vonage_number):
            out.append(f"VONAGE_NUMBER is not an E.164 number: {WHERE['VONAGE_NUMBER']}")
        if self.to_number and not E164.fullmatch(self.to_number):
            out.append(f"TO_NUMBER is not an E.164 number: {WHERE['TO_NUMBER']}")
        if not self.ngrok_authtoken and not self.public_url:
            out.append(f"NGROK_AUTHTOKEN is missing: {WHERE['NGROK_AUTHTOKEN']}")
        if bool(self.api_key) != bool(self.api_secret):
            out.append("VONAGE_API_KEY and VONAGE_API_SECRET go together: set both "
                       f"({WHERE['VONAGE_API_KEY']}) or neither")
        if self.public_url and not self.public_url.startswith("https://") and not _loopback(self.public_url):
            out.append(f"PUBLIC_URL must start with https:// (got a {self.public_url.split(':')[0]} URL)")
        return out

    def require_live(self) -> None:
        """Raise one ConfigError listing every problem with the live settings."""
        problems = self.problems()
        if problems:
            where = f" (read from {self.env_file} and the environment)" if self.env_file else ""
            raise ConfigError(
                "Live mode needs these settings fixed" + where + ":\n  - " + "\n  - ".join(problems)
                + "\nPut them in a .env file next to the notebooks, or set LABKIT_MODE=sandbox."
            )

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS:
                value = "<set>" if value else None
            shown.append(f"{f.name}={value!r}")
        return f"Settings(mode={self.mode!r}, {', '.join(shown)})"

    __str__ = __repr__


def _flag(name: str, value: str | None) -> bool:
    """A yes/no setting: 1/true/yes/on or 0/false/no/off (unset: no)."""
    if value is None:
        return False
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={value!r} must be 1 (yes) or 0 (no).")


def _host(value: str | None) -> str | None:
    """VONAGE_API_HOST/VONAGE_REST_HOST as the SDK wants them: host[:port], no scheme or path."""
    if not value:
        return None
    return re.sub(r"^[a-z]+://", "", value.strip(), flags=re.I).split("/", 1)[0] or None


def _flag(name: str, value: str | None) -> bool:
    """A yes/no setting: 1/true/yes/on or 0/false/no/off (unset is no)."""
    if value is None:
        return False
    text = value.lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={value!r} is not a yes/no value: use 1 or 0 (or unset it for no).")


def _loopback(url: str) -> bool:
    """A PUBLIC_URL on this machine (a local Vonage-compatible host can reach it over plain http)."""
    from urllib.parse import urlsplit

    return (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1")


def _strip_plus(number: str | None) -> str | None:
    return number.lstrip("+").replace(" ", "") if number else number


def load_private_key(value: str) -> str:
    """Return the key as PKCS#8 PEM text, from a path or PEM text; PKCS#1 keys are converted.

    The SDK rejects PKCS#1 ("RSA PRIVATE KEY" PEM) strings, so the lab always hands it PKCS#8.
    """
    from cryptography.hazmat.primitives import serialization

    text = value.replace("\\n", "\n").strip()
    if "-----BEGIN" not in text:
        path = Path(text).expanduser()
        if not _looks_like_path(text):
            raise ConfigError(
                f"VONAGE_PRIVATE_KEY holds {describe_secret(text)}, which is neither a key file's path nor PEM "
                "text (PEM starts with a '-----BEGIN PRIVATE KEY-----' line). Give the path of private.key, "
                f"or its whole text: {WHERE['VONAGE_PRIVATE_KEY']}"
            )
        if not path.is_file():
            raise ConfigError(
                f"VONAGE_PRIVATE_KEY points to {path}, which does not exist: "
                f"{WHERE['VONAGE_PRIVATE_KEY']}"
            )
        text = path.read_text()
    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"VONAGE_PRIVATE_KEY ({describe_secret(text)}) is not a readable unencrypted PEM private key "
            f"({type(exc).__name__}): {WHERE['VONAGE_PRIVATE_KEY']}"
        ) from None
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def describe_secret(value: str) -> str:
    """What a secret looks like, for messages: its kind and length, never its text."""
    text = value.strip()
    label = re.search(r"-----BEGIN ([A-Z ]+)-----", text)
    if label:
        kind = f"PEM text labelled {label.group(1)!r}"
    elif "-----" in text or "PRIVATE" in text.upper():
        kind = "text that looks like a damaged PEM key"
    elif re.fullmatch(r"[A-Za-z0-9+/=\s]+", text) and len(text) > 64:
        kind = "base64 text without PEM armour"
    else:
        kind = "a value"
    return f"{kind}, {len(text)} characters"


def _looks_like_path(text: str) -> bool:
    """A file path, as opposed to key material pasted in: short, one line, and path-shaped. (A key's base64
    body also holds '/' characters, so it is the length and the shape that tell them apart.)"""
    return (len(text) <= 255 and "\n" not in text and not re.fullmatch(r"[A-Za-z0-9+/=]{24,}", text)
            and (text.startswith(("/", "~", ".")) or text.lower().endswith((".key", ".pem", ".txt"))
                 or "/" not in text))


PEM_KEY_FORMATS = {"PRIVATE KEY": "PKCS#8", "RSA PRIVATE KEY": "PKCS#1"}  # PEM label -> key format


def key_format(value: str) -> str:
    """'PKCS#8', 'PKCS#1' or 'unknown', for `labkit doctor`."""
    text = value.replace("\\n", "\n")
    if "-----BEGIN" not in text and Path(text).expanduser().is_file():
        text = Path(text).expanduser().read_text()
    label = re.search(r"-----BEGIN ([A-Z ]+)-----", text)
    return PEM_KEY_FORMATS.get(label.group(1), "unknown") if label else "unknown"
