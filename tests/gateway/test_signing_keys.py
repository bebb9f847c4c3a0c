"""SigningKeys against a stand-in key source (in-process, no network): when it re-reads, when it asks the mirror for
a refresh, and how long it waits. tests/gateway/test_idp_keys.py runs the same path with real processes."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from gateway.auth import (
    KEY_SOURCE_ERRORS,
    Authenticator,
    AuthError,
    KeySourceError,
    SigningKeys,
    UrlKeySource,
    keys_by_kid,
)
from gateway.settings import AuthSettings

PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC = json.loads(RSAAlgorithm.to_jwk(PRIVATE.public_key()))


def jwk(kid: str) -> dict[str, Any]:
    return {**PUBLIC, "kid": kid, "use": "sig", "alg": "RS256"}


def settings(**changes: Any) -> AuthSettings:
    return AuthSettings.model_validate(
        {
            "issuer": "https://idp.example.com/",
            "audience": "aigw",
            "jwks_url": "https://idp.example.com/keys",
            "jwks_parameter": "/aigw/t/idp-jwks",
            "jwks_refresh_function": "aigw-t-idp-keys",
            "jwks_min_refresh_seconds": 1,
            "jwks_timeout_seconds": 1,
            **changes,
        }
    )


@dataclass
class Mirror:
    """A parameter's key set and the function that refreshes it, `delay` seconds after it is asked."""

    kids: list[str] = field(default_factory=list)
    published: list[str] = field(default_factory=list)  # what the IdP serves: the mirror's next write
    delay: float = 0.1
    reads: int = 0
    asked: list[str | None] = field(default_factory=list)
    fail_ask: bool = False
    description: str = "a stand-in parameter"

    async def read(self) -> dict[str, jwt.PyJWK]:
        self.reads += 1
        return keys_by_kid({"keys": [jwk(kid) for kid in self.kids]}, allow_empty=True)

    async def request_refresh(self, kid: str | None) -> bool:
        if self.fail_ask:
            raise KeySourceError("no Lambda endpoint")
        self.asked.append(kid)
        asyncio.get_running_loop().call_later(self.delay, self._write)
        return True

    def _write(self) -> None:
        if set(self.published) != set(self.kids):
            self.kids = list(self.published)

    async def aclose(self) -> None:
        pass


def test_a_known_kid_is_served_without_reading_again() -> None:
    async def scenario() -> None:
        mirror = Mirror(kids=["k1"], published=["k1"])
        keys = SigningKeys(settings(), mirror)
        await keys.load()
        assert await keys.get("k1") is not None
        assert (mirror.reads, mirror.asked) == (1, [])

    asyncio.run(scenario())


def test_a_rotated_kid_is_re_read_then_asked_for_then_found() -> None:
    async def scenario() -> None:
        mirror = Mirror(kids=["k1"], published=["k1", "k2"])
        keys = SigningKeys(settings(), mirror)
        await keys.load()
        await asyncio.sleep(1)  # past jwks_min_refresh_seconds
        assert await keys.get("k2") is not None
        assert mirror.asked == ["k2"]
        # The start's read, the re-read, then one poll: found as soon as the mirror wrote, not polled till the end.
        assert mirror.reads == 3

    asyncio.run(scenario())


def test_an_unknown_kid_waits_at_most_the_timeout_and_is_not_asked_about_again_at_once() -> None:
    async def scenario() -> None:
        mirror = Mirror(kids=["k1"], published=["k1"])
        keys = SigningKeys(settings(jwks_min_refresh_seconds=30, jwks_timeout_seconds=0.5), mirror)  # never read
        started = time.monotonic()
        assert await keys.get("made-up") is None
        assert time.monotonic() - started >= 0.5  # it waited for the mirror...
        assert mirror.reads <= 4  # ...polling a few times, backing off (0.2 s, then 0.4 s, cut at the timeout)
        assert mirror.asked == ["made-up"]
        reads = mirror.reads
        assert await keys.get("made-up-2") is None  # within jwks_min_refresh_seconds: no read, no ask
        assert (mirror.reads, mirror.asked) == (reads, ["made-up"])

    asyncio.run(scenario())


