"""JWT authentication against the company IdP's JWKS.

Each failure has its own reason, and an expired token says how to get a new one: expired tokens
after laptop sleep were the gateway's most common support ticket (47 in eight weeks).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt

from gateway.settings import AuthSettings


class AuthError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Identity:
    user: str
    team: str
    claims: dict[str, Any]


class SigningKeys:
    """The IdP's public keys by `kid`, fetched once and again only for a `kid` we have not seen
    (at most once per `jwks_min_refresh_seconds`, so made-up kids cannot hammer the IdP)."""

    def __init__(self, settings: AuthSettings, client: httpx.AsyncClient) -> None:
        self._settings = settings
        self._client = client
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self, kid: str | None) -> jwt.PyJWK | None:
        key = self._lookup(kid)
        if key is not None:
            return key
        async with self._lock:
            key = self._lookup(kid)
            if key is None and time.monotonic() - self._fetched_at >= self._settings.jwks_min_refresh_seconds:
                await self.refresh()
                key = self._lookup(kid)
        return key

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid) if kid is not None else None

    async def refresh(self) -> None:
        self._fetched_at = time.monotonic()
        response = await self._client.get(self._settings.jwks_url, timeout=self._settings.jwks_timeout_seconds)
        response.raise_for_status()
        key_set = jwt.PyJWKSet.from_dict(response.json())
        self._keys = {key.key_id: key for key in key_set.keys if key.key_id}
        if len(key_set.keys) == 1 and not key_set.keys[0].key_id:
            self._keys = {"": key_set.keys[0]}


class Authenticator:
    def __init__(self, settings: AuthSettings, keys: SigningKeys) -> None:
        self.settings = settings
        self.keys = keys

    async def identify(self, authorization: str | None) -> Identity:
        token = _bearer_token(authorization)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as error:
            raise AuthError("malformed_token", f"The bearer token is not a JWT ({error}).") from error
        if header.get("alg") not in self.settings.algorithms:
            raise AuthError("bad_signature", f"Tokens signed with {header.get('alg')!r} are not accepted.")
        try:
            key = await self.keys.get(header.get("kid"))
        except (httpx.HTTPError, ValueError, jwt.PyJWKError) as error:
            raise AuthError(
                "idp_unreachable", f"The identity provider's keys could not be fetched ({error})."
            ) from error
        if key is None:
            raise AuthError(
                "unknown_signing_key", f"The token was signed with an unknown key (kid {header.get('kid')!r})."
            )
        claims = self._verify(token, key)
        user, team = claims.get(self.settings.user_claim), claims.get(self.settings.team_claim)
        for name, value in ((self.settings.user_claim, user), (self.settings.team_claim, team)):
            if not isinstance(value, str) or not value:
                raise AuthError("missing_claim", f"The token has no {name!r} claim; the gateway needs it.")
        return Identity(user=str(user), team=str(team), claims=claims)

    def _verify(self, token: str, key: jwt.PyJWK) -> dict[str, Any]:
        settings = self.settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(settings.algorithms),
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway_seconds,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as error:
            expired = _expiry(token)
            raise AuthError("token_expired", f"Your token expired{expired}. {settings.refresh_hint}") from error
        except jwt.InvalidIssuerError as error:
            raise AuthError("wrong_issuer", f"The token was not issued by {settings.issuer}.") from error
        except jwt.InvalidAudienceError as error:
            raise AuthError("wrong_audience", f"The token is not meant for {settings.audience!r}.") from error
        except jwt.InvalidSignatureError as error:
            raise AuthError("bad_signature", "The token's signature does not verify.") from error
        except jwt.ImmatureSignatureError as error:
            raise AuthError("token_not_yet_valid", "The token is not valid yet (check the clock).") from error
        except jwt.MissingRequiredClaimError as error:
            raise AuthError("missing_claim", f"The token has no {error.claim!r} claim.") from error
        except jwt.InvalidTokenError as error:
            raise AuthError("malformed_token", f"The token is not valid ({error}).") from error
        return claims


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise AuthError("missing_token", "Send 'Authorization: Bearer <token>' with a token from the company IdP.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("malformed_token", "The Authorization header must be 'Bearer <token>'.")
    return token.strip()


def _expiry(token: str) -> str:
    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
        return f" at {datetime.fromtimestamp(int(exp), UTC).isoformat(timespec='seconds')}" if exp else ""
    except (jwt.InvalidTokenError, TypeError, ValueError, OverflowError):
        return ""
