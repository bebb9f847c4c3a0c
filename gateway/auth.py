"""JWT authentication against the company IdP's JWKS: fetched from the IdP (locally, or through a corporate
proxy) or, in a VPC with no route out, read from the SSM parameter a function outside the VPC mirrors it into.

Each failure has its own reason, and an expired token says how to get a new one: expired tokens
after laptop sleep were the gateway's most common support ticket (47 in eight weeks).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import os
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import jwt
from botocore.config import Config as BotocoreConfig
from botocore.exceptions import BotoCoreError, ClientError
from botocore.session import Session as BotocoreSession

from gateway.access_tokens import AUDIENCE, AccessTokens
from gateway.settings import CANARY_TEAM, CANARY_USER, AuthSettings

log = logging.getLogger("aigw.gateway")


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
    groups: tuple[str, ...] = ()
    canary: bool = False


# The synthetic client in the VPC (the availability canary). Its team is no configured team's, so a token's team
# claim can never reach it.
CANARY = Identity(CANARY_USER, CANARY_TEAM, {}, canary=True)


MAX_GROUPS = 100


def claims_groups(claims: dict[str, Any], claim: str) -> tuple[str, ...]:
    """The groups a token's claim lists (a lone string is one group), at most MAX_GROUPS of them."""
    value = claims.get(claim) or []
    groups = (
        [value]
        if isinstance(value, str)
        else [g for g in value if isinstance(g, str)]
        if isinstance(value, list)
        else []
    )
    return tuple(groups[:MAX_GROUPS])


MAX_ASKED_KID = 256


class KeySourceError(Exception):
    """The keys could not be read where they are kept (the SSM parameter, or the mirror could not be asked)."""


class KeySource(Protocol):
    """Where the IdP's public keys are read from."""

    description: str

    async def read(self) -> dict[str, jwt.PyJWK]:
        """The keys by kid (a lone key without one under "")."""
        ...

    async def request_refresh(self, kid: str | None) -> bool:
        """Ask whoever keeps the keys to fetch them from the IdP now; False if there is no one to ask."""
        ...

    async def aclose(self) -> None: ...


class UrlKeySource:
    """The IdP's JWKS URL itself, directly or through a corporate HTTP(S) proxy (`jwks_proxy`)."""

    def __init__(self, settings: AuthSettings, client: httpx.AsyncClient | None = None) -> None:
        self._settings = settings
        # With a proxy, a client of its own: the gateway's shared one goes direct.
        self._owns_client = client is None or settings.jwks_proxy is not None
        if client is None or self._owns_client:
            client = httpx.AsyncClient(proxy=settings.jwks_proxy)
        self._client = client
        via = f" through {settings.jwks_proxy}" if settings.jwks_proxy else ""
        self.description = f"{settings.jwks_url}{via}"

    async def read(self) -> dict[str, jwt.PyJWK]:
        response = await self._client.get(self._settings.jwks_url, timeout=self._settings.jwks_timeout_seconds)
        response.raise_for_status()
        return keys_by_kid(response.json())

    async def request_refresh(self, kid: str | None) -> bool:
        return False  # every read is a fetch from the IdP

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


class ParameterKeySource:
    """The SSM parameter the IdP-keys function mirrors the JWKS into (read through the VPC's SSM endpoint), and
    that function, invoked asynchronously (through the VPC's Lambda endpoint) to refresh it. botocore's calls
    block: they run in a thread."""

    def __init__(self, settings: AuthSettings, region: str, session: BotocoreSession | None = None) -> None:
        if settings.jwks_parameter is None:
            raise ValueError("ParameterKeySource needs auth.jwks_parameter")
        self._parameter = settings.jwks_parameter
        self._function = settings.jwks_refresh_function
        timeout = settings.jwks_timeout_seconds
        config = BotocoreConfig(
            connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 2, "mode": "standard"}
        )
        session = session or BotocoreSession()
        self._ssm = session.create_client("ssm", region_name=region, config=config)
        self._lambda = (
            session.create_client("lambda", region_name=region, config=config) if self._function is not None else None
        )
        self.description = f"SSM parameter {self._parameter}"

    async def read(self) -> dict[str, jwt.PyJWK]:
        try:
            found = await asyncio.to_thread(self._ssm.get_parameter, Name=self._parameter)
        except (BotoCoreError, ClientError) as error:
            raise KeySourceError(f"{self.description}: {error}") from error
        # Empty until the function's first run (CloudFormation creates it so): no keys yet, not an error.
        return keys_by_kid(json.loads(found["Parameter"]["Value"]), allow_empty=True)

    async def request_refresh(self, kid: str | None) -> bool:
        if self._lambda is None:
            return False
        # The kid comes from a client's token: passed on, but not at any length.
        asked = kid[:MAX_ASKED_KID] if isinstance(kid, str) else None
        payload = json.dumps({"source": "aigw.gateway", "reason": "unknown_signing_key", "kid": asked})
        try:
            await asyncio.to_thread(
                self._lambda.invoke, FunctionName=self._function, InvocationType="Event", Payload=payload.encode()
            )
        except (BotoCoreError, ClientError) as error:
            raise KeySourceError(f"could not ask {self._function} to refresh the IdP's keys: {error}") from error
        return True

    async def aclose(self) -> None:
        for client in (self._ssm, self._lambda):
            if client is not None:
                await asyncio.to_thread(client.close)


