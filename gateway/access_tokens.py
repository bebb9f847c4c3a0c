"""aigw's own access tokens, issued after a gateway sign-in: JWTs naming the user, e-mail, team and groups (Claude
Code reads `sub`, `email` and `groups` from them to stamp its telemetry), an hour long by default.

They are signed with a key kept in AWS: a KMS asymmetric key (ES256; the private key never leaves KMS, and each
signature is a KMS call, made once per sign-in or refresh) or a secret from Secrets Manager (HS256). Every
gateway process verifies them locally, so two processes accept each other's tokens.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import jwt
from botocore.session import Session as BotocoreSession
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from gateway.settings import AuthSettings, GatewaySettings, SigninSettings, TokenSigning

AUDIENCE = "aigw"
ES256_COORDINATE_BYTES = 32


@dataclass(frozen=True)
class Person:
    """Who signed in, as the IdP said at sign-in: what aigw's tokens carry."""

    sub: str
    email: str
    name: str
    team: str
    groups: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> str:
        return json.dumps({"sub": self.sub, "email": self.email, "name": self.name, "team": self.team,
                           "groups": list(self.groups)})  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> Person:
        data = json.loads(text)
        return cls(data["sub"], data["email"], data["name"], data["team"], tuple(data["groups"]))


class SigningKey(Protocol):
    algorithm: str
    kid: str

    def load(self) -> None:
        """Read the key (blocking: run at start)."""
        ...

    def sign(self, message: bytes) -> bytes:
        """The JWS signature of `message` (blocking)."""
        ...

    @property
    def verification_key(self) -> Any: ...


class SecretKey:
    """HS256 with a secret from Secrets Manager, or (locally) an environment variable."""

    algorithm = "HS256"

    def __init__(self, signing: TokenSigning, region: str) -> None:
        self.signing, self.region = signing, region
        self._secret = b""
        self.kid = ""

    def load(self) -> None:
        if self.signing.secret_id:
            client = BotocoreSession().create_client("secretsmanager", region_name=self.region)
            value = client.get_secret_value(SecretId=self.signing.secret_id)["SecretString"]
        elif self.signing.secret_env:
            value = os.environ[self.signing.secret_env]
        else:
            raise ValueError("signin.signing: a secret needs secret_id or secret_env")
        if len(value.encode()) < 32:
            raise ValueError("signin.signing: the secret must be at least 32 bytes (256 bits) long")
        self._secret = value.encode()
        # Names the secret without revealing it: a rotated secret gets a new kid.
        self.kid = "hs-" + hashlib.sha256(b"aigw-kid:" + self._secret).hexdigest()[:16]

    def sign(self, message: bytes) -> bytes:
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    @property
    def verification_key(self) -> Any:
        return self._secret


class KmsKey:
    """ES256 with a KMS asymmetric key (ECC_NIST_P256, SIGN_VERIFY), reached through the VPC's KMS endpoint. Its
    public key is read once, at start; tokens are verified with it locally."""

    algorithm = "ES256"

    def __init__(self, signing: TokenSigning, region: str, session: BotocoreSession | None = None) -> None:
        if not signing.kms_key_id:
            raise ValueError("signin.signing: a KMS key needs kms_key_id")
        self.key_id = signing.kms_key_id
        self._kms = (session or BotocoreSession()).create_client("kms", region_name=region)
        self._public: Any = None
        self.kid = ""

    def load(self) -> None:
        found = self._kms.get_public_key(KeyId=self.key_id)
        spec = found.get("KeySpec", found.get("CustomerMasterKeySpec"))  # the older name, still answered
        if spec != "ECC_NIST_P256" or found.get("KeyUsage") != "SIGN_VERIFY":
            raise ValueError(
                f"{self.key_id} must be an ECC_NIST_P256 SIGN_VERIFY key, not {spec} {found.get('KeyUsage')}"
            )
        self._public = serialization.load_der_public_key(found["PublicKey"])
        self.kid = "kms-" + str(found["KeyId"]).rpartition("/")[2]

    def sign(self, message: bytes) -> bytes:
        signed = self._kms.sign(KeyId=self.key_id, Message=message, MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256")
        r, s = decode_dss_signature(signed["Signature"])  # KMS answers DER; a JWS wants r || s
        return r.to_bytes(ES256_COORDINATE_BYTES, "big") + s.to_bytes(ES256_COORDINATE_BYTES, "big")

    @property
    def verification_key(self) -> Any:
        return self._public


def access_tokens_for(settings: GatewaySettings) -> AccessTokens | None:
    """aigw's own tokens, when sign-in is configured."""
    signin = settings.signin
    if signin is None:
        return None
    region = settings.vendor.region
    key = KmsKey(signin.signing, region) if signin.signing.kind == "kms" else SecretKey(signin.signing, region)
    return AccessTokens(signin, settings.auth, key)


class AccessTokens:
    def __init__(self, settings: SigninSettings, auth: AuthSettings, key: SigningKey) -> None:
        self.settings = settings
        self.auth = auth
        self.key = key

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    async def mint(self, person: Person, lifetime: int | None = None) -> tuple[str, int]:
        """A token for `person` and how many seconds it lives."""
        lifetime = lifetime or self.settings.access_token_seconds
        now = int(time.time())
        claims = {
            "iss": self.issuer, "aud": AUDIENCE, "sub": person.sub, "email": person.email, "name": person.name,
            self.auth.user_claim: person.email, self.auth.team_claim: person.team, "groups": list(person.groups),
            "iat": now, "exp": now + lifetime, "jti": secrets.token_urlsafe(12),
        }  # fmt: skip
        header = {"alg": self.key.algorithm, "typ": "JWT", "kid": self.key.kid}
        signing_input = f"{_b64(json.dumps(header))}.{_b64(json.dumps(claims))}".encode()
        signature = await asyncio.to_thread(self.key.sign, signing_input)
        return f"{signing_input.decode()}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}", lifetime

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; raises jwt.InvalidTokenError (the caller says why to the client)."""
        claims: dict[str, Any] = jwt.decode(
            token,
            self.key.verification_key,
            algorithms=[self.key.algorithm],
            audience=AUDIENCE,
            issuer=self.issuer,
            leeway=self.auth.leeway_seconds,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
        return claims


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()
