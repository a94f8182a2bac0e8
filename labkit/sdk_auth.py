"""The SDK's `Auth`, signing each request's JWT with an RSA key parsed once instead of on every request.

`vonage_jwt.JwtClient` keeps the private key as PEM and hands it to PyJWT, which parses PEM on every
call (about 36 ms of RSA key validation per request on these machines, 100x the signature itself);
PyJWT passes an already parsed `RSAPrivateKey` through unchanged. `vonage_http_client.Auth` has no
setter or cache for the key, so this subclass overrides its public `generate_application_jwt` (which
`create_jwt_auth_string`, and so every SDK request, goes through) and builds the same token the SDK
does: header `{"alg": "RS256", "typ": "JWT"}`, claims `application_id`, `iat`, a fresh `jti` (uuid4)
for every request, and `exp` = iat + 15 min. tests/test_sdk_auth.py compares it with the SDK's own
token, so a new SDK version that changes the token fails there, loudly.
"""

from __future__ import annotations

import time
from pathlib import Path
from uuid import uuid4

import jwt
from cryptography.hazmat.primitives import serialization
from vonage_http_client import Auth

TOKEN_LIFETIME = 15 * 60  # seconds: the SDK's default `exp` (vonage_jwt.JwtClient)


class ParsedKeyAuth(Auth):
    """`Auth(application_id=..., private_key=...)` for the Voice API, with the key parsed once.

    `private_key` is PEM text (PKCS#8, as the SDK requires) or the path of a PEM file."""

    def __init__(self, application_id: str, private_key: str):
        super().__init__(application_id=application_id, private_key=private_key)  # the SDK's own checks
        pem = private_key.encode() if "-----BEGIN" in private_key else Path(private_key).read_bytes()
        self._parsed_key = serialization.load_pem_private_key(pem, password=None)

    def generate_application_jwt(self, claims: dict | None = None) -> bytes:
        """The SDK's application JWT (same header and claims), signed with the parsed key."""
        payload = dict(claims or {})
        payload["application_id"] = self.application_id
        payload["iat"] = payload.get("iat", int(time.time()))
        payload["jti"] = payload.get("jti", str(uuid4()))
        payload["exp"] = payload.get("exp", payload["iat"] + TOKEN_LIFETIME)
        token = jwt.encode(payload, self._parsed_key, algorithm="RS256", headers={"alg": "RS256", "typ": "JWT"})
        return token.encode()

    def __repr__(self) -> str:
        return f"<ParsedKeyAuth application_id={self.application_id}>"
