"""`.env` for `labkit setup`: read it, plan what changes, write it whole or not at all.

The application id, its private key and the number go together: a `.env` naming one application with
another's key, or a number linked to an application `.env` does not name, is the broken state issue 18
found after a second `labkit setup`. So every value is decided (and any replacement agreed) before the
account is touched, and the file is written once, atomically (a temporary copy, then `os.replace`), mode 0600
since it holds the API secret.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["TRIO", "read_env", "write_env", "write_private"]

TRIO = ("VONAGE_APPLICATION_ID", "VONAGE_PRIVATE_KEY", "VONAGE_NUMBER")


def read_env(env_file: Path) -> dict[str, str]:
    from dotenv import dotenv_values

    if not env_file.is_file():
        return {}
    return {k: v for k, v in dotenv_values(env_file).items() if isinstance(v, str) and v.strip()}


def write_env(env_file: Path, values: dict[str, str]) -> list[str]:
    """Set every value in one atomic write (other lines kept); one report line per setting, no secrets."""
    import shutil

    from dotenv import set_key

    existing = read_env(env_file)
    tmp = env_file.with_name(env_file.name + ".labkit-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it will hold the API secret
    os.close(fd)
    if env_file.is_file():
        shutil.copyfile(env_file, tmp)
    report = []
    try:
        for name, value in values.items():
            shown = "<secret>" if "SECRET" in name else value
            if existing.get(name) == value:
                report.append(f"{name} unchanged")
                continue
            set_key(str(tmp), name, value, quote_mode="never")
            report.append(f"{name}={shown}")
        os.chmod(tmp, 0o600)
        os.replace(tmp, env_file)
    finally:
        if tmp.exists():
            tmp.unlink()
    return report


def write_private(path: Path, pem: str) -> None:
    """The private key, readable by its owner only (0600), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(pem)
    os.replace(tmp, path)


def free_name(path: Path) -> Path:
    """`path`, or path-2, path-3... when it exists (an existing key is never overwritten)."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def key_matches(private_key_value: Any, public_pem: Any) -> bool:
    """Is `.env`'s VONAGE_PRIVATE_KEY (a path or PEM text) the private half of the application's public key?"""
    from cryptography.hazmat.primitives import serialization

    from labkit.config import load_private_key
    from labkit.errors import ConfigError

    if not private_key_value or not public_pem:
        return False
    try:
        key = serialization.load_pem_private_key(load_private_key(str(private_key_value)).encode(), password=None)
        theirs = serialization.load_pem_public_key(str(public_pem).encode())
    except (ConfigError, ValueError, TypeError):
        return False
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key.public_key().public_bytes(*fmt) == theirs.public_bytes(*fmt)
