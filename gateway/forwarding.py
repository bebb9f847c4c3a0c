"""A slot, the breaker, the vendor, and the answer checked on its way back (buffered or streamed)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway import eventstream, messages_api
from gateway.admission import Admitted
from gateway.bodies import BodyChecker
from gateway.breaker import CircuitBreaker
from gateway.errors import error_headers
from gateway.exchange import Exchange, refuse
from gateway.messages import (
    CompletionStream,
    ConverseStream,
    InvokeStream,
    MessagesEventStream,
    ServerSentEventStream,
    VendorStreamError,
    usage_from_body,
)
from gateway.policy import ScanBudgetError
from gateway.recording import Recorder
from gateway.settings import GatewaySettings
from gateway.upstream import (
    UPSTREAM_ERRORS,
    Opened,
    Upstream,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    VendorResponse,
)

STREAMS: dict[str, type[CompletionStream]] = {
    "invoke-with-response-stream": InvokeStream,
    "converse-stream": ConverseStream,
}


class Forwarder:
    def __init__(
        self,
        settings: GatewaySettings,
        upstream: Upstream,
        breaker: CircuitBreaker,
        checker: BodyChecker,
        recorder: Recorder,
    ) -> None:
        self.settings = settings
        self.upstream = upstream
        self.breaker = breaker
        self.checker = checker
        self.policy = checker.policy
        self.recorder = recorder
        self.slots = asyncio.Semaphore(settings.upstream.max_concurrency)
        self.in_flight = 0

    async def forward(self, request: Request, exchange: Exchange, admitted: Admitted) -> Response:
        settings = self.settings
        action = admitted.action
        try:
            if self.slots.locked():  # only a full gateway waits (and pays for the timer)
                async with asyncio.timeout(settings.upstream.queue_wait_seconds):
                    await self.slots.acquire()
            else:
                await self.slots.acquire()
        except TimeoutError:
            return refuse(
                exchange,
                503,
                "busy",
                "max_concurrency",
                "The gateway is at capacity; retry shortly.",
                headers={"retry-after": "1"},
            )
        slot, handed_to_stream = _Slot(self), False
        try:
            if not self.breaker.allow():
                retry = str(self.breaker.retry_after())
                return refuse(
                    exchange,
                    503,
                    "vendor_degraded",
                    "circuit_open",
                    "The AI vendor is degraded; the gateway is failing fast. Retry later.",
                    headers={"retry-after": retry},
                )
            invocation = exchange.invocation
            target = None
            if invocation is not None:  # CountTokens takes the bare model, not a profile
                target = invocation.route.foundation_model if action == "count-tokens" else invocation.target
            path = self.upstream.bedrock_path(target, action) if action and target else _path_and_query(request)
            headers = dict(request.headers)
            if exchange.api == "anthropic":  # the client's Anthropic headers are in the translated body
                headers = {name: value for name, value in headers.items() if name.startswith("x-amzn-bedrock-")}
                headers["accept"] = eventstream.CONTENT_TYPE if exchange.stream else "application/json"
            try:
                opened = await self.upstream.open(request.method, path, admitted.body, headers)
            except UpstreamTimeoutError:
                self.breaker.record_failure()
                seconds = settings.upstream.first_byte_timeout_seconds
                return refuse(
                    exchange,
                    504,
                    "upstream_timeout",
                    f"{seconds:g}s",
                    f"The AI vendor did not answer within {seconds:g} s.",
                )
            except UpstreamUnavailableError as error:
                self.breaker.record_failure()
                return refuse(exchange, 502, "upstream_unavailable", str(error), "The AI vendor could not be reached.")
            except BaseException:
                self.breaker.release_probe()
                raise
            exchange.first_byte_ms = opened.first_byte_ms
            if opened.response.status_code >= 500:
                self.breaker.record_failure()
            else:
                self.breaker.record_success()
            if exchange.stream and opened.response.status_code == 200:
                headers = self.upstream.returned_headers(opened.response)
                transform: CompletionStream
                if exchange.api == "anthropic":
                    transform = MessagesEventStream(self.policy, exchange.model)
                    headers = {**_anthropic_headers(headers, exchange), "content-type": SSE}
                    headers["cache-control"] = "no-cache"
                else:
                    transform = STREAMS[action](self.policy) if action else ServerSentEventStream(self.policy)
                # Until the stream says otherwise, it ended early: the client went away.
                exchange.status, exchange.outcome = 200, "client_disconnected"
                streamed = CheckedStream(
                    self._stream(exchange, opened.response, transform),
                    on_close=partial(self._end_stream, exchange, opened.response, transform, slot),
                    headers=headers,
                )
                handed_to_stream = True  # the stream releases the slot when it ends
                return streamed
            return await self._buffered(exchange, opened)
        finally:
            if not handed_to_stream:
                slot.release()

    async def _buffered(self, exchange: Exchange, opened: Opened) -> Response:
        response = opened.response
        try:
            async with asyncio.timeout(self._remaining(exchange)):
                raw = await response.aread()
        except TimeoutError:
            return refuse(
                exchange, 504, "upstream_timeout", "stream_timeout_seconds", "The AI vendor's answer took too long."
            )
        finally:
            await response.aclose()
        exchange.upstream_ms = (time.perf_counter() - exchange.started) * 1000
        headers = self.upstream.returned_headers(response)
        try:
            answer = json.loads(raw)
            parsed = True
        except ValueError:  # not JSON (or not UTF-8): still read, as text
            answer, parsed = raw.decode(errors="replace"), False
        try:
            checked, scan, recorded = await self.checker.check(answer, "completion", len(raw))
        except ScanBudgetError:
            return refuse(
                exchange, 502, "completion_unchecked", "scan_budget_ms",
                "The AI vendor's answer could not be checked in time, so it is not passed on.",
            )  # fmt: skip
        exchange.note_policy("completion", scan)
        if response.status_code != 200:
            exchange.outcome, exchange.reason = (
                "vendor_error",
                response.headers.get("x-amzn-errortype", str(response.status_code)),
            )
            # Passed on as the vendor wrote it (clients recover by its wording), unless it carries what the
            # policy blocks (an error that echoes the request, say).
            if scan.action == "block":
                return refuse(
                    exchange, 502, "vendor_error_withheld", ", ".join(scan.blocking_rules),
                    f"The AI vendor answered {response.status_code} with content the policy blocks.",
                )  # fmt: skip
            if exchange.api == "anthropic":
                error = messages_api.vendor_error(response.status_code, raw)
                return JSONResponse(error, response.status_code, _anthropic_headers(headers, exchange, response))
            return Response(raw, status_code=response.status_code, headers=headers)
        exchange.usage, exchange.completion = usage_from_body(answer), recorded
        if scan.action == "block":
            rules = ", ".join(scan.blocking_rules)
            exchange.completion = []
            return refuse(
                exchange,
                400,
                "completion_blocked",
                rules,
                f"The answer contains content the policy blocks (rule {rules}).",
            )
        if exchange.api == "anthropic":
            return _anthropic_answer(exchange, checked, headers)
        if scan.action == "redact":
            raw = json.dumps(checked).encode() if parsed else str(checked).encode()
            headers.pop("content-length", None)
        return Response(raw, status_code=200, headers=headers)

    async def _stream(
        self, exchange: Exchange, response: VendorResponse, transform: CompletionStream
    ) -> AsyncGenerator[bytes]:
        """The answer as it arrives, each piece checked before it is passed on, and a ping in every silence of
        `stream_ping_seconds` where the format has one (the vendor's stream has none of its own)."""
        chunks = response.aiter_raw()
        ping = transform.ping()
        pending: asyncio.Future[bytes | None] | None = None
        try:
            while not transform.blocked:
                pending = pending or asyncio.ensure_future(anext(chunks, None))
                remaining = self._remaining(exchange)
                wait = min(remaining, self.settings.upstream.stream_ping_seconds) if ping else remaining
                done, _ = await asyncio.wait({pending}, timeout=wait)
                if not done:
                    if wait < remaining:
                        yield ping
                        continue
                    seconds = self.settings.upstream.stream_timeout_seconds
                    exchange.outcome, exchange.reason = "stream_timeout", f"{seconds:g}s"
                    break
                chunk, pending = pending.result(), None
                if chunk is None:
                    tail = transform.finish()
                    if tail:
                        yield tail
                    exchange.outcome = "ok"
                    break
                out = transform.feed(chunk)
                if out:
                    yield out
            if transform.blocked:
                exchange.outcome, exchange.reason = "completion_blocked", ", ".join(transform.scan.blocking_rules)
        except UPSTREAM_ERRORS as error:
            exchange.outcome, exchange.reason = "upstream_unavailable", str(error) or type(error).__name__
        except VendorStreamError as error:  # the vendor's fault: counts against it, and the client is told why
            self.breaker.record_failure()
            exchange.outcome, exchange.reason = "upstream_malformed", str(error)
            yield transform.vendor_error(f"The AI vendor's stream broke off: {error}.")
        finally:
            if pending is not None and not pending.done():
                pending.cancel()

    async def _end_stream(
        self, exchange: Exchange, response: VendorResponse, transform: CompletionStream, slot: _Slot
    ) -> None:
        """After the stream, however it ended (finished, blocked, timed out, or the client left)."""
        slot.release()
        with contextlib.suppress(Exception):
            await response.aclose()
        exchange.upstream_ms = (time.perf_counter() - exchange.started) * 1000
        exchange.usage, exchange.usage_estimated = transform.settled_usage(exchange.request_bytes)
        exchange.completion = ["".join(transform.text)]
        exchange.note_policy("completion", transform.scan)
        await self.recorder.finish(exchange)

    def _remaining(self, exchange: Exchange) -> float:
        return max(0.001, self.settings.upstream.stream_timeout_seconds - (time.perf_counter() - exchange.started))


class CheckedStream(StreamingResponse):
    """A streamed answer whose clean-up runs however the response ends, even if the client leaves
    before the first byte or the server is cancelled (a generator's own `finally` would not run
    then: it never started)."""

    def __init__(
        self, content: AsyncGenerator[bytes], on_close: Callable[[], Awaitable[None]], headers: dict[str, str]
    ) -> None:
        super().__init__(content, status_code=200, headers=headers)
        self._content = content
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await asyncio.shield(self._close())

    async def _close(self) -> None:
        await self._content.aclose()
        await self._on_close()


class _Slot:
    """One of the process's upstream slots, released exactly once."""

    def __init__(self, forwarder: Forwarder) -> None:
        self.forwarder = forwarder
        self.released = False
        forwarder.in_flight += 1

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.forwarder.in_flight -= 1
            self.forwarder.slots.release()


SSE = "text/event-stream; charset=utf-8"


def _anthropic_answer(exchange: Exchange, answer: Any, headers: dict[str, str]) -> Response:
    """A Messages API answer from Bedrock's (already checked): the message under the model's requested name, or
    CountTokens' count."""
    headers = _anthropic_headers(headers, exchange)
    if isinstance(answer, dict) and answer.get("type") == "message":
        return JSONResponse({**answer, "model": exchange.model}, headers=headers)
    counted = messages_api.count_tokens_answer(answer)
    if counted is None:
        return refuse(exchange, 502, "upstream_malformed", "answer", "The AI vendor's answer has the wrong shape.")
    return JSONResponse(counted, headers=headers)


def _anthropic_headers(
    returned: dict[str, str], exchange: Exchange, response: VendorResponse | None = None
) -> dict[str, str]:
    """Response headers in the Messages API: the request id where Anthropic's clients read it, and Bedrock's own
    headers (its content type, its ids) left out; an error keeps its Retry-After."""
    headers = {"request-id": exchange.request_id}
    if "retry-after" in returned:
        headers["retry-after"] = returned["retry-after"]
    if response is not None:
        headers.update(error_headers(response.status_code))
    return headers


def _path_and_query(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")
