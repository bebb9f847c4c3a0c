"""The gateway as an ASGI application. The request path itself is `gateway.service`, one module per stage.

A bare ASGI callable rather than a Starlette app: every path and method goes to the gateway (a router's own
404 or 405 would leave no audit record), and the router and middleware layers cost a tenth of a request's
CPU for nothing. Starlette's Request and Response classes are still what the stages use.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.service import Gateway
from gateway.settings import GatewaySettings

log = logging.getLogger("aigw.gateway")


class GatewayApp:
    def __init__(self, settings: GatewaySettings) -> None:
        self.gateway = Gateway(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope, receive)
            response: Response
            if scope["path"] == "/healthz" and scope["method"] == "GET":
                response = await self.gateway.health(request)
            else:
                response = await self.gateway.handle(request)  # it answers (and records) every failure itself
            await response(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.gateway.start()
                except Exception as error:
                    log.exception("the gateway could not start")
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.gateway.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(settings: GatewaySettings) -> GatewayApp:
    return GatewayApp(settings)
