"""The gateway's routes. The request path itself is `gateway.service`, one module per stage."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import request_response

from gateway.service import Gateway
from gateway.settings import GatewaySettings


def create_app(settings: GatewaySettings) -> Starlette:
    gateway = Gateway(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    async def route(request: Request) -> Response:
        if request.url.path == "/healthz" and request.method == "GET":
            return await gateway.health(request)
        return await gateway.handle(request)  # every other path and method, so each one is audited

    app = Starlette(lifespan=lifespan)
    # The router's default takes every request: no path or method is answered by the router itself (its
    # 404 and 405 would leave no audit record).
    app.router.default = request_response(route)
    app.state.gateway = gateway
    return app
