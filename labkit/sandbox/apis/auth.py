"""The sandbox application's identity and the REST API's JWT check.

Like a Vonage application, the sandbox has an application id and an RSA key pair: the SDK signs every
request (RS256, claims application_id/iat/jti/exp) with the private key, and the platform verifies with
the public key. The key is PKCS#8 because the SDK refuses PKCS#1 key *strings*. Both are made once per
installation (under the sandbox home) so notebooks and `.env` files keep working across restarts.
"""

from __future__ import annotations

import json
import secrets
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from labkit.errors import SandboxUnauthorized
from labkit.sandbox.wire.tls import _write_private, _write_public, home_lock

DEFAULT_NUMBER = "447700900000"
UNAUTHORIZED_DETAIL = "You did not provide correct credentials."
JWT_LEEWAY = 30  # seconds of clock skew tolerated on iat/exp, like a real server would


@dataclass(frozen=True)
class AppCredentials:
    """What identifies the sandbox's one Voice application."""

    application_id: str
    private_key_path: Path
    public_key_pem: bytes
    api_key: str
    number: str
    api_secret: str = ""  # HTTP Basic for the Application and Numbers APIs, with api_key
    signature_secret: str = ""  # the account's webhook signature secret


def load_or_create_credentials(home: Path) -> AppCredentials:
    """Read `<home>/application.json` and the key pair, creating them on first use."""
    home = Path(home)
    meta_path = home / "application.json"
    key_path = home / "private.key"
    pub_path = home / "public.pem"
    with home_lock(home):
        meta: dict = {}
        if meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text())
            except ValueError:
                meta = {}
        if not key_path.is_file() or not pub_path.is_file():
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            _write_private(
                key_path,
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
            _write_public(
                pub_path,
                key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                ),
            )
        changed = False
        if not meta.get("application_id"):
            meta["application_id"] = str(uuid.uuid4())
            changed = True
        if not meta.get("api_key"):
            meta["api_key"] = secrets.token_hex(4)
            changed = True
        for name, size in (("api_secret", 16), ("signature_secret", 32)):
            if not meta.get(name):  # a fake account's secrets, made once like the key pair; letters and digits
                # only, as Vonage's are (UNCONFIRMED): a leading '-' would read as an option on a command line
                meta[name] = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(size))
                changed = True
        if not meta.get("number"):
            meta["number"] = DEFAULT_NUMBER
            changed = True
        if changed:
            _write_private(meta_path, json.dumps(meta, indent=2).encode())  # holds the secrets: 0600
    return AppCredentials(
        application_id=meta["application_id"],
        private_key_path=key_path,
        public_key_pem=pub_path.read_bytes(),
        api_key=meta["api_key"],
        number=meta["number"],
        api_secret=meta["api_secret"],
        signature_secret=meta["signature_secret"],
    )


def verify_request_jwt(authorization: str | None, creds: AppCredentials) -> dict:
    """Return the claims of a valid `Bearer <RS256 JWT>` for this application, else raise 401."""
    if not authorization or not authorization.startswith("Bearer "):
        raise SandboxUnauthorized(UNAUTHORIZED_DETAIL)
    token = authorization[len("Bearer "):].strip()
    try:
        claims = jwt.decode(
            token,
            creds.public_key_pem,
            algorithms=["RS256"],
            leeway=JWT_LEEWAY,
            options={"require": ["iat", "jti", "application_id"]},
        )
    except jwt.PyJWTError:
        raise SandboxUnauthorized(UNAUTHORIZED_DETAIL) from None
    if claims.get("application_id") != creds.application_id:
        raise SandboxUnauthorized(UNAUTHORIZED_DETAIL)
    return claims


def verify_application_jwt(authorization: str | None, public_key_for: Callable[[str], bytes | None]) -> dict:
    """Like `verify_request_jwt`, for any application of the account: the `application_id` claim
    names the application whose public key must have signed the token; else 401."""
    if not authorization or not authorization.startswith("Bearer "):
        raise SandboxUnauthorized(UNAUTHORIZED_DETAIL)
    token = authorization[len("Bearer "):].strip()
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise SandboxUnauthorized(UNAUTHORIZED_DETAIL) from None
    app_id = unverified.get("application_id")
    key = public_key_for(app_id) if isinstance(app_id, str) else None
    if key is None:
        raise SandboxUnauthorized(UNAUTHORIZED_DETAIL)
    try:
        return jwt.decode(token, key, algorithms=["RS256"], leeway=JWT_LEEWAY,
                          options={"require": ["iat", "jti", "application_id"]})
    except jwt.PyJWTError:
        raise SandboxUnauthorized(UNAUTHORIZED_DETAIL) from None