def key_source_for(settings: AuthSettings, *, region: str, client: httpx.AsyncClient | None = None) -> KeySource:
    """The SSM parameter when the deployment has a mirror, else the JWKS URL (through `jwks_proxy` if set)."""
    if settings.jwks_parameter is not None:
        return ParameterKeySource(settings, region)
    return UrlKeySource(settings, client)


def keys_by_kid(key_set: object, *, allow_empty: bool = False) -> dict[str, jwt.PyJWK]:
    if not isinstance(key_set, dict):
        raise ValueError("the key set is not a JSON object")
    if allow_empty and not key_set.get("keys"):
        return {}
    keys = jwt.PyJWKSet.from_dict(key_set).keys
    if len(keys) == 1 and not keys[0].key_id:
        return {"": keys[0]}
    return {key.key_id: key for key in keys if key.key_id}


# What reading the keys can fail with: each is answered `idp_unreachable`.
KEY_SOURCE_ERRORS = (httpx.HTTPError, ValueError, jwt.PyJWKError, jwt.PyJWKSetError, KeySourceError)


class SigningKeys:
    """The IdP's public keys by `kid`, read once and again only for a `kid` we have not seen (at most once per
    `jwks_min_refresh_seconds`, so made-up kids cannot hammer the IdP, SSM or the mirror). A source kept by a
    mirror is then asked to refresh, and re-read for at most `jwks_timeout_seconds` until its keys change."""

    POLL_FIRST_SECONDS = 0.2
    POLL_MAX_SECONDS = 1.0

    def __init__(self, settings: AuthSettings, source: KeySource) -> None:
        self._settings = settings
        self.source = source
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self.generation = 0  # changes whenever the key set does: tokens verified before are verified again

    async def get(self, kid: str | None) -> jwt.PyJWK | None:
        key = self._lookup(kid)
        if key is not None:
            return key
        async with self._lock:
            key = self._lookup(kid)
            if key is None and time.monotonic() - self._fetched_at >= self._settings.jwks_min_refresh_seconds:
                await self.refresh()
                key = self._lookup(kid)
                if key is None and await self.source.request_refresh(kid):
                    key = await self._await_new_keys(kid)
        return key

    async def load(self) -> None:
        """The first read, at start; an empty mirror (a new deployment) is asked to fill itself at once."""
        await self.refresh()
        if not self._keys and await self.source.request_refresh(None):
            await self._await_new_keys(None)

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid) if kid is not None else None

    async def refresh(self) -> None:
        self._fetched_at = time.monotonic()
        keys = await self.source.read()
        if set(keys) != set(self._keys) or any(keys[kid].key != self._keys[kid].key for kid in keys):
            self.generation += 1
        self._keys = keys

    async def _await_new_keys(self, kid: str | None) -> jwt.PyJWK | None:
        """Re-read until the key set changes (the mirror wrote) or the wait is over."""
        before = set(self._keys)
        deadline = time.monotonic() + self._settings.jwks_timeout_seconds
        delay = self.POLL_FIRST_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(delay, left))
            await self.refresh()
            if set(self._keys) != before:
                break
            delay = min(delay * 2, self.POLL_MAX_SECONDS)
        return self._lookup(kid)

    async def aclose(self) -> None:
        await self.source.aclose()


