"""A local token issuer for tests and `make gateway-local`: RSA keys, a JWKS endpoint, an OpenID Connect discovery
document naming it (what the IdP-keys function reads first), signed tokens.

The keys live in a folder (one PEM per key id); the JWKS endpoint reads it on every request, so a
test can rotate keys by adding a file.

    python -m local.token_issuer --port PORT --keys DIR
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ISSUER = "https://idp.test.local/"
AUDIENCE = "aigw-test"
JWKS_PATH = "/.well-known/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"


class KeyFolder:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, kid: str | None = None) -> str:
        kid = kid or uuid.uuid4().hex[:12]
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        (self.folder / f"{kid}.pem").write_bytes(pem)
        return kid

    def private_key(self, kid: str) -> Any:
        return serialization.load_pem_private_key((self.folder / f"{kid}.pem").read_bytes(), password=None)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for pem in sorted(self.folder.glob("*.pem")):
            private = serialization.load_pem_private_key(pem.read_bytes(), password=None)
            assert isinstance(private, rsa.RSAPrivateKey)
            public = private.public_key()
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
            keys.append({**jwk, "kid": pem.stem, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def token(
        self,
        kid: str,
        *,
        user: str = "dev@example.com",
        team: str | None = "payments",
        lifetime: float = 8 * 3600,
        issued_ago: float = 0,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
        **claims: Any,
    ) -> str:
        now = time.time() - issued_ago
        payload = {
            "iss": issuer,
            "aud": audience,
            "sub": user,
            "email": user,
            "team": team,
            "iat": int(now),
            "exp": int(now + lifetime),
            **claims,
        }
        return jwt.encode(
            {k: v for k, v in payload.items() if v is not None},
            self.private_key(kid),
            algorithm="RS256",
            headers={"kid": kid},
        )


def app_for(folder: Path) -> Starlette:
    keys = KeyFolder(folder)

    async def jwks(_request: Request) -> JSONResponse:
        return JSONResponse(keys.jwks())

    async def discovery(request: Request) -> JSONResponse:
        # The issuer is the tokens' `iss`, not this server's address: the key set's URL is where it answers.
        return JSONResponse(
            {
                "issuer": ISSUER,
                "jwks_uri": str(request.url.replace(path=JWKS_PATH, query="")),
                "id_token_signing_alg_values_supported": ["RS256"],
                "subject_types_supported": ["public"],
                "response_types_supported": ["code"],
            }
        )

    return Starlette(
        routes=[Route(JWKS_PATH, jwks, methods=["GET"]), Route(DISCOVERY_PATH, discovery, methods=["GET"])]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--keys", type=Path, required=True)
    args = parser.parse_args()
    uvicorn.run(app_for(args.keys), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
