"""An application's RSA key pair, made locally.

Foundations: both sides make them. The sandbox makes one when an application is created without a
public key, as Vonage does; `labkit setup` makes one to upload with a new application on a real account.
"""

from __future__ import annotations


def new_key_pair() -> tuple[str, str]:
    """(public PEM, private PKCS#8 PEM): an application's key pair, made locally."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return public, private