class CanaryToken:
    """The canary's credential: a random secret (Secrets Manager in AWS, an environment variable locally), never a
    JWT, that only ever stands for CANARY. Compared by digest, in constant time. Read at start, and again (at most
    every REREAD_SECONDS) when a token that is not a JWT fails to match: the secret may have been replaced."""

    REREAD_SECONDS = 60.0

    def __init__(self, read: Callable[[], str | None] | None, clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self._clock = clock
        self._digest: bytes | None = None
        self._read_at = -math.inf

    def load(self) -> None:
        """Read the secret (blocking: at start-up, or on a worker thread). Out of reach, the value read before
        stands until the next read (REREAD_SECONDS on, when a token that is not a JWT fails to match)."""
        if self._read is None:
            return
        self._read_at = self._clock()
        try:
            value = self._read()
        except (BotoCoreError, ClientError, OSError) as error:
            log.warning("could not read the canary's secret: %s", error)
            return
        self._digest = _digest(value) if value else None

    async def matches(self, token: str) -> bool:
        if self._read is None or "." in token:  # a JWT always has two dots: it is never the canary's
            return False
        if self._digest is not None and hmac.compare_digest(_digest(token), self._digest):
            return True
        if self._clock() - self._read_at < self.REREAD_SECONDS:
            return False
        self._read_at = self._clock()  # before the read: concurrent strangers wait for this one
        await asyncio.to_thread(self.load)
        return self._digest is not None and hmac.compare_digest(_digest(token), self._digest)


def canary_token_for(settings: AuthSettings, region: str) -> CanaryToken:
    """The canary's credential as configured: an environment variable, a Secrets Manager secret, or none."""
    if settings.canary_token_env is not None:
        name = settings.canary_token_env
        return CanaryToken(lambda: os.environ.get(name))
    if settings.canary_token_secret_id is not None:
        secret_id = settings.canary_token_secret_id
        session = BotocoreSession()

        def read() -> str:
            config = BotocoreConfig(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=5)
            client = session.create_client("secretsmanager", region_name=region, config=config)
            return str(client.get_secret_value(SecretId=secret_id)["SecretString"])

        return CanaryToken(read)
    return CanaryToken(None)


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


class Authenticator:
    """Both kinds of token, on every path: the IdP's own (checked against its keys) and, after a gateway sign-in,
    aigw's (`own`, checked against aigw's key).

    A token that verified is remembered for up to VERIFIED_SECONDS (never past its expiry): a client sends the
    same token with every request, and a signature check is a tenth of a request's CPU. A change of the IdP's key
    set forgets them all, so a withdrawn key stops its tokens at once."""

    VERIFIED_SECONDS = 60.0
    VERIFIED_MAX = 4096

    def __init__(
        self,
        settings: AuthSettings,
        keys: SigningKeys,
        own: AccessTokens | None = None,
        clock: Callable[[], float] = time.time,
        canary: CanaryToken | None = None,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.own = own
        self.canary = canary or CanaryToken(None)
        self.clock = clock
        self._verified: dict[str, tuple[float, Identity]] = {}
        self._generation = keys.generation

    async def identify(self, authorization: str | None) -> Identity:
        token = _bearer_token(authorization)
        if len(token) > self.settings.max_token_bytes:
            raise AuthError("token_too_large", f"The bearer token is over {self.settings.max_token_bytes} bytes.")
        if await self.canary.matches(token):
            return CANARY
        if self._generation != self.keys.generation:
            self._verified.clear()
            self._generation = self.keys.generation
        remembered = self._verified.get(token)
        if remembered is not None and self.clock() < remembered[0]:
            return remembered[1]
        own = self.own
        if own is not None and _unverified_issuer(token) == own.issuer:
            claims = self._checked(token, lambda: own.verify(token), own.issuer, AUDIENCE)
        else:
            claims = await self._idp_claims(token)
        identity = self._identity(claims)
        self._remember(token, identity)
        return identity

    def _remember(self, token: str, identity: Identity) -> None:
        now = self.clock()
        until = min(now + self.VERIFIED_SECONDS, float(identity.claims["exp"]) + self.settings.leeway_seconds)
        if len(self._verified) >= self.VERIFIED_MAX:
            del self._verified[next(iter(self._verified))]  # the oldest
        self._verified[token] = (until, identity)

    async def _idp_claims(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.InvalidTokenError, ValueError, TypeError) as error:
            raise AuthError("malformed_token", f"The bearer token is not a JWT ({error}).") from error
        if not isinstance(header.get("kid"), str | None):
            raise AuthError("malformed_token", "The token's header has a 'kid' that is not a string.")
        if header.get("alg") not in self.settings.algorithms:
            raise AuthError("bad_signature", f"Tokens signed with {str(header.get('alg'))[:40]!r} are not accepted.")
        try:
            key = await self.keys.get(header.get("kid"))
        except KEY_SOURCE_ERRORS as error:
            raise AuthError(
                "idp_unreachable", f"The identity provider's keys could not be fetched ({error})."
            ) from error
        if key is None:
            raise AuthError(
                "unknown_signing_key", f"The token was signed with an unknown key (kid {header.get('kid')!r})."
            )
        settings = self.settings
        return self._checked(
            token,
            lambda: jwt.decode(
                token,
                key,
                algorithms=list(settings.algorithms),
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway_seconds,
                options={"require": ["exp", "iat", "iss", "aud"]},
            ),
            settings.issuer,
            settings.audience,
        )

    def _identity(self, claims: dict[str, Any]) -> Identity:
        user, team = claims.get(self.settings.user_claim), claims.get(self.settings.team_claim)
        for name, value in ((self.settings.user_claim, user), (self.settings.team_claim, team)):
            if not isinstance(value, str) or not value:
                raise AuthError("missing_claim", f"The token has no {name!r} claim; the gateway needs it.")
        try:
            lifetime = float(claims["exp"]) - float(claims["iat"])
        except (TypeError, ValueError) as error:
            raise AuthError("malformed_token", "The token's exp and iat claims must be numbers.") from error
        if lifetime > self.settings.max_token_lifetime_seconds:
            raise AuthError(
                "token_lifetime_too_long",
                f"The token lives {lifetime:g} s; this gateway accepts at most "
                f"{self.settings.max_token_lifetime_seconds} s. {self.settings.refresh_hint}",
            )
        return Identity(str(user), str(team), claims, claims_groups(claims, self.settings.groups_claim))

    def _checked(self, token: str, decode: Callable[[], dict[str, Any]], issuer: str, audience: str) -> dict[str, Any]:
        """The claims `decode` verified, or the AuthError that says why not."""
        settings = self.settings
        try:
            return decode()
        except jwt.ExpiredSignatureError as error:
            expired = _expiry(token)
            raise AuthError("token_expired", f"Your token expired{expired}. {settings.refresh_hint}") from error
        except jwt.InvalidIssuerError as error:
            raise AuthError("wrong_issuer", f"The token was not issued by {issuer}.") from error
        except jwt.InvalidAudienceError as error:
            raise AuthError("wrong_audience", f"The token is not meant for {audience!r}.") from error
        except jwt.InvalidSignatureError as error:
            raise AuthError("bad_signature", "The token's signature does not verify.") from error
        except jwt.ImmatureSignatureError as error:
            raise AuthError("token_not_yet_valid", "The token is not valid yet (check the clock).") from error
        except jwt.MissingRequiredClaimError as error:
            raise AuthError("missing_claim", f"The token has no {error.claim!r} claim.") from error
        except jwt.InvalidTokenError as error:
            raise AuthError("malformed_token", f"The token is not valid ({error}).") from error


class Teams:
    """The configured teams, and which of them a token's team claim names (case, spacing and Unicode forms
    aside): budgets, limits and profiles are per team, so a claim that names none of them is refused."""

    def __init__(self, teams: tuple[str, ...]) -> None:
        self.by_key = {_team_key(team): team for team in teams}

    def canonical(self, claim: str) -> str | None:
        """The configured name the claim stands for; the claim itself when no teams are configured."""
        if not self.by_key:
            return claim
        return self.by_key.get(_team_key(claim))


def _team_key(team: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", team).casefold().split())


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise AuthError("missing_token", "Send 'Authorization: Bearer <token>' with a token from the company IdP.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("malformed_token", "The Authorization header must be 'Bearer <token>'.")
    return token.strip()


def _unverified_issuer(token: str) -> Any:
    """Who the token says issued it (checked once its key is chosen by it); None if it cannot be read."""
    try:
        return jwt.decode(token, options={"verify_signature": False}).get("iss")
    except (jwt.InvalidTokenError, ValueError, TypeError):
        return None


def _expiry(token: str) -> str:
    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
        return f" at {datetime.fromtimestamp(int(exp), UTC).isoformat(timespec='seconds')}" if exp else ""
    except (jwt.InvalidTokenError, TypeError, ValueError, OverflowError):
        return ""
