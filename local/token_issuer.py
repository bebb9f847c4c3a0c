"""A local OpenID Connect IdP for tests and `make gateway-local`: RSA keys, a JWKS endpoint, a discovery document
naming it (what the IdP-keys function reads first), signed tokens, and the authorization-code flow with PKCE that
aigw's sign-in page uses, signing in a scripted user at once (`POST /_user {claims}`; `{"deny": true}` refuses).

The keys live in a folder (one PEM per key id); the JWKS endpoint reads it on every request, so a
test can rotate keys by adding a file. Like a real IdP, `/token` hands an authorization code out once, only to
the client and redirect URI it was issued for, and only with the verifier of its PKCE challenge.

    python -m local.token_issuer --port PORT --keys DIR [--ssl-certfile F --ssl-keyfile K]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import secrets
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

ISSUER = "https://idp.test.local/"
AUDIENCE = "aigw-test"
JWKS_PATH = "/.well-known/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"
AUTHORIZE_PATH, TOKEN_PATH = "/authorize", "/token"
# The client aigw's sign-in is registered as, and the person who signs in unless a test says otherwise.
CLIENT_ID = "aigw-local"
DEFAULT_USER = {"sub": "u-1001", "email": "dev@example.com", "name": "Dev Eloper", "team": "payments",
                "groups": ["developers"]}  # fmt: skip


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
    user: dict[str, Any] = {"claims": dict(DEFAULT_USER), "deny": False}
    codes: dict[str, dict[str, Any]] = {}

    async def jwks(_request: Request) -> JSONResponse:
        return JSONResponse(keys.jwks())

    async def discovery(request: Request) -> JSONResponse:
        # The issuer is the tokens' `iss`, not this server's address: the endpoints' URLs are where it answers.
        def here(path: str) -> str:
            return str(request.url.replace(path=path, query=""))

        return JSONResponse(
            {
                "issuer": ISSUER,
                "jwks_uri": here(JWKS_PATH),
                "authorization_endpoint": here(AUTHORIZE_PATH),
                "token_endpoint": here(TOKEN_PATH),
                "id_token_signing_alg_values_supported": ["RS256"],
                "subject_types_supported": ["public"],
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def scripted_user(request: Request) -> JSONResponse:
        changes = await request.json()
        user["deny"] = bool(changes.pop("deny", False))
        user["claims"] = {**DEFAULT_USER, **changes}
        return JSONResponse(user)

    async def authorize(request: Request) -> Response:
        query = request.query_params
        if query.get("client_id") != CLIENT_ID or query.get("response_type") != "code":
            return JSONResponse({"error": "unauthorized_client"}, 400)
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return JSONResponse({"error": "invalid_request", "error_description": "PKCE S256 is required"}, 400)
        redirect = query["redirect_uri"]
        if user["deny"]:
            return RedirectResponse(f"{redirect}?{urlencode({'error': 'access_denied', 'state': query['state']})}", 302)
        code = secrets.token_urlsafe(24)
        codes[code] = {
            "redirect_uri": redirect, "challenge": query["code_challenge"], "nonce": query.get("nonce"),
            "claims": dict(user["claims"]), "expires": time.time() + 60,
        }  # fmt: skip
        return RedirectResponse(f"{redirect}?{urlencode({'code': code, 'state': query['state']})}", 302)

    async def token(request: Request) -> JSONResponse:
        form = dict(parse_qsl((await request.body()).decode()))
        issued = codes.pop(str(form.get("code")), None)
        if issued is None or issued["expires"] < time.time():
            return JSONResponse({"error": "invalid_grant", "error_description": "unknown or used code"}, 400)
        verifier = str(form.get("code_verifier", ""))
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if form.get("client_id") != CLIENT_ID or form.get("redirect_uri") != issued["redirect_uri"]:
            return JSONResponse({"error": "invalid_grant", "error_description": "client or redirect_uri"}, 400)
        if not secrets.compare_digest(challenge, issued["challenge"]):
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE verifier"}, 400)
        claims = issued["claims"]
        kid = sorted(pem.stem for pem in keys.folder.glob("*.pem"))[0]
        id_token = keys.token(
            kid, user=claims["email"], audience=CLIENT_ID, lifetime=300, nonce=issued["nonce"],
            **{k: v for k, v in claims.items() if k != "email"},
        )  # fmt: skip
        return JSONResponse({"id_token": id_token, "access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                             "expires_in": 300})  # fmt: skip

    return Starlette(
        routes=[
            Route(JWKS_PATH, jwks, methods=["GET"]),
            Route(DISCOVERY_PATH, discovery, methods=["GET"]),
            Route(AUTHORIZE_PATH, authorize, methods=["GET"]),
            Route(TOKEN_PATH, token, methods=["POST"]),
            Route("/_user", scripted_user, methods=["POST"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--keys", type=Path, required=True)
    parser.add_argument("--ssl-certfile", type=Path)
    parser.add_argument("--ssl-keyfile", type=Path)
    args = parser.parse_args()
    uvicorn.run(
        app_for(args.keys), host=args.host, port=args.port, log_level="warning", access_log=False,
        ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile,
    )  # fmt: skip


if __name__ == "__main__":
    main()
