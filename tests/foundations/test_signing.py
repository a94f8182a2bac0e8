"""Signed webhooks: what the sandbox signs, the lab's server (and the real SDK) accepts; the rest is refused."""

from __future__ import annotations

import hashlib
import json
import time

import jwt
import pytest

from labkit.errors import LabkitError, SignatureError
from labkit.signing import ReplayGuard, payload_hash, sign_webhook, verify_webhook, webhook_payloads

SECRET = "s3cr3t-signature-secret-of-32-bytes!!"
BODY = json.dumps({"status": "answered", "uuid": "aaaaaaaa-0000-4000-8000-000000000000"}).encode()


def bearer(token: str) -> str:
    return f"Bearer {token}"


def refused(reason: str, *args, **kwargs) -> SignatureError:
    with pytest.raises(SignatureError) as info:
        verify_webhook(*args, **kwargs)
    assert info.value.reason == reason, str(info.value)
    assert isinstance(info.value, LabkitError)
    return info.value


def test_signed_webhook_is_accepted_with_expected_claims():
    token = sign_webhook(BODY, SECRET, api_key="abc123", application_id="app-1")
    claims = verify_webhook(bearer(token), BODY, SECRET)
    assert claims["iss"] == "Vonage"
    assert claims["api_key"] == "abc123"
    assert claims["application_id"] == "app-1"
    assert claims["payload_hash"] == hashlib.sha256(BODY).hexdigest()
    assert isinstance(claims["iat"], int) and abs(claims["iat"] - time.time()) < 5
    assert len(claims["jti"]) == 36
    assert "exp" not in claims
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_each_token_has_a_fresh_jti_and_optional_fields():
    first, second = (jwt.decode(sign_webhook(b"", SECRET), SECRET, algorithms=["HS256"]) for _ in range(2))
    assert first["jti"] != second["jti"]
    assert "application_id" not in first
    assert first["api_key"] == "labkit"


def test_get_webhook_hashes_the_compact_json_of_its_query():
    """Vonage: payload_hash of a GET is the SHA-256 of its query parameters as compact JSON, in order."""
    query = [("uuid", "u1"), ("from", "447700900001"), ("note", "café")]
    payloads = webhook_payloads("GET", query, b"")
    assert payloads == ['{"uuid":"u1","from":"447700900001","note":"café"}'.encode()]
    token = sign_webhook(payloads[0], SECRET)
    assert verify_webhook(bearer(token), payloads, SECRET)["payload_hash"] == hashlib.sha256(payloads[0]).hexdigest()
    refused("payload_hash", bearer(token), webhook_payloads("GET", query[::-1], b""), SECRET)
    refused("payload_hash", bearer(sign_webhook(b"", SECRET)), payloads, SECRET)  # the empty body is not it


def test_post_webhook_accepts_the_compact_json_or_the_raw_body():
    raw = b'{"status": "answered",  "uuid": "u1"}'
    payloads = webhook_payloads("POST", [], raw)
    assert payloads == [b'{"status":"answered","uuid":"u1"}', raw]
    for signed in payloads:
        assert verify_webhook(bearer(sign_webhook(signed, SECRET)), payloads, SECRET)


def test_application_id_claim_must_match_when_present():
    token = sign_webhook(BODY, SECRET, application_id="app-1")
    assert verify_webhook(bearer(token), BODY, SECRET, application_id="app-1")
    refused("wrong_application", bearer(token), BODY, SECRET, application_id="app-2")
    assert verify_webhook(bearer(sign_webhook(BODY, SECRET)), BODY, SECRET, application_id="app-2")  # no claim


def test_a_replayed_jti_is_refused_within_the_token_lifetime():
    guard = ReplayGuard()
    token = sign_webhook(BODY, SECRET, now=1_000_000, ttl=60)
    assert verify_webhook(bearer(token), BODY, SECRET, now=1_000_010, replays=guard)
    refused("replayed", bearer(token), BODY, SECRET, now=1_000_020, replays=guard)
    other = sign_webhook(BODY, SECRET, now=1_000_000, ttl=60)  # another jti: fine
    assert verify_webhook(bearer(other), BODY, SECRET, now=1_000_020, replays=guard)


def test_replay_memory_is_bounded():
    guard = ReplayGuard(max_entries=100)
    for n in range(1000):
        guard.check(f"jti-{n}", expires=2_000_000, now=1_000_000)
    assert len(guard._seen) <= 100


def test_scheme_is_case_insensitive_and_whitespace_tolerant():
    token = sign_webhook(BODY, SECRET)
    assert verify_webhook(f"  bearer   {token} ", BODY, SECRET)["iss"] == "Vonage"


@pytest.mark.parametrize("header", [None, "", "   "])
def test_unsigned_webhook_is_refused(header):
    error = refused("missing", header, BODY, SECRET)
    assert "Authorization" in str(error)


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "token-without-scheme"])
def test_not_a_bearer_token_is_refused(header):
    refused("not_bearer", header, BODY, SECRET)


def test_wrong_secret_is_refused():
    token = sign_webhook(BODY, "another-secret-that-is-32-bytes-long")
    error = refused("bad_signature", bearer(token), BODY, SECRET)
    assert "secret" in str(error)


def test_token_signed_with_another_algorithm_is_refused():
    secret = SECRET * 2  # long enough for HS512, so PyJWT does not warn
    token = jwt.encode({"iat": int(time.time()), "payload_hash": payload_hash(BODY)}, secret, algorithm="HS512")
    refused("bad_signature", bearer(token), BODY, secret)


