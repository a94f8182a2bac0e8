"""Vonage signed webhooks: HS256 JWTs in `Authorization: Bearer ...`, keyed by the signature secret.

The sandbox signs the webhooks it sends with `sign_webhook`; the lab's server checks every incoming one
with `verify_webhook`, so a notebook learns to verify the same way it must against the real platform.
Tokens are plain PyJWT HS256, the same check the SDK's `vonage_jwt.verify_signature` does, plus the
two checks the SDK leaves to the caller: token age and `payload_hash` (the body was not altered).
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from typing import Any

from labkit.errors import SignatureError

ISSUER = "Vonage"
ALGORITHM = "HS256"


def payload_hash(body: bytes) -> str:
    """Hex SHA-256 of the raw request body: the `payload_hash` claim that ties a token to one body."""
    return hashlib.sha256(body).hexdigest()


def sign_webhook(
    body: bytes,
    secret: str,
    *,
    api_key: str = "labkit",
    application_id: str | None = None,
    now: float | None = None,
    ttl: int | None = None,
) -> str:
    """Return the JWT Vonage would put after `Bearer ` for a webhook carrying `body`.

    Claims: `iat`, `jti` (uuid4), `iss` "Vonage", `payload_hash`, `api_key`, and `application_id` when
    given. `exp` is added only when `ttl` (seconds) is given: whether Voice tokens carry one is
    UNCONFIRMED, so by default none is sent and `verify_webhook` bounds the age with `iat` instead.

    For GET webhooks (query string, no body) pass `b""`: `payload_hash` is then the SHA-256 of the
    empty body. What the platform hashes for GET requests is UNCONFIRMED (presumably the empty body).
    """
    import jwt

    if not secret:
        raise SignatureError("Cannot sign a webhook without a signature secret.", reason="no_secret")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iat": issued,
        "jti": str(uuid.uuid4()),
        "iss": ISSUER,
        "payload_hash": payload_hash(body),
        "api_key": api_key,
    }
    if application_id is not None:
        claims["application_id"] = application_id
    if ttl is not None:
        claims["exp"] = issued + int(ttl)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_webhook(
    authorization: str | None,
    body: bytes,
    secret: str,
    *,
    leeway: float = 30,
    max_age: float = 300,
    now: float | None = None,
    require_payload_hash: bool = True,
) -> dict[str, Any]:
    """Check a webhook's `Authorization` header against `body` and return the token's claims.

    Raises `SignatureError` (with `.reason`) when the header is missing or not a Bearer token, the token
    is not a JWT, the signature does not match `secret`, the token is expired (`exp` passed, or `iat`
    older than `max_age` seconds; `leeway` absorbs clock skew both ways), or `payload_hash` is not the
    SHA-256 of `body` (the body was changed on the way).

    `body` must be the raw bytes as received, before any JSON parsing: re-serialised JSON hashes
    differently. For GET webhooks pass `b""` (UNCONFIRMED: see `sign_webhook`). The platform documents
    `payload_hash` as optional to check over HTTPS; `require_payload_hash=False` accepts tokens that lack
    the claim (a present but wrong hash is still refused).
    """
    import jwt

    if not secret:
        raise SignatureError(
            "No signature secret is configured, so the webhook cannot be checked: set "
            "VONAGE_SIGNATURE_SECRET (Vonage dashboard > API settings > Signature secret).",
            reason="no_secret",
        )
    if authorization is None or not authorization.strip():
        raise SignatureError(
            "The webhook is unsigned: it has no Authorization header. Vonage signs webhooks with a "
            "Bearer JWT; an unsigned one may be forged (or an internal error at Vonage: answer 5xx to "
            "make it retry).",
            reason="missing",
        )
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise SignatureError(
            "The Authorization header is not a Bearer token: Vonage sends 'Authorization: Bearer <jwt>'.",
            reason="not_bearer",
        )

    current = time.time() if now is None else now
    try:
        # Times are checked below against `current` (PyJWT has no clock argument).
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["iat"], "verify_exp": False, "verify_iat": False, "verify_nbf": False,
                     "verify_aud": False, "verify_iss": False},
        )
    except jwt.InvalidSignatureError:
        raise SignatureError(
            "The webhook's signature does not match: wrong signature secret, or not sent by Vonage.",
            reason="bad_signature",
        ) from None
    except jwt.InvalidAlgorithmError:
        raise SignatureError("The webhook's token is not signed with HS256.",
                             reason="bad_signature") from None
    except jwt.MissingRequiredClaimError as exc:
        raise SignatureError(f"The webhook's token has no {exc.claim!r} claim.",
                             reason="missing_claim") from None
    except jwt.InvalidTokenError as exc:
        raise SignatureError(f"The webhook's token is not a valid JWT ({type(exc).__name__}).",
                             reason="malformed") from None

    _check_times(claims, current, leeway, max_age)

    claimed = claims.get("payload_hash")
    if claimed is None:
        if require_payload_hash:
            raise SignatureError("The webhook's token has no 'payload_hash' claim.", reason="missing_claim")
    elif not isinstance(claimed, str) or not hmac.compare_digest(claimed.lower(), payload_hash(body)):
        raise SignatureError(
            "The webhook's body does not match its signed payload_hash: the body was changed after "
            "signing (or the server read a re-encoded body instead of the raw bytes).",
            reason="payload_hash",
        )
    return claims


def _check_times(claims: dict[str, Any], current: float, leeway: float, max_age: float) -> None:
    """Refuse tokens outside their validity window: exp passed, iat too old, or iat/nbf in the future."""
    for name in ("iat", "exp", "nbf"):
        value = claims.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise SignatureError(f"The webhook's token has a non-numeric {name!r} claim.", reason="malformed")
    exp = claims.get("exp")
    if exp is not None and exp <= current - leeway:
        raise SignatureError("The webhook's token has expired (its exp is in the past).", reason="expired")
    if current - claims["iat"] > max_age + leeway:
        raise SignatureError(
            f"The webhook's token has expired: issued more than {max_age:g} s ago (a replay, or this "
            "machine's clock is off).",
            reason="expired",
        )
    for name in ("iat", "nbf"):
        value = claims.get(name)
        if value is not None and value > current + leeway:
            raise SignatureError(
                "The webhook's token is dated in the future: check this machine's clock.",
                reason="not_yet_valid",
            )
