"""Vonage signed webhooks: HS256 JWTs in `Authorization: Bearer ...`, keyed by the signature secret.

The sandbox signs the webhooks it sends with `sign_webhook`; the lab's server checks every incoming one
with `verify_webhook`, so a notebook learns to verify the same way it must against the real platform.
Tokens are plain PyJWT HS256, the same check the SDK's `vonage_jwt.verify_signature` does, plus the
checks the SDK leaves to the caller: token age, `payload_hash` (the payload was not altered), the
`application_id` claim when present, and a `jti` seen twice (a replay).

What `payload_hash` covers (reference/vonage-platform.md, "3. Signed webhooks", from Vonage's support
article [SUP-SIGN] and Node snippet [NODE-SNIP]): the SHA-256 hex of the compact JSON (no whitespace,
properties in the order received) of the query parameters for GET, and of the body for POST.
`webhook_payloads` builds exactly those bytes; for POST the raw body's hash is accepted too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from labkit.errors import SignatureError

ISSUER = "Vonage"
ALGORITHM = "HS256"


def payload_hash(body: bytes) -> str:
    """Hex SHA-256 of `body`: the `payload_hash` claim that ties a token to one payload."""
    return hashlib.sha256(body).hexdigest()


def compact_json(fields: Mapping[str, Any]) -> bytes:
    """JSON with no whitespace, keys in the given order, non-ASCII kept (as JavaScript's JSON.stringify)."""
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()


def webhook_payloads(method: str, query: Sequence[tuple[str, str]], body: bytes) -> list[bytes]:
    """The byte strings a Vonage `payload_hash` may be the SHA-256 of, for one request.

    GET: the compact JSON of the query parameters, in URL order (a repeated name keeps its first place
    and its last value, as a JavaScript object would). POST: the compact JSON of the body as received,
    then the raw body (Vonage's own body is already compact), then query and body merged as Vonage's
    Node snippet does (`Object.assign(request.query, request.body)`). Sources: see the module docstring.
    """
    params = dict(query)
    if method.upper() == "GET":
        return [compact_json(params)]
    found: list[bytes] = []
    try:
        parsed = json.loads(body, object_pairs_hook=OrderedDict) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        found.append(compact_json(parsed))
    found.append(body)
    if params and isinstance(parsed, dict):
        found.append(compact_json({**params, **parsed}))
    return found


class ReplayGuard:
    """The `jti` of every token accepted, kept until that token would expire anyway.

    A captured signed webhook sent again within its lifetime is refused. Memory is bounded by the
    tokens' lifetime (old entries are dropped as new ones arrive) and by `max_entries`.
    UNCONFIRMED: whether Vonage signs each retry of a webhook anew (a new jti) is not documented; the
    sandbox does. If Vonage resent the very same token, its retry of a webhook already taken would be
    refused (401) here.
    """

    def __init__(self, max_entries: int = 100_000):
        self.max_entries = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()  # jti -> when it expires, in arrival order
        self._lock = threading.Lock()

    def check(self, jti: Any, expires: float, now: float) -> None:
        """Remember `jti` until `expires`, or raise SignatureError if it is already remembered."""
        if not isinstance(jti, str) or not jti:
            return  # no jti: nothing to match (the token's age still bounds it)
        with self._lock:
            while self._seen and (next(iter(self._seen.values())) <= now or len(self._seen) >= self.max_entries):
                self._seen.popitem(last=False)
            if jti in self._seen and self._seen[jti] > now:
                raise SignatureError("The webhook's token was already used (same jti): a replayed request.",
                                     reason="replayed")
            self._seen[jti] = expires


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

    `body` is what `payload_hash` covers: for GET webhooks the compact JSON of the query parameters
    (`compact_json(params)`), for POST the body (see `webhook_payloads`).
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
    body: bytes | Iterable[bytes],
    secret: str,
    *,
    leeway: float = 30,
    max_age: float = 300,
    now: float | None = None,
    require_payload_hash: bool = True,
    application_id: str | None = None,
    replays: ReplayGuard | None = None,
) -> dict[str, Any]:
    """Check a webhook's `Authorization` header against `body` and return the token's claims.

    Raises `SignatureError` (with `.reason`) when the header is missing or not a Bearer token, the token
    is not a JWT, the signature does not match `secret`, the token is expired (`exp` passed, or `iat`
    older than `max_age` seconds; `leeway` absorbs clock skew both ways), or `payload_hash` is not the
    SHA-256 of `body` (the body was changed on the way).

    `body` is the payload bytes, or several candidates (`webhook_payloads` gives them for a request):
    the token passes if `payload_hash` matches any. `require_payload_hash=False` accepts tokens that lack
    the claim (a present but wrong hash is still refused). With `application_id`, a token naming
    another application is refused; with `replays`, a `jti` already accepted is refused.
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

    candidates = [body] if isinstance(body, (bytes, bytearray)) else list(body)
    claimed = claims.get("payload_hash")
    if claimed is None:
        if require_payload_hash:
            raise SignatureError("The webhook's token has no 'payload_hash' claim.", reason="missing_claim")
    elif not isinstance(claimed, str) or not any(
            hmac.compare_digest(claimed.lower(), payload_hash(bytes(c))) for c in candidates):
        raise SignatureError(
            "The webhook's body does not match its signed payload_hash: the body was changed after "
            "signing (or the server read a re-encoded body instead of the raw bytes).",
            reason="payload_hash",
        )
    claimed_app = claims.get("application_id")
    if application_id is not None and claimed_app is not None and claimed_app != application_id:
        raise SignatureError("The webhook's token is for another application (application_id claim): "
                             "check VONAGE_APPLICATION_ID.", reason="wrong_application")
    if replays is not None:
        expires = claims["exp"] if claims.get("exp") is not None else claims["iat"] + max_age
        replays.check(claims.get("jti"), float(expires) + leeway, current)
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
