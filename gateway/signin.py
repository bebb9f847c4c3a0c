"""Claude Code's gateway sign-in: the OAuth device flow (RFC 8628) in front of the corporate IdP.

    GET  /.well-known/oauth-authorization-server   discovery (RFC 8414); Claude Code reads the two endpoints
    POST /oauth/device_authorization                a device code and the code the developer confirms
    GET  /device, POST /device                      the verification page (browser only): the code, then the IdP
    GET  /oauth/callback                            back from the IdP (authorization code with PKCE)
    POST /oauth/token                               device-code and refresh grants: aigw's own access tokens
    POST /oauth/revoke                              sign-out (RFC 7009): the refresh token's family is revoked
    GET  /protocol                                  this gateway's contract, in Markdown

The VPC has no route out, so the one server-side call to the IdP (the code exchange) goes through the
out-of-VPC function, reached through the VPC's Lambda endpoint, or through a configured corporate proxy.
Every request gets an audit record, but for a device's "still waiting" polls (counted in the metrics).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
import os
import secrets
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import jwt
import redis.asyncio as aioredis
from botocore.config import Config as BotocoreConfig
from botocore.session import Session as BotocoreSession
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from gateway.access_tokens import AccessTokens, Person
from gateway.auth import KEY_SOURCE_ERRORS, SigningKeys, Teams, claims_groups
from gateway.exchange import Exchange, read_body
from gateway.settings import GatewaySettings, OidcSettings
from gateway.signin_store import PendingSignin, SigninStore, StoreUnavailableError, digest, normalise_user_code

DISCOVERY = "/.well-known/oauth-authorization-server"
DEVICE_AUTHORIZATION, TOKEN, REVOKE = "/oauth/device_authorization", "/oauth/token", "/oauth/revoke"
VERIFICATION, CALLBACK, PROTOCOL = "/device", "/oauth/callback", "/protocol"
PATHS = frozenset({DISCOVERY, DEVICE_AUTHORIZATION, TOKEN, REVOKE, VERIFICATION, CALLBACK, PROTOCOL})
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
PROTOCOL_VERSION = 1
COOKIE = "aigw_device"
MAX_FORM_BYTES = 16 * 1024
NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


class ExchangeError(Exception):
    """The IdP could not be asked, or would not exchange the code."""


class CodeExchange(Protocol):
    async def exchange(self, form: dict[str, str]) -> dict[str, Any]:
        """The IdP token endpoint's answer to this form (an authorization-code grant)."""
        ...


class DirectExchange:
    """To the IdP's token endpoint directly (local runs) or through the corporate proxy."""

    def __init__(self, oidc: OidcSettings) -> None:
        self.oidc = oidc
        self.client = httpx.AsyncClient(proxy=oidc.proxy, timeout=oidc.timeout_seconds)

    async def exchange(self, form: dict[str, str]) -> dict[str, Any]:
        try:
            response = await self.client.post(self.oidc.token_endpoint, data=form)
            answer = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise ExchangeError(f"the IdP's token endpoint could not be asked ({error})") from error
        return _token_answer(response.status_code, answer)


class FunctionExchange:
    """Through the out-of-VPC function (the one that mirrors the IdP's keys): it posts the form to the token
    endpoint it was configured with, never to one a caller names."""

    def __init__(self, oidc: OidcSettings, region: str) -> None:
        self.oidc = oidc
        config = BotocoreConfig(read_timeout=oidc.timeout_seconds, retries={"max_attempts": 1})
        self.client = BotocoreSession().create_client("lambda", region_name=region, config=config)

    async def exchange(self, form: dict[str, str]) -> dict[str, Any]:
        payload = json.dumps({"source": "aigw.gateway", "action": "exchange_code", "form": form}).encode()
        try:
            answer = await asyncio.to_thread(
                self.client.invoke, FunctionName=self.oidc.exchange_function, Payload=payload
            )
            result = json.loads(answer["Payload"].read())
            return _token_answer(int(result["status"]), json.loads(result["body"]))
        except ExchangeError:
            raise
        except Exception as error:  # botocore's and the function's own failures alike: the IdP was not reached
            raise ExchangeError(f"the code exchange function failed ({type(error).__name__}: {error})") from error