def test_a_well_formed_token_with_a_forged_signature_is_refused():
    header, payload, _ = sign_webhook(BODY, SECRET).split(".")
    refused("bad_signature", bearer(f"{header}.{payload}.AAAA"), BODY, SECRET)


def test_expired_exp_is_refused():
    token = sign_webhook(BODY, SECRET, now=time.time() - 120, ttl=60)
    error = refused("expired", bearer(token), BODY, SECRET)
    assert "expired" in str(error)


def test_old_iat_without_exp_is_refused_after_max_age():
    token = sign_webhook(BODY, SECRET, now=time.time() - 1000)
    refused("expired", bearer(token), BODY, SECRET)
    # ...and accepted when the caller allows older tokens
    assert verify_webhook(bearer(token), BODY, SECRET, max_age=2000)["iss"] == "Vonage"


def test_leeway_absorbs_small_clock_skew():
    token = sign_webhook(BODY, SECRET, now=time.time() - 10, ttl=5)
    assert verify_webhook(bearer(token), BODY, SECRET, leeway=30)
    refused("expired", bearer(token), BODY, SECRET, leeway=0)


def test_token_from_the_future_is_refused():
    token = sign_webhook(BODY, SECRET, now=time.time() + 3600)
    refused("not_yet_valid", bearer(token), BODY, SECRET)


def test_fixed_clock_for_replays():
    token = sign_webhook(BODY, SECRET, now=1_000_000, ttl=60)
    assert verify_webhook(bearer(token), BODY, SECRET, now=1_000_030)["iat"] == 1_000_000
    refused("expired", bearer(token), BODY, SECRET, now=1_000_200)


def test_tampered_body_is_refused():
    token = sign_webhook(BODY, SECRET)
    tampered = BODY.replace(b"answered", b"completed")
    error = refused("payload_hash", bearer(token), tampered, SECRET)
    assert "body" in str(error)


def test_reencoded_json_body_is_refused():
    """Verification needs the raw bytes: re-serialised JSON (other spacing) hashes differently."""
    token = sign_webhook(BODY, SECRET)
    reencoded = json.dumps(json.loads(BODY), separators=(",", ":")).encode()
    refused("payload_hash", bearer(token), reencoded, SECRET)


def test_missing_payload_hash_is_refused_unless_optional():
    token = jwt.encode({"iat": int(time.time()), "iss": "Vonage"}, SECRET, algorithm="HS256")
    refused("missing_claim", bearer(token), BODY, SECRET)
    assert verify_webhook(bearer(token), BODY, SECRET, require_payload_hash=False)["iss"] == "Vonage"


def test_missing_iat_is_refused():
    token = jwt.encode({"payload_hash": payload_hash(BODY)}, SECRET, algorithm="HS256")
    refused("missing_claim", bearer(token), BODY, SECRET)


@pytest.mark.parametrize("garbage", ["not-a-jwt", "a.b.c", "Zm9v.YmFy", "eyJhbGciOiJIUzI1NiJ9"])
def test_garbage_token_is_refused(garbage):
    refused("malformed", bearer(garbage), BODY, SECRET)


def test_unsigned_alg_none_token_is_refused():
    token = jwt.encode({"iat": int(time.time()), "payload_hash": payload_hash(BODY)}, None, algorithm="none")
    with pytest.raises(SignatureError) as info:
        verify_webhook(bearer(token), BODY, SECRET)
    assert info.value.reason in ("bad_signature", "malformed")


def test_no_secret_configured():
    token = sign_webhook(BODY, SECRET)
    refused("no_secret", bearer(token), BODY, "")
    with pytest.raises(SignatureError):
        sign_webhook(BODY, "")


def test_short_secrets_work():
    """Vonage may issue short secrets: PyJWT only warns, and verification still works."""
    with pytest.warns(Warning) if _pyjwt_warns_short_keys() else _nothing():
        token = sign_webhook(BODY, "short")
    with pytest.warns(Warning) if _pyjwt_warns_short_keys() else _nothing():
        assert verify_webhook(bearer(token), BODY, "short")["iss"] == "Vonage"


def test_real_sdk_accepts_our_tokens():
    vonage_jwt = pytest.importorskip("vonage_jwt")
    token = sign_webhook(BODY, SECRET, api_key="abc123", application_id="app-1")
    assert vonage_jwt.verify_signature(token, SECRET) is True
    assert vonage_jwt.verify_signature(token, "another-secret-that-is-32-bytes-long") is False


def test_real_sdk_voice_client_accepts_our_tokens():
    vonage = pytest.importorskip("vonage")
    client = vonage.Vonage(vonage.Auth(api_key="abc123", api_secret="not-used-offline"))
    token = sign_webhook(BODY, SECRET, api_key="abc123")
    assert client.voice.verify_signature(token, SECRET) is True


def test_we_accept_tokens_shaped_like_the_documented_sample():
    """A token built by hand the way the platform documents it (PyJWT, HS256) passes our check."""
    now = int(time.time())
    claims = {"iat": now, "jti": "c5ba8f24-1a14-4c10-bfdf-3fbe8ce511b5", "iss": "Vonage",
              "payload_hash": hashlib.sha256(BODY).hexdigest(), "api_key": "abc123",
              "application_id": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"}
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    assert verify_webhook(bearer(token), BODY, SECRET) == claims


def _pyjwt_warns_short_keys() -> bool:
    from jwt.algorithms import HMACAlgorithm

    return hasattr(HMACAlgorithm, "check_key_length")


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
