"""The lab's Auth seam: the SDK's own application JWT, signed with a key parsed once.

If a new `vonage` release changes the token it builds (header, claim names, lifetime) or stops
routing requests through `Auth.generate_application_jwt`, these tests fail, naming what changed.
"""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from vonage_http_client import Auth

from labkit.sdk_auth import ParsedKeyAuth

APP = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"


@pytest.fixture(scope="module")
def key():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return private, pem


def test_same_token_shape_as_the_sdk(key):
    private, pem = key
    ours, stock = ParsedKeyAuth(APP, pem), Auth(application_id=APP, private_key=pem)
    a, b = ours.generate_application_jwt(), stock.generate_application_jwt()
    assert isinstance(a, bytes) and isinstance(b, bytes)
    assert jwt.get_unverified_header(a) == jwt.get_unverified_header(b)
    public = private.public_key()
    ca = jwt.decode(a, public, algorithms=["RS256"])
    cb = jwt.decode(b, public, algorithms=["RS256"])
    assert set(ca) == set(cb), f"the SDK's claims changed: {sorted(cb)} vs ours {sorted(ca)}"
    assert ca["application_id"] == cb["application_id"] == APP
    assert ca["exp"] - ca["iat"] == cb["exp"] - cb["iat"]
    extra = {"sub": "alice", "acl": {"paths": {"/*/users/**": {}}}}
    assert set(jwt.decode(ours.generate_application_jwt(extra), public, algorithms=["RS256"])) == set(
        jwt.decode(stock.generate_application_jwt(extra), public, algorithms=["RS256"]))
    assert ours.create_jwt_auth_string().startswith(b"Bearer ")


def test_a_fresh_jti_every_request_and_no_pem_parsing(key, monkeypatch):
    from cryptography.hazmat.primitives import serialization as ser

    _, pem = key
    auth = ParsedKeyAuth(APP, pem)
    parsed = []
    real = ser.load_pem_private_key
    monkeypatch.setattr(ser, "load_pem_private_key", lambda *a, **k: parsed.append(1) or real(*a, **k))
    tokens = [auth.create_jwt_auth_string() for _ in range(5)]
    jtis = {jwt.decode(t[7:], options={"verify_signature": False})["jti"] for t in tokens}
    assert len(jtis) == 5 and not parsed


def test_key_from_a_path_works(key, tmp_path):
    private, pem = key
    path = tmp_path / "private.key"
    path.write_text(pem)
    token = ParsedKeyAuth(APP, str(path)).generate_application_jwt()
    assert jwt.decode(token, private.public_key(), algorithms=["RS256"])["application_id"] == APP


def test_the_lab_signs_every_sdk_request_through_the_seam(lab):
    auth = lab.voice.http_client.auth
    assert isinstance(auth, ParsedKeyAuth)
    calls = []
    original = auth.generate_application_jwt
    auth.generate_application_jwt = lambda claims=None: calls.append(1) or original(claims)
    try:
        lab.voice.list_calls()  # a real SDK request to the sandbox, which checks the token
    finally:
        del auth.generate_application_jwt
    assert calls == [1]
    assert "PRIVATE KEY" not in repr(auth)
