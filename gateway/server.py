"""uvicorn's HTTP protocol with the limits it lacks.

uvicorn's httptools protocol times out only idle kept-alive connections: a client that opens a
connection and sends its headers slowly (or never) holds it for ever, and headers may be any size. Here
the request line and headers must arrive within `header_timeout_seconds` (408 otherwise) and stay under
`max_header_bytes` (431 otherwise).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.settings import ServerSettings

log = logging.getLogger("aigw.gateway")


class _HeadersTooLargeError(Exception):
    pass


class GuardedProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, limits: ServerSettings, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.header_bytes = 0
        self.headers_too_large = False
        self.header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.header_bytes = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if self.headers_too_large:  # the parser stopped on our exception: say what it was
            self._refuse(431, "Request Header Fields Too Large", f"Headers over {self.limits.max_header_bytes} bytes.")
        else:
            super().send_400_response(msg)

    def _count(self, size: int) -> None:
        self.header_bytes += size
        if self.header_bytes > self.limits.max_header_bytes:
            self.headers_too_large = True
            raise _HeadersTooLargeError

    def _arm(self) -> None:
        if self.header_timer is None:
            self.header_timer = self.loop.call_later(self.limits.header_timeout_seconds, self._headers_too_slow)

    def _disarm(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _headers_too_slow(self) -> None:
        self.header_timer = None
        if not self.transport.is_closing():
            seconds = self.limits.header_timeout_seconds
            self._refuse(408, "Request Timeout", f"The request's headers did not arrive within {seconds:g} s.")

    def _refuse(self, status: int, phrase: str, message: str) -> None:
        log.warning("connection from %s refused: %s", self.client, message)
        body = message.encode()
        self.transport.write(
            f"HTTP/1.1 {status} {phrase}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            + body
        )
        self.transport.close()


@functools.cache
def guarded_protocol(limits: ServerSettings) -> Any:
    """The protocol factory for uvicorn's `http` option (one per settings, so equal settings give the same)."""
    return functools.partial(GuardedProtocol, limits=limits)