def test_an_empty_mirror_is_asked_to_fill_itself_at_start() -> None:
    async def scenario() -> None:
        mirror = Mirror(kids=[], published=["k1"])
        keys = SigningKeys(settings(), mirror)
        await keys.load()
        assert mirror.asked == [None]
        assert await keys.get("k1") is not None

    asyncio.run(scenario())


def test_a_mirror_that_cannot_be_asked_is_an_unreachable_idp() -> None:
    async def scenario() -> None:
        mirror = Mirror(kids=["k1"], published=["k1", "k2"], fail_ask=True)
        keys = SigningKeys(settings(), mirror)
        with pytest.raises(KEY_SOURCE_ERRORS):
            await keys.get("k2")

    asyncio.run(scenario())


def test_the_url_source_never_asks_anyone() -> None:
    async def scenario() -> None:
        source = UrlKeySource(settings(jwks_parameter=None, jwks_refresh_function=None))
        try:
            assert await source.request_refresh("k2") is False
        finally:
            await source.aclose()

    asyncio.run(scenario())


def test_an_empty_key_set_from_the_idp_itself_is_still_an_error() -> None:
    # Only the mirror's parameter may be empty (before the function's first run); an IdP serving no keys is broken.
    with pytest.raises(KEY_SOURCE_ERRORS):
        keys_by_kid({"keys": []})
    assert keys_by_kid({"keys": []}, allow_empty=True) == {}
    assert set(keys_by_kid({"keys": [jwk("k1"), jwk("k2")]})) == {"k1", "k2"}


def idp_token(kid: str, lifetime: float = 3600, **claims: Any) -> str:
    now = time.time()
    payload: dict[str, Any] = {"iss": "https://idp.example.com/", "aud": "aigw", "email": "dev@example.com"}
    payload["team"] = "payments"
    payload |= {"iat": int(now), "exp": int(now + lifetime), **claims}
    return jwt.encode(payload, PRIVATE, algorithm="RS256", headers={"kid": kid})


def test_a_verified_token_is_remembered_until_the_key_set_changes() -> None:
    async def scenario() -> None:
        mirror = Mirror(kids=["k1"])
        keys = SigningKeys(settings(jwks_min_refresh_seconds=1), mirror)
        await keys.load()
        auth = Authenticator(settings(), keys)
        token = idp_token("k1")
        assert (await auth.identify(f"Bearer {token}")).team == "payments"
        assert (await auth.identify(f"Bearer {token}")).user == "dev@example.com"  # remembered: same answer
        # The IdP withdraws k1 (published k2 only): the remembered token is checked again, and now refused.
        mirror.kids = ["k2"]
        await keys.refresh()
        with pytest.raises(AuthError) as refused:
            await auth.identify(f"Bearer {token}")
        assert refused.value.reason == "unknown_signing_key"

    asyncio.run(scenario())


class Later:
    """The clock `seconds` from now, for the gateway and for PyJWT's expiry check alike."""

    def __init__(self, seconds: float) -> None:
        self.at = time.time() + seconds

    def now(self, tz: Any = None) -> datetime:
        return datetime.fromtimestamp(self.at, tz)


def test_a_remembered_token_is_not_served_past_its_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        keys = SigningKeys(settings(), Mirror(kids=["k1"]))
        await keys.load()
        later = Later(0)
        authenticator = Authenticator(settings(leeway_seconds=0), keys, clock=lambda: later.at)
        token = idp_token("k1", lifetime=30)
        await authenticator.identify(f"Bearer {token}")
        later.at += 31  # past exp, within the 60 s it would otherwise be remembered
        monkeypatch.setattr(jwt.api_jwt, "datetime", later)
        with pytest.raises(AuthError) as refused:
            await authenticator.identify(f"Bearer {token}")
        assert refused.value.reason == "token_expired"

    asyncio.run(scenario())
