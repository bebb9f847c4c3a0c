"""The request path: authenticate, scope, size, policy, breaker, forward, check the answer, record.

Every request but `/healthz` ends in exactly one audit record and one metrics line, whatever its
outcome, including a client that goes away mid-stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import unquote

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway.audit import capped_line
from gateway.auth import KEY_SOURCE_ERRORS, Authenticator, AuthError, SigningKeys, key_source_for
from gateway.breaker import BreakerState, CircuitBreaker
from gateway.limits import Limits, RateDecision, Reservation
from gateway.messages import (
    CompletionStream,
    ConverseStream,
    InvokeStream,
    ServerSentEventStream,
    Usage,
    check_body,
    usage_from_body,
)
from gateway.models import Invocation, ModelDirectory, ProbeError, UnknownModelError
from gateway.policy import Policy, Scan
from gateway.settings import GatewaySettings
from gateway.sinks import JsonLinesSink
from gateway.upstream import Opened, Upstream, UpstreamTimeoutError, UpstreamUnavailableError, client_for

log = logging.getLogger("aigw.gateway")

BEDROCK_PATH = re.compile(
    r"^/model/(?P<model>[^/]+(?:/[^/]+)*?)/(?P<action>invoke|invoke-with-response-stream|converse|converse-stream)$"
)
# Bedrock control-plane reads that Claude Code makes at start (ListInferenceProfiles, GetInferenceProfile).
PROFILES_PATH = re.compile(r"^/inference-profiles(?:/(?P<identifier>.+))?$")
STREAMS: dict[str, type[CompletionStream]] = {
    "invoke-with-response-stream": InvokeStream,
    "converse-stream": ConverseStream,
}


@dataclass
class Exchange:
    """One request as the audit trail will remember it."""

    method: str
    path: str
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))
    started: float = field(default_factory=time.perf_counter)
    user: str | None = None
    team: str | None = None
    repository: str | None = None
    model: str | None = None
    invocation: Invocation | None = None
    status: int = 0
    outcome: str = "ok"
    reason: str | None = None
    policy: dict[str, Any] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    prompt: list[str] = field(default_factory=list)
    completion: list[str] = field(default_factory=list)
    stream: bool = False
    first_byte_ms: float | None = None
    upstream_ms: float | None = None
    limits: dict[str, Any] | None = None
    reservation: Reservation | None = None
    recorded: bool = False
    # False for a client start-up probe without a token: counted in the metrics, kept out of the audit trail.
    audited: bool = True

    def note_policy(self, where: str, scan: Scan) -> None:
        if scan.matches:
            self.policy[where] = {"action": scan.action, "matches": dict(scan.matches)}


class Gateway:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.policy = Policy(settings.policy)
        self.breaker = CircuitBreaker(settings.upstream.breaker)
        self.slots = asyncio.Semaphore(settings.upstream.max_concurrency)
        self.in_flight = 0
        self.audit = JsonLinesSink(settings.audit.path, settings.audit.queue_size, "audit")
        self.metrics = JsonLinesSink(settings.metrics.path, settings.metrics.queue_size, "metrics")
        self.client = client_for(settings)
        self.idp_client = httpx.AsyncClient()
        self.upstream = Upstream(settings, self.client)
        keys = key_source_for(settings.auth, region=settings.vendor.region, client=self.idp_client)
        self.auth = Authenticator(settings.auth, SigningKeys(settings.auth, keys))
        self.models = ModelDirectory(settings.vendor)
        self.limits = Limits(settings)
        self.finishing: set[asyncio.Task[None]] = set()

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self.audit.start()
        self.metrics.start()
        await asyncio.to_thread(self.upstream.key.load)
        await asyncio.to_thread(self.limits.connect)
        if self.limits.enabled and self.limits.client is None:
            log.warning(
                "no Redis configured: rate limits run per process (fail mode %s)", self.settings.limits.fail_mode
            )
        try:
            await self.auth.keys.load()
        except KEY_SOURCE_ERRORS as error:  # keys are read again on the first request
            log.warning("could not prefetch the IdP's keys from %s: %s", self.auth.keys.source.description, error)

    async def stop(self) -> None:
        await asyncio.gather(*self.finishing, return_exceptions=True)
        await self.client.aclose()
        await self.auth.keys.aclose()
        await self.idp_client.aclose()
        await self.limits.close()
        await asyncio.to_thread(self.audit.close)
        await asyncio.to_thread(self.metrics.close)

    # -- endpoints -----------------------------------------------------------------------------

    async def health(self, _request: Request) -> JSONResponse:
        sinks = {
            sink.name: {"ok": sink.healthy, "error": sink.error, "written": sink.written}
            for sink in (self.audit, self.metrics)
        }
        healthy = all(s["ok"] for s in sinks.values())
        # Redis out of reach is reported, not fatal: the fail mode decides what requests get.
        redis = {"ok": await self.limits.reachable(), "fail_mode": self.settings.limits.fail_mode}
        body = {
            "status": "ok" if healthy else "unhealthy",
            "environment": self.settings.environment,
            "breaker": self.breaker.state.value,
            "in_flight": self.in_flight,
            "redis": redis,
            **sinks,
        }
        return JSONResponse(body, status_code=200 if healthy else 503)

    async def handle(self, request: Request) -> Response:
        exchange = Exchange(method=request.method, path=request.url.path)
        try:
            response = await self._handle(request, exchange)
        except Exception as error:  # a bug must still leave a record and a clear answer
            log.exception("request %s failed", exchange.request_id)
            response = self._reject(
                exchange, 500, "internal_error", type(error).__name__, "The gateway failed; see its logs."
            )
        response.headers["x-request-id"] = exchange.request_id
        if not isinstance(response, _CheckedStream):  # a stream records itself when it ends
            exchange.status = response.status_code
            self._finish_soon(exchange)
        return response

    # -- the request path ----------------------------------------------------------------------

    async def _handle(self, request: Request, exchange: Exchange) -> Response:
        admitted = await self._admit(request, exchange)
        if isinstance(admitted, Response):
            return admitted
        action, body = admitted
        return await self._forward(request, exchange, action, body)

    async def _admit(self, request: Request, exchange: Exchange) -> Response | tuple[str | None, bytes]:
        """Everything decided before the vendor is involved: who, which path, scope, size, prompt policy.
        Returns the refusal, or the Bedrock action (None for a vendor API path) and the body to send."""
        settings = self.settings
        bedrock = settings.vendor.kind == "bedrock"
        probe = PROFILES_PATH.match(request.url.path) if bedrock and request.method == "GET" else None
        try:
            identity = await self.auth.identify(request.headers.get("authorization"))
        except AuthError as error:
            # Each client start probes the control plane before it sends its token: one per start is noise, not
            # an audit event.
            exchange.audited = probe is None
            return self._reject(
                exchange, 401, "unauthorized", error.reason, error.message,
                headers={"www-authenticate": f'Bearer error="invalid_token", error_description="{error.reason}"'},
            )  # fmt: skip
        exchange.user, exchange.team = identity.user, identity.team

        action = None
        if probe is not None:
            return self._probe(probe["identifier"], request, exchange)
        if bedrock:
            route = BEDROCK_PATH.match(request.url.path)
            if route is None or request.method != "POST":
                return self._reject(
                    exchange,
                    404,
                    "not_found",
                    "unknown_path",
                    f"{request.method} {request.url.path} is not a Bedrock runtime path.",
                )
            action = route["action"]
            exchange.model = unquote(route["model"])
            try:
                exchange.invocation = self.models.invocation(exchange.model, exchange.team)
            except UnknownModelError as error:  # Bedrock's answer to a model it does not know: clients stop at once
                return self._reject(
                    exchange, 400, "model_not_allowed", exchange.model, str(error),
                    headers={"x-amzn-errortype": "ValidationException"},
                )  # fmt: skip
        exchange.repository = request.headers.get(settings.policy.repository_header)
        blocked_by = self.policy.repository_policy(exchange.repository)
        if blocked_by:
            return self._reject(
                exchange,
                403,
                "repository_blocked",
                blocked_by,
                f"Repository {exchange.repository!r} is out of scope for AI assistance (policy {blocked_by}).",
            )

        body = await self._read_body(request)
        if body is None:
            limit = settings.policy.max_request_bytes
            return self._reject(
                exchange, 413, "too_large", str(limit), f"The request body is larger than {limit} bytes."
            )
        try:
            payload = json.loads(body) if body else {}
        except json.JSONDecodeError as error:
            return self._reject(exchange, 400, "malformed_body", "json", f"The request body is not JSON ({error}).")

        payload, scan, exchange.prompt = check_body(self.policy, payload, "prompt")
        exchange.note_policy("prompt", scan)
        if scan.action == "block":
            rules = ", ".join(scan.blocking_rules)
            return self._reject(
                exchange, 403, "policy_blocked", rules, f"The prompt contains content the policy blocks (rule {rules})."
            )
        if scan.action == "redact":
            body = json.dumps(payload).encode()
        exchange.stream = action in STREAMS if action else isinstance(payload, dict) and bool(payload.get("stream"))

        refused = await self._check_limits(exchange, payload, body)
        return refused or (action, body)

    async def _check_limits(self, exchange: Exchange, payload: Any, body: bytes) -> Response | None:
        """The fleet-wide rate limits, then the team's monthly budget (a reservation settled at the end)."""
        user, team = exchange.user or "", exchange.team or ""
        started = time.perf_counter()
        decision = await self.limits.check_rate(user, team, exchange.request_id)
        if decision.allowed:
            worst_case = self._worst_case_usd(exchange, payload, body)
            exchange.reservation = await self.limits.reserve(team, exchange.request_id, worst_case)
        exchange.limits = {**decision.audit(), "check_ms": round((time.perf_counter() - started) * 1000, 3)}
        if not decision.allowed:
            return self._rate_refusal(exchange, decision)
        reservation = exchange.reservation
        if reservation is not None and not reservation.allowed:
            if reservation.mode == "fail_closed":
                return self._reject(
                    exchange,
                    503,
                    "limits_unavailable",
                    "redis",
                    "Budgets cannot be checked right now; retry shortly.",
                    headers={"retry-after": "1"},
                )
            return self._reject(
                exchange, 402, "budget_exceeded", team,
                f"Team {team} has used ${reservation.spent_usd:,.2f} of its ${reservation.cap_usd:,.2f} budget "
                f"for {reservation.month}.",
                extra={
                    "team": team, "spent_usd": reservation.spent_usd, "cap_usd": reservation.cap_usd,
                    "month": reservation.month,
                },
            )  # fmt: skip
        return None

    def _rate_refusal(self, exchange: Exchange, decision: RateDecision) -> Response:
        if decision.mode == "fail_closed":
            return self._reject(
                exchange, 503, "limits_unavailable", "redis",
                "The shared rate-limit counters are out of reach and this gateway fails closed; retry shortly.",
                headers={"retry-after": "1"},
            )  # fmt: skip
        limits = self.settings.limits
        allowed = {"user": limits.user_per_hour, "team": limits.team_per_hour, "org": limits.org_per_hour}[
            decision.limit or "user"
        ]
        frees_at = datetime.fromtimestamp(self.limits.clock() + decision.retry_after_seconds, UTC).isoformat(
            timespec="seconds"
        )
        who = {"user": exchange.user, "team": exchange.team, "org": "the organisation"}[decision.limit or "user"]
        return self._reject(
            exchange, 429, "rate_limited", decision.limit,
            f"The {decision.limit} limit ({allowed} requests per rolling hour, {who}) is used up; "
            f"it frees up in {decision.retry_after_seconds} s, at {frees_at}.",
            headers={"retry-after": str(decision.retry_after_seconds)},
            extra={
                "limit": decision.limit, "retry_after_seconds": decision.retry_after_seconds,
                "frees_at": frees_at, "mode": decision.mode,
            },
        )  # fmt: skip

    def _worst_case_usd(self, exchange: Exchange, payload: Any, body: bytes) -> float:
        """What the request can cost at most: its input (estimated from its size) and all of max_tokens."""
        if exchange.invocation is None:
            return 0.0
        price = exchange.invocation.route.price
        max_tokens = None
        if isinstance(payload, dict):
            config = payload.get("inferenceConfig")
            max_tokens = payload.get("max_tokens") or (config.get("maxTokens") if isinstance(config, dict) else None)
        output_tokens = (
            max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else self.settings.limits.default_max_tokens
        )
        input_tokens = math.ceil(len(body) / 3)  # fewer than one token per 3 bytes of JSON, in practice
        return input_tokens / 1000 * price.input_per_1k_usd + output_tokens / 1000 * price.output_per_1k_usd

    async def _forward(self, request: Request, exchange: Exchange, action: str | None, body: bytes) -> Response:
        """A slot, the breaker, the vendor, and the answer checked on its way back."""
        settings = self.settings
        try:
            await asyncio.wait_for(self.slots.acquire(), settings.upstream.queue_wait_seconds)
        except TimeoutError:
            return self._reject(
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
                return self._reject(
                    exchange,
                    503,
                    "vendor_degraded",
                    "circuit_open",
                    "The AI vendor is degraded; the gateway is failing fast. Retry later.",
                    headers={"retry-after": retry},
                )
            path = (
                self.upstream.bedrock_path(exchange.invocation.target, action)
                if action and exchange.invocation
                else _path_and_query(request)
            )
            try:
                opened = await self.upstream.open(request.method, path, body, dict(request.headers))
            except UpstreamTimeoutError:
                self.breaker.record_failure()
                seconds = settings.upstream.first_byte_timeout_seconds
                return self._reject(
                    exchange,
                    504,
                    "upstream_timeout",
                    f"{seconds:g}s",
                    f"The AI vendor did not answer within {seconds:g} s.",
                )
            except UpstreamUnavailableError as error:
                self.breaker.record_failure()
                return self._reject(
                    exchange, 502, "upstream_unavailable", str(error), "The AI vendor could not be reached."
                )
            except BaseException:
                self.breaker.release_probe()
                raise
            exchange.first_byte_ms = opened.first_byte_ms
            if opened.response.status_code >= 500:
                self.breaker.record_failure()
            else:
                self.breaker.record_success()
            if exchange.stream and opened.response.status_code == 200:
                transform = STREAMS[action](self.policy) if action else ServerSentEventStream(self.policy)
                # Until the stream says otherwise, it ended early: the client went away.
                exchange.status, exchange.outcome = 200, "client_disconnected"
                streamed = _CheckedStream(
                    self._stream(exchange, opened.response, transform),
                    on_close=partial(self._end_stream, exchange, opened.response, transform, slot),
                    headers=self.upstream.returned_headers(opened.response),
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
            raw = await asyncio.wait_for(response.aread(), self._remaining(exchange))
        except TimeoutError:
            return self._reject(
                exchange, 504, "upstream_timeout", "stream_timeout_seconds", "The AI vendor's answer took too long."
            )
        finally:
            await response.aclose()
        exchange.upstream_ms = (time.perf_counter() - exchange.started) * 1000
        headers = self.upstream.returned_headers(response)
        if response.status_code != 200:
            exchange.outcome, exchange.reason = (
                "vendor_error",
                response.headers.get("x-amzn-errortype", str(response.status_code)),
            )
            return Response(raw, status_code=response.status_code, headers=headers)
        try:
            answer = json.loads(raw)
        except json.JSONDecodeError:
            return Response(raw, status_code=200, headers=headers)
        exchange.usage = usage_from_body(answer)
        answer, scan, exchange.completion = check_body(self.policy, answer, "completion")
        exchange.note_policy("completion", scan)
        if scan.action == "block":
            rules = ", ".join(scan.blocking_rules)
            exchange.completion = []
            return self._reject(
                exchange,
                403,
                "completion_blocked",
                rules,
                f"The answer contains content the policy blocks (rule {rules}).",
            )
        if scan.action == "redact":
            raw = json.dumps(answer).encode()
            headers.pop("content-length", None)
        return Response(raw, status_code=200, headers=headers)

    async def _stream(
        self, exchange: Exchange, response: httpx.Response, transform: CompletionStream
    ) -> AsyncGenerator[bytes]:
        """The answer as it arrives, each piece checked before it is passed on."""
        chunks = response.aiter_raw()
        try:
            while not transform.blocked:
                try:
                    chunk = await asyncio.wait_for(anext(chunks), self._remaining(exchange))
                except StopAsyncIteration:
                    tail = transform.finish()
                    if tail:
                        yield tail
                    exchange.outcome = "ok"
                    break
                except TimeoutError:
                    seconds = self.settings.upstream.stream_timeout_seconds
                    exchange.outcome, exchange.reason = "stream_timeout", f"{seconds:g}s"
                    break
                out = transform.feed(chunk)
                if out:
                    yield out
            if transform.blocked:
                exchange.outcome, exchange.reason = "completion_blocked", ", ".join(transform.scan.blocking_rules)
        except httpx.HTTPError as error:
            exchange.outcome, exchange.reason = "upstream_unavailable", str(error) or type(error).__name__

    async def _end_stream(
        self, exchange: Exchange, response: httpx.Response, transform: CompletionStream, slot: _Slot
    ) -> None:
        """After the stream, however it ended (finished, blocked, timed out, or the client left)."""
        slot.release()
        with contextlib.suppress(Exception):
            await response.aclose()
        exchange.upstream_ms = (time.perf_counter() - exchange.started) * 1000
        exchange.usage = transform.usage
        exchange.completion = ["".join(transform.text)]
        exchange.note_policy("completion", transform.scan)
        await self._finish(exchange)

    def _probe(self, identifier: str | None, request: Request, exchange: Exchange) -> Response:
        """Answer Claude Code's control-plane probes in Bedrock's shapes, listing only what this gateway serves."""
        try:
            if identifier is None:
                body = self.models.list_profiles(dict(request.query_params), exchange.team)
            else:
                body = self.models.get_profile(identifier, exchange.team)
        except ProbeError as error:
            return self._reject(
                exchange, error.status, "probe_refused", error.error_type, error.message,
                headers={"x-amzn-errortype": error.error_type},
            )  # fmt: skip
        return JSONResponse(body)

    async def _read_body(self, request: Request) -> bytes | None:
        """The body, or None as soon as it passes the size limit (checked before any rule runs)."""
        limit = self.settings.policy.max_request_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            return None
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return None
        return bytes(body)

    def _remaining(self, exchange: Exchange) -> float:
        return max(0.001, self.settings.upstream.stream_timeout_seconds - (time.perf_counter() - exchange.started))

    def _reject(
        self,
        exchange: Exchange,
        status: int,
        outcome: str,
        reason: str | None,
        message: str,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> JSONResponse:
        exchange.status, exchange.outcome, exchange.reason = status, outcome, reason
        body = {
            "error": outcome,
            "reason": reason,
            "message": message,
            "request_id": exchange.request_id,
            **(extra or {}),
        }
        return JSONResponse(body, status_code=status, headers=headers)

    # -- records -------------------------------------------------------------------------------

    async def _finish(self, exchange: Exchange) -> None:
        """Settle the budget reservation to what the request really cost, then record it."""
        try:
            if exchange.reservation is not None:
                await self.limits.settle(exchange.reservation, self._cost(exchange))
        finally:
            self._record(exchange)

    def _finish_soon(self, exchange: Exchange) -> None:
        """Finish off the request path: the answer does not wait for the settlement round trip.
        Shutdown waits for these before it flushes the audit file."""
        task = asyncio.create_task(self._finish(exchange))
        self.finishing.add(task)
        task.add_done_callback(self.finishing.discard)

    def _record(self, exchange: Exchange) -> None:
        if exchange.recorded:
            return
        exchange.recorded = True
        latency_ms = round((time.perf_counter() - exchange.started) * 1000, 2)
        cost = self._cost(exchange)
        invocation = exchange.invocation
        self.metrics.put(self._metrics_line(exchange, latency_ms, cost))
        if not exchange.audited:
            return
        record: dict[str, Any] = {
            "time": exchange.at,
            "request_id": exchange.request_id,
            "environment": self.settings.environment,
            "user": exchange.user,
            "team": exchange.team,
            "repository": exchange.repository,
            "model": exchange.model,
            # What was invoked for it: the team's own profile, or (flagged as a fallback) the shared one.
            "invoked": invocation.target if invocation else None,
            "profile_fallback": invocation.fallback if invocation else None,
            "method": exchange.method,
            "path": exchange.path,
            "status": exchange.status,
            "outcome": exchange.outcome,
            "reason": exchange.reason,
            "policy": exchange.policy,
            "stream": exchange.stream,
            "input_tokens": exchange.usage.input_tokens,
            "output_tokens": exchange.usage.output_tokens,
            "estimated_cost_usd": cost,
            "latency_ms": latency_ms,
            "first_byte_ms": _rounded(exchange.first_byte_ms),
            "upstream_ms": _rounded(exchange.upstream_ms),
            "breaker": self.breaker.state.value,
            "limits": exchange.limits,
            "budget": exchange.reservation.audit() if exchange.reservation else None,
            "prompt": "\n".join(exchange.prompt),
            "completion": "".join(exchange.completion),
        }
        # Serialized here, once, to its size cap: the sink writes exactly this line.
        self.audit.put(capped_line(record, self.settings.audit_record_limit_bytes))

    def _cost(self, exchange: Exchange) -> float:
        if exchange.invocation is None:
            return 0.0
        price = exchange.invocation.route.price
        usage = exchange.usage
        return round(
            usage.input_tokens / 1000 * price.input_per_1k_usd + usage.output_tokens / 1000 * price.output_per_1k_usd, 6
        )

    def _metrics_line(self, exchange: Exchange, latency_ms: float, cost: float) -> dict[str, Any]:
        """A CloudWatch embedded-metric-format line: the agent turns it into metrics, no API calls here."""
        limits = exchange.limits or {}
        metrics = {
            "Requests": (1, "Count"),
            "Rejections": (0 if exchange.outcome == "ok" else 1, "Count"),
            "InputTokens": (exchange.usage.input_tokens, "Count"),
            "OutputTokens": (exchange.usage.output_tokens, "Count"),
            "EstimatedCostUsd": (cost, "None"),
            "Latency": (latency_ms, "Milliseconds"),
            "BreakerOpen": (0 if self.breaker.state is BreakerState.CLOSED else 1, "Count"),
            "RateLimited": (1 if exchange.outcome == "rate_limited" else 0, "Count"),
            "BudgetRefused": (1 if exchange.outcome == "budget_exceeded" else 0, "Count"),
            "LimitFailOpen": (1 if limits.get("mode") == "fail_open" else 0, "Count"),
            "OrgSoftCapExceeded": (1 if limits.get("org_over_soft_cap") else 0, "Count"),
            "ProfileFallback": (1 if exchange.invocation and exchange.invocation.fallback else 0, "Count"),
            "UnauthenticatedProbes": (0 if exchange.audited else 1, "Count"),
        }
        if exchange.first_byte_ms is not None:
            metrics["UpstreamFirstByte"] = (round(exchange.first_byte_ms, 2), "Milliseconds")
        return {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": self.settings.metrics_namespace,
                        "Dimensions": [
                            ["Environment"],
                            ["Environment", "Team"],
                            ["Environment", "Outcome"],
                            ["Environment", "Limit"],
                            ["Environment", "LimitMode"],
                        ],
                        "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in metrics.items()],
                    }
                ],
            },
            "Environment": self.settings.environment,
            "Team": exchange.team or "unauthenticated",
            "Outcome": exchange.outcome,
            "Limit": (exchange.reason if exchange.outcome == "rate_limited" else None) or "none",
            "LimitMode": limits.get("mode") or "none",
            "Model": exchange.model,
            "InvokedModel": exchange.invocation.target if exchange.invocation else None,
            "RequestId": exchange.request_id,
            **{name: value for name, (value, _) in metrics.items()},
        }


class _CheckedStream(StreamingResponse):
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

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.released = False
        gateway.in_flight += 1

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.gateway.in_flight -= 1
            self.gateway.slots.release()


def _path_and_query(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def create_app(settings: GatewaySettings) -> Starlette:
    gateway = Gateway(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    app = Starlette(
        routes=[
            Route("/healthz", gateway.health, methods=["GET"]),
            Route("/{path:path}", gateway.handle, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ],
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    return app
