"""Sign-in's store on a real redis-server, and aigw's tokens signed by a KMS key (moto stands in for KMS: nothing
else can sign with a KMS key here; the signature is then checked without moto, with the public key alone)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import boto3
import jwt
import pytest
import redis.asyncio as aioredis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from moto import mock_aws

from gateway.access_tokens import AccessTokens, KmsKey, Person
from gateway.settings import AuthSettings, SigninSettings, TokenSigning
from gateway.signin_store import SigninStore, digest, normalise_user_code
from local import harness

PERSON = Person("u-1", "dev@example.com", "Dev", "payments", ("developers",))


def signin_settings(**changes: Any) -> SigninSettings:
    return SigninSettings.model_validate(
        harness.signin("https://aigw.example.com", "https://idp.example.com", **changes)
    )


def on_redis(server: harness.RedisServer, settings: SigninSettings, call: Callable[[SigninStore], Any]) -> Any:
    """One store call, by a store (and client) of this event loop's own, on the real redis-server."""

    async def go() -> Any:
        client = aioredis.Redis(host="127.0.0.1", port=server.port)
        try:
            return await call(SigninStore(settings, "dev", lambda: client))
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_a_refresh_token_presented_twice_within_the_grace_is_refused_but_its_family_lives(
    fresh_redis: harness.RedisServer,
) -> None:
    settings = signin_settings(reuse_grace_seconds=30)
    first = on_redis(fresh_redis, settings, lambda s: s.new_family(PERSON))
    rotated = on_redis(fresh_redis, settings, lambda s: s.rotate(first))
    assert rotated.state == "ok" and rotated.person == PERSON
    raced = on_redis(fresh_redis, settings, lambda s: s.rotate(first))  # a second terminal, moments later
    assert raced.state == "raced"
    assert on_redis(fresh_redis, settings, lambda s: s.rotate(rotated.refresh_token)).state == "ok"  # family lives


def test_after_the_grace_a_reused_token_revokes_its_whole_family(fresh_redis: harness.RedisServer) -> None:
    settings = signin_settings(reuse_grace_seconds=0)
    first = on_redis(fresh_redis, settings, lambda s: s.new_family(PERSON))
    rotated = on_redis(fresh_redis, settings, lambda s: s.rotate(first))
    assert on_redis(fresh_redis, settings, lambda s: s.rotate(first)).state == "reused"
    assert on_redis(fresh_redis, settings, lambda s: s.rotate(rotated.refresh_token)).state == "revoked"
    assert on_redis(fresh_redis, settings, lambda s: s.rotate("aigw_rt_never-issued")).state == "invalid"


def test_refresh_tokens_lapse_when_idle_and_with_their_sign_in(fresh_redis: harness.RedisServer) -> None:
    settings = signin_settings(refresh_idle_seconds=3600, session_max_seconds=7200)
    first = on_redis(fresh_redis, settings, lambda s: s.new_family(PERSON))

    async def lifetimes(store: SigninStore) -> tuple[int, int]:
        client = store.redis()
        assert client is not None
        token_key = store._key("refresh", digest(first))
        family = await client.hget(token_key, "family")
        assert isinstance(family, bytes)
        return await client.ttl(token_key), await client.ttl(store._key("family", family.decode()))

    token_ttl, family_ttl = on_redis(fresh_redis, settings, lifetimes)
    assert 3590 <= token_ttl <= 3600 and 7190 <= family_ttl <= 7200


def test_user_codes_are_read_as_typed() -> None:
    assert normalise_user_code("bcdf ghjk") == "BCDF-GHJK"
    assert normalise_user_code("BCDF-GHJK") == "BCDF-GHJK"
    assert normalise_user_code("BCDF-GHJA") is None  # a vowel is never issued
    assert normalise_user_code("BCDF-GHJ") is None


def test_tokens_signed_by_a_kms_key_verify_with_its_public_key_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        kms = boto3.client("kms", region_name="eu-west-1")
        arn = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
        key = KmsKey(TokenSigning(kind="kms", kms_key_id=arn), "eu-west-1")
        key.load()
        tokens = AccessTokens(signin_settings(), AuthSettings(issuer="i", audience="a", jwks_url="https://j"), key)
        token, lifetime = asyncio.run(tokens.mint(PERSON))
        public_der = kms.get_public_key(KeyId=arn)["PublicKey"]
    assert lifetime == 3600 and jwt.get_unverified_header(token) == {"alg": "ES256", "typ": "JWT", "kid": key.kid}
    public = serialization.load_der_public_key(public_der)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    claims = jwt.decode(token, public, algorithms=["ES256"], audience="aigw", issuer="https://aigw.example.com")
    assert (claims["sub"], claims["email"], claims["team"], claims["groups"]) == (
        "u-1", "dev@example.com", "payments", ["developers"],
    )  # fmt: skip
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"), public, algorithms=["ES256"],
                   audience="aigw")  # fmt: skip
