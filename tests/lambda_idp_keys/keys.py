"""Real JWKs for the IdP-keys tests, made with the same libraries the gateway verifies with."""

from __future__ import annotations

import functools
import json
import zlib
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://idp.example.com/oauth2/default"
JWKS_URI = "https://idp.example.com/oauth2/default/v1/keys"


@functools.cache
def rsa_private(bits: int = 2048, slot: int = 0) -> rsa.RSAPrivateKey:
    """A few keys per size, made once: generating RSA keys takes seconds on a busy machine."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def rsa_jwk(kid: str, private: rsa.RSAPrivateKey | None = None, **extra: Any) -> dict[str, Any]:
    """A public RSA JWK as an IdP publishes it (with a certificate chain and thumbprint a verifier does not need).
    Without `private`, the key material is one of three, chosen by the kid."""
    key = private or rsa_private(2048, zlib.crc32(kid.encode()) % 3)
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256", "x5c": ["MIIC" + "A" * 900], "x5t": "abc", **extra}


def rsa_private_jwk(kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(rsa_private(2048, 0)))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


def ec_jwk(kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "ES256"}


def discovery(issuer: str = ISSUER, jwks_uri: str = JWKS_URI) -> dict[str, Any]:
    return {"issuer": issuer, "jwks_uri": jwks_uri, "id_token_signing_alg_values_supported": ["RS256"]}
