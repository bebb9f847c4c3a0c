"""The gateway's parts, put together in request-path order: admission, forwarding, recording.

Every request but `/healthz` ends in exactly one audit record and one metrics line, whatever its
outcome, including a client that goes away mid-stream.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.access_tokens import access_tokens_for
from gateway.admission import Admission
from gateway.auth import KEY_SOURCE_ERRORS, Authenticator, SigningKeys, canary_token_for, key_source_for
from gateway.bodies import BodyChecker
from gateway.breaker import CircuitBreaker
from gateway.exchange import Exchange, refuse
from gateway.forwarding import CheckedStream, Forwarder
from gateway.limits import Limits
from gateway.models import ModelDirectory
from gateway.policy import Policy
from gateway.recording import Recorder
from gateway.settings import GatewaySettings
from gateway.signin import PATHS as SIGNIN_PATHS
from gateway.signin import SignIn
from gateway.telemetry import Telemetry
from gateway.upstream import Upstream

log = logging.getLogger("aigw.gateway")


class Gateway:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.breaker = CircuitBreaker(settings.upstream.breaker)
        self.limits = Limits(settings)
        self.idp_client = httpx.AsyncClient()
        self.upstream = Upstream(settings)
        keys = key_source_for(settings.auth, region=settings.vendor.region, client=self.idp_client)
        idp_keys = SigningKeys(settings.auth, keys)
        self.tokens = access_tokens_for(settings)
        canary = canary_token_for(settings.auth, settings.vendor.region)
        self.auth = Authenticator(settings.auth, idp_keys, self.tokens, canary=canary)
        self.recorder = Recorder(settings, self.limits, self.breaker)
        self.checker = BodyChecker(Policy(settings.policy))
        telemetry = Telemetry(settings, self.recorder.metrics, self.recorder.telemetry, self.checker)
        self.signin = (
            SignIn(settings, self.tokens, idp_keys, lambda: self.limits.client) if self.tokens is not None else None
        )
        self.admission = Admission(
            settings, self.auth, ModelDirectory(settings.vendor), self.checker, self.limits, telemetry,
            self.signin.store if self.signin else None,
        )  # fmt: skip
        self.forwarder = Forwarder(settings, self.upstream, self.breaker, self.checker, self.recorder)

    async def start(self) -> None:
        self.recorder.start()
        await self.upstream.start()
        await asyncio.to_thread(self.limits.connect)
        if self.signin is not None:
            await asyncio.to_thread(self.signin.load)
        if self.limits.enabled and self.limits.client is None:
            log.warning(
                "no Redis configured: rate limits run per process (fail mode %s)", self.settings.limits.fail_mode
            )
        await asyncio.to_thread(self.auth.canary.load)
        try:
            await self.auth.keys.load()
        except KEY_SOURCE_ERRORS as error:  # keys are read again on the first request
            log.warning("could not prefetch the IdP's keys from %s: %s", self.auth.keys.source.description, error)

    async def stop(self) -> None:
        await self.recorder.drain()
        await self.upstream.close()
        await self.auth.keys.aclose()
        await self.idp_client.aclose()
        await self.limits.close()
        self.checker.close()
        await self.recorder.close()

    async def health(self, _request: Request) -> JSONResponse:
        sinks = {
            sink.name: {"ok": sink.healthy, "error": sink.error, "written": sink.written}
            for sink in self.recorder.sinks
        }
        healthy = all(s["ok"] for s in sinks.values())
        # Redis out of reach is reported, not fatal: the fail mode decides what requests get.
        redis = {"ok": await self.limits.reachable(), "fail_mode": self.settings.limits.fail_mode}
        body = {
            "status": "ok" if healthy else "unhealthy",
            "environment": self.settings.environment,
            "breaker": self.breaker.state.value,
            "in_flight": self.forwarder.in_flight,
            "redis": redis,
            **sinks,
        }
        return JSONResponse(body, status_code=200 if healthy else 503)

    async def handle(self, request: Request) -> Response:
        exchange = Exchange(method=request.method, path=request.scope["path"])
        try:
            response = await self._answer(request, exchange)
        except Exception as error:  # a bug must still leave a record and a clear answer
            log.exception("request %s failed", exchange.request_id)
            response = refuse(
                exchange, 500, "internal_error", type(error).__name__, "The gateway failed; see its logs."
            )
        response.headers["x-request-id"] = exchange.request_id
        if not isinstance(response, CheckedStream):  # a stream records itself when it ends
            exchange.status = response.status_code
            self.recorder.finish_soon(exchange)
        return response

    async def _answer(self, request: Request, exchange: Exchange) -> Response:
        """The sign-in endpoints (unauthenticated: see gateway.signin), else admission, then the vendor."""
        if self.signin is not None and request.scope["path"] in SIGNIN_PATHS:
            return await self.signin.handle(request, exchange)
        admitted = await self.admission.admit(request, exchange)
        return admitted if isinstance(admitted, Response) else await self.forwarder.forward(request, exchange, admitted)