def _token_answer(status: int, answer: Any) -> dict[str, Any]:
    if status != 200 or not isinstance(answer, dict) or not isinstance(answer.get("id_token"), str):
        error = answer.get("error") if isinstance(answer, dict) else None
        raise ExchangeError(f"the IdP refused the code exchange ({status}, {error or 'no id_token'})")
    return answer


class SignIn:
    def __init__(
        self,
        settings: GatewaySettings,
        tokens: AccessTokens,
        idp_keys: SigningKeys,
        redis: Callable[[], aioredis.Redis | None],
    ) -> None:
        if settings.signin is None:
            raise ValueError("sign-in is not configured")
        self.settings = settings
        self.signin = settings.signin
        self.store = SigninStore(settings.signin, settings.environment, redis)
        self.tokens = tokens
        self.idp_keys = idp_keys
        oidc = self.signin.oidc
        self.exchange: CodeExchange = (
            FunctionExchange(oidc, settings.vendor.region) if oidc.exchange_function else DirectExchange(oidc)
        )
        self.client_secret: str | None = None
        self.teams = Teams(settings.teams)
        self.url = self.signin.public_url
        self.secure_cookie = self.url.startswith("https://")

    def load(self) -> None:
        """Read the signing key and the IdP client's secret (blocking: run at start)."""
        self.tokens.key.load()
        oidc = self.signin.oidc
        if oidc.client_secret_secret_id:
            client = BotocoreSession().create_client("secretsmanager", region_name=self.settings.vendor.region)
            self.client_secret = str(client.get_secret_value(SecretId=oidc.client_secret_secret_id)["SecretString"])
        elif oidc.client_secret_env:
            self.client_secret = os.environ[oidc.client_secret_env]

    async def handle(self, request: Request, exchange: Exchange) -> Response:
        exchange.api = "oauth"
        path, method = request.url.path, request.method
        routes = {
            (DISCOVERY, "GET"): self.discovery,
            (PROTOCOL, "GET"): self.protocol,
            (DEVICE_AUTHORIZATION, "POST"): self.device_authorization,
            (TOKEN, "POST"): self.token,
            (REVOKE, "POST"): self.revoke,
            (VERIFICATION, "GET"): self.verification_page,
            (VERIFICATION, "POST"): self.verification_submitted,
            (CALLBACK, "GET"): self.callback,
        }
        route = routes.get((path, method))
        if route is None:
            allowed = ", ".join(sorted(m for p, m in routes if p == path))
            return self._oauth_error(exchange, 405, "invalid_request", f"{path} takes {allowed}.", {"allow": allowed})
        try:
            return await route(request, exchange)
        except StoreUnavailableError as error:
            exchange.reason = str(error)[:200]
            return self._oauth_error(
                exchange, 503, "temporarily_unavailable", "Sign-in cannot be served right now; try again shortly.",
                {"retry-after": "5"},
            )  # fmt: skip

    # -- what clients read ----------------------------------------------------------------------------

    async def discovery(self, _request: Request, exchange: Exchange) -> Response:
        exchange.audited = False  # read at every /login: noise, not an audit event
        return JSONResponse(
            {
                "issuer": self.url,
                "device_authorization_endpoint": self.url + DEVICE_AUTHORIZATION,
                "token_endpoint": self.url + TOKEN,
                "revocation_endpoint": self.url + REVOKE,
                "grant_types_supported": [DEVICE_GRANT, "refresh_token"],
                "response_types_supported": [],
                "token_endpoint_auth_methods_supported": ["none"],
                "scopes_supported": list(self.signin.oidc.scopes),
                "gateway_protocol_version": PROTOCOL_VERSION,
            }
        )

    async def protocol(self, _request: Request, exchange: Exchange) -> Response:
        exchange.audited = False
        return Response(protocol_document(self.settings), media_type="text/markdown; charset=utf-8")

    async def device_authorization(self, request: Request, exchange: Exchange) -> Response:
        form = await self._form(request, exchange)
        if isinstance(form, Response):
            return form
        address = client_address(request)
        if await self.store.count("device_authorization", address) > self.signin.device_authorizations_per_10_min:
            return self._oauth_error(exchange, 429, "slow_down", "Too many sign-ins from this address; wait a while.")
        grant = await self.store.new_device_grant(form.get("surface", ""))
        exchange.reason = f"surface={form.get('surface', '')[:40]}"
        verification = self.url + VERIFICATION
        return JSONResponse(
            {
                "device_code": grant.device_code,
                "user_code": grant.user_code,
                "verification_uri": verification,
                "verification_uri_complete": f"{verification}?{urlencode({'user_code': grant.user_code})}",
                "expires_in": self.signin.device_code_seconds,
                "interval": self.signin.poll_interval_seconds,
            },
            headers=NO_STORE,
        )

    async def token(self, request: Request, exchange: Exchange) -> Response:
        form = await self._form(request, exchange)
        if isinstance(form, Response):
            return form
        grant_type = form.get("grant_type")
        if grant_type == DEVICE_GRANT:
            return await self._device_grant(form, exchange)
        if grant_type == "refresh_token":
            return await self._refresh_grant(form, exchange)
        return self._oauth_error(
            exchange, 400, "unsupported_grant_type", f"grant_type must be {DEVICE_GRANT} or refresh_token."
        )

    async def revoke(self, request: Request, exchange: Exchange) -> Response:
        form = await self._form(request, exchange)
        if isinstance(form, Response):
            return form
        token = form.get("token", "")
        # RFC 7009 §2.2: the same answer whether or not the token was known. An access token lives out its hour.
        revoked = token.startswith("aigw_rt_") and await self.store.revoke(token, "sign_out")
        exchange.outcome = "revoked" if revoked else "ok"
        return JSONResponse({}, headers=NO_STORE)

    # -- the token endpoint's two grants ------------------------------------------------------------------

    async def _device_grant(self, form: dict[str, str], exchange: Exchange) -> Response:
        device_code = form.get("device_code")
        if not device_code:
            return self._oauth_error(exchange, 400, "invalid_request", "device_code is required.")
        poll = await self.store.poll(device_code)
        if poll.state == "pending":
            exchange.audited = False  # every few seconds until the developer has signed in
            return self._oauth_error(exchange, 400, "authorization_pending", "The sign-in is not finished yet.")
        if poll.state == "slow_down":
            return self._oauth_error(
                exchange, 400, "slow_down", f"Poll at most every {poll.interval} s.", extra={"interval": poll.interval}
            )
        if poll.state == "expired":
            return self._oauth_error(exchange, 400, "expired_token", "The device code expired; run /login again.")
        if poll.state == "denied":
            return self._oauth_error(exchange, 400, "access_denied", poll.reason or "The sign-in was refused.")
        if poll.state == "unknown" or poll.person is None:
            return self._oauth_error(exchange, 400, "invalid_grant", "The device code is not one this gateway issued.")
        refresh_token = await self.store.new_family(poll.person)
        return await self._issued(poll.person, refresh_token, exchange)

    async def _refresh_grant(self, form: dict[str, str], exchange: Exchange) -> Response:
        token = form.get("refresh_token")
        if not token:
            return self._oauth_error(exchange, 400, "invalid_request", "refresh_token is required.")
        rotation = await self.store.rotate(token)
        if rotation.state == "reused":
            exchange.reason = "refresh_token_reused"
            return self._oauth_error(
                exchange, 400, "invalid_grant",
                "This refresh token was already used: the sign-in is revoked everywhere. Sign in again (/login).",
            )  # fmt: skip
        if rotation.state != "ok" or rotation.person is None or rotation.refresh_token is None:
            exchange.reason = f"refresh_token_{rotation.state}"
            why = {"raced": "was just rotated by another client", "revoked": "belongs to a revoked sign-in"}
            return self._oauth_error(
                exchange, 400, "invalid_grant",
                f"The refresh token {why.get(rotation.state, 'is unknown or expired')}; sign in again (/login).",
            )  # fmt: skip
        person = rotation.person
        if self.teams.canonical(person.team) is None:  # the team left the configuration since the sign-in
            await self.store.revoke(rotation.refresh_token, "team_removed")
            exchange.user, exchange.team = person.email, person.team
            return self._oauth_error(
                exchange, 400, "invalid_grant", f"Team {person.team!r} is no longer served by this gateway."
            )
        return await self._issued(person, rotation.refresh_token, exchange)

    async def _issued(self, person: Person, refresh_token: str, exchange: Exchange) -> Response:
        access_token, lifetime = await self.tokens.mint(person)
        exchange.user, exchange.team, exchange.outcome = person.email, person.team, "token_issued"
        body = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": lifetime,
            "refresh_token": refresh_token,
        }
        return JSONResponse(body, headers=NO_STORE)

    # -- the verification page (a browser's) -------------------------------------------------------------------

    async def verification_page(self, request: Request, exchange: Exchange) -> Response:
        typed = request.query_params.get("user_code", "")
        csrf = secrets.token_urlsafe(24)
        page = _page(
            "Sign in to aigw",
            "<p>Check that this code matches the one your terminal shows, then continue to sign in.</p>"
            f'<form method="post" action="{VERIFICATION}">'
            f'<input name="user_code" value="{html.escape(typed[:16])}" autocomplete="off" autofocus>'
            f'<input type="hidden" name="csrf" value="{csrf}">'
            '<button type="submit">Continue</button></form>',
        )
        response = self._html(page, 200)
        response.set_cookie(
            COOKIE, csrf, max_age=self.signin.device_code_seconds, httponly=True, secure=self.secure_cookie,
            samesite="lax", path="/",
        )  # fmt: skip
        exchange.audited = False  # a page view; what it submits is audited
        return response

    async def verification_submitted(self, request: Request, exchange: Exchange) -> Response:
        if not self._same_origin(request):
            return self._refused_page(exchange, 403, "cross_site", "This request came from another site.")
        form = await self._form(request, exchange)
        if isinstance(form, Response):
            return form
        cookie = request.cookies.get(COOKIE, "")
        if not cookie or not secrets.compare_digest(cookie, form.get("csrf", "")):
            return self._refused_page(exchange, 403, "csrf", "Open the sign-in link from your terminal again.")
        if await self.store.count("verification", client_address(request)) > self.signin.verifications_per_10_min:
            return self._refused_page(exchange, 429, "slow_down", "Too many codes from this address; wait a while.")
        user_code = normalise_user_code(form.get("user_code", ""))
        if user_code is None or not await self.store.grant_is_pending(user_code):
            return self._refused_page(
                exchange, 400, "invalid_user_code", "That code is not valid, or has expired. Run /login again."
            )
        oidc = self.signin.oidc
        redirect_uri = form.get("redirect_uri") or oidc.redirect_uris[0]
        if redirect_uri not in oidc.redirect_uris:
            return self._refused_page(exchange, 400, "invalid_request", "That redirect_uri is not registered.")
        verifier = secrets.token_urlsafe(48)
        nonce = secrets.token_urlsafe(24)
        state = await self.store.start_signin(PendingSignin(user_code, verifier, nonce, redirect_uri, digest(cookie)))
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = {
            "response_type": "code", "client_id": oidc.client_id, "redirect_uri": redirect_uri,
            "scope": " ".join(oidc.scopes), "state": state, "nonce": nonce, "code_challenge": challenge,
            "code_challenge_method": "S256", "response_mode": "query",
        }  # fmt: skip
        exchange.outcome, exchange.reason = "redirected_to_idp", user_code
        separator = "&" if "?" in oidc.authorization_endpoint else "?"
        return RedirectResponse(f"{oidc.authorization_endpoint}{separator}{urlencode(query)}", 303, headers=NO_STORE)

    async def callback(self, request: Request, exchange: Exchange) -> Response:
        params = request.query_params
        pending = await self.store.finish_signin(params.get("state", ""))
        if pending is None:
            return self._refused_page(
                exchange, 400, "invalid_request", "This sign-in link has expired or was already used."
            )
        cookie = request.cookies.get(COOKIE, "")
        if not cookie or not secrets.compare_digest(digest(cookie), pending.browser):
            return self._refused_page(exchange, 403, "csrf", "Finish the sign-in in the browser that started it.")
        if "error" in params:
            reason = f"The identity provider said: {params.get('error', '')[:60]}."
            await self.store.decide(pending.user_code, None, reason)
            return self._refused_page(exchange, 400, "access_denied", reason)
        try:
            claims = await self._id_token_claims(params.get("code", ""), pending)
        except ExchangeError as error:
            await self.store.decide(pending.user_code, None, "The identity provider could not confirm the sign-in.")
            return self._refused_page(exchange, 502, "idp_exchange_failed", str(error))
        person = self._person(claims)
        if isinstance(person, str):
            await self.store.decide(pending.user_code, None, person)
            return self._refused_page(exchange, 403, "unknown_team", person)
        exchange.user, exchange.team = person.email, person.team
        result = await self.store.decide(pending.user_code, person)
        if result != "ok":
            return self._refused_page(exchange, 400, "invalid_user_code", "That code has expired. Run /login again.")
        exchange.outcome = "signed_in"
        return self._html(
            _page(
                "Signed in",
                f"<p>Signed in as <b>{html.escape(person.email)}</b> (team {html.escape(person.team)}). "
                "You can close this window and go back to your terminal.</p>",
            ),
            200,
        )

    async def _id_token_claims(self, code: str, pending: PendingSignin) -> dict[str, Any]:
        oidc, auth = self.signin.oidc, self.settings.auth
        form = {
            "grant_type": "authorization_code", "code": code, "redirect_uri": pending.redirect_uri,
            "client_id": oidc.client_id, "code_verifier": pending.code_verifier,
        }  # fmt: skip
        if self.client_secret:
            form["client_secret"] = self.client_secret
        answer = await self.exchange.exchange(form)
        id_token = answer["id_token"]
        try:
            key = await self.idp_keys.get(jwt.get_unverified_header(id_token).get("kid"))
            if key is None:
                raise ExchangeError("the IdP's id_token was signed with a key it does not publish")
            claims: dict[str, Any] = jwt.decode(
                id_token, key, algorithms=list(auth.algorithms), audience=oidc.client_id, issuer=oidc.issuer,
                leeway=auth.leeway_seconds, options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )  # fmt: skip
        except (jwt.InvalidTokenError, *KEY_SOURCE_ERRORS) as error:
            raise ExchangeError(f"the IdP's id_token does not verify ({error})") from error
        if not secrets.compare_digest(str(claims.get("nonce", "")), pending.nonce):
            raise ExchangeError("the IdP's id_token is for another sign-in (nonce)")
        return claims

    def _person(self, claims: dict[str, Any]) -> Person | str:
        """Who signed in, or why they may not (their team claim names no team of this gateway)."""
        auth = self.settings.auth
        user = claims.get(auth.user_claim) or claims.get("email") or claims["sub"]
        claimed = claims.get(auth.team_claim)
        team = self.teams.canonical(claimed) if isinstance(claimed, str) and claimed else None
        if team is None:
            return (
                f"Your IdP account's team claim {auth.team_claim!r} ({str(claimed)[:64]!r}) names none of this "
                f"gateway's teams ({', '.join(self.settings.teams)}); ask the platform team."
            )
        groups = claims_groups(claims, auth.groups_claim)
        email = claims.get("email") if isinstance(claims.get("email"), str) else str(user)
        return Person(str(claims["sub"]), str(email), str(claims.get("name") or email), team, groups)

    # -- shapes -----------------------------------------------------------------------------------------------

    async def _form(self, request: Request, exchange: Exchange) -> dict[str, str] | Response:
        """A form-encoded body (bounded), or the OAuth error that refuses it; a `client_id` must be this one."""
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return self._oauth_error(exchange, 400, "invalid_request", "Send the parameters form-encoded.")
        try:
            body = await read_body(request, MAX_FORM_BYTES, self.settings.server.body_idle_timeout_seconds)
        except (TimeoutError, ClientDisconnect):
            return self._oauth_error(exchange, 400, "invalid_request", "The form did not arrive.")
        if body is None:
            return self._oauth_error(exchange, 413, "invalid_request", "The form is too large.")
        try:
            form = dict(parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False, max_num_fields=32))
        except (UnicodeDecodeError, ValueError):
            return self._oauth_error(exchange, 400, "invalid_request", "The form cannot be read.")
        client_id = form.get("client_id")
        if client_id is not None and client_id != self.signin.client_id:
            return self._oauth_error(exchange, 401, "invalid_client", f"Unknown client_id {client_id[:64]!r}.")
        return form

    def _oauth_error(
        self,
        exchange: Exchange,
        status: int,
        error: str,
        description: str,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> JSONResponse:
        exchange.outcome = error
        body = {"error": error, "error_description": description, **(extra or {})}
        return JSONResponse(body, status, headers={**NO_STORE, **(headers or {})})

    def _refused_page(self, exchange: Exchange, status: int, outcome: str, message: str) -> Response:
        exchange.outcome, exchange.reason = outcome, message[:200]
        return self._html(_page("Sign-in not completed", f"<p>{html.escape(message)}</p>"), status)

    def _html(self, page: str, status: int) -> HTMLResponse:
        idp = urlsplit(self.signin.oidc.authorization_endpoint)
        headers = {
            **NO_STORE,
            "content-security-policy": (
                f"default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {idp.scheme}://{idp.netloc}; "
                "frame-ancestors 'none'"
            ),
            "x-frame-options": "DENY",
            "referrer-policy": "no-referrer",
        }
        return HTMLResponse(page, status, headers=headers)

    def _same_origin(self, request: Request) -> bool:
        """A form post from this gateway's own page (a browser sends Origin, or at least Referer)."""
        if request.headers.get("sec-fetch-site") not in (None, "same-origin"):
            return False
        origin = request.headers.get("origin") or request.headers.get("referer")
        if not origin:
            return False
        own = urlsplit(self.url)
        seen = urlsplit(origin)
        return (seen.scheme, seen.netloc) == (own.scheme, own.netloc)


def client_address(request: Request) -> str:
    """The client's address: the load balancer appends it as the last X-Forwarded-For entry."""
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded:
        return forwarded.rsplit(",", 1)[-1].strip()[:64]
    return request.client.host if request.client else "unknown"


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        '<meta name="viewport" content="width=device-width"><style>body{font-family:sans-serif;max-width:36em;'
        f"margin:4em auto;padding:0 1em}}input{{font-size:1.4em;letter-spacing:.1em}}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def protocol_document(settings: GatewaySettings) -> str:
    """`GET /protocol`: what this running gateway serves, from its own settings."""
    signin = settings.signin
    models = "\n".join(f"- `{r.aliases[0]}` ({r.display_name})" for r in settings.vendor.models if r.aliases)
    lines = [
        f"# aigw gateway protocol (environment {settings.environment})",
        "",
        "## Inference",
        "- `POST /v1/messages` (streamed or not; `?beta=true` too) and `POST /v1/messages/count_tokens`, in the "
        "Anthropic Messages format, with `Authorization: Bearer <token>`; `GET /v1/models` lists:",
        models or "- (none)",
        "- Bedrock runtime paths: `POST /model/{id}/invoke`, `invoke-with-response-stream`, `converse`, "
        "`converse-stream`.",
        "- Streams get an SSE `ping` after "
        f"{settings.upstream.stream_ping_seconds:g} s of silence; the first byte must come within "
        f"{settings.upstream.first_byte_timeout_seconds:g} s.",
        "",
        "## Tokens",
        "- The identity provider's own tokens, and, after a sign-in here, this gateway's: both on every path.",
    ]
    if signin is not None:
        lines += [
            f"- Sign-in: `GET {DISCOVERY}`, `POST {DEVICE_AUTHORIZATION}`, `{VERIFICATION}` (browser), "
            f"`POST {TOKEN}` (device-code and refresh grants), `POST {REVOKE}`.",
            f"- Access tokens live {signin.access_token_seconds} s; refresh tokens rotate on every use, lapse after "
            f"{signin.refresh_idle_seconds} s unused and {signin.session_max_seconds} s after the sign-in, and a "
            "reused one revokes its sign-in on every gateway process.",
            f"- Device codes live {signin.device_code_seconds} s; poll every {signin.poll_interval_seconds} s.",
        ]
    lines += [
        "",
        "## Errors",
        'Anthropic\'s envelope `{"type": "error", "error": {"type", "message"}}` plus `request_id`:',
        "",
        "| Status | error.type |",
        "|---|---|",
        "| 400 | invalid_request_error; `policy_blocked` with `error.details.error_code: dlp_request_denied` |",
        "| 401 | authentication_error |",
        "| 402 | billing_error (the team's budget) |",
        "| 403 | permission_error |",
        "| 413 | request_too_large |",
        "| 429 | rate_limit_error (with Retry-After) |",
        "| 501 | not_supported |",
        "| 503 | overloaded_error (with Retry-After) |",
        "| 5xx | api_error |",
        "",
        f"Rate limits per rolling hour: {settings.limits.user_per_hour} per user, {settings.limits.team_per_hour} "
        "per team.",
        "",
    ]
    return "\n".join(lines)
