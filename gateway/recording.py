"""The end of every request: settle its budget reservation, then one audit record and one metrics line."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from gateway.audit import capped_line
from gateway.breaker import BreakerState, CircuitBreaker
from gateway.exchange import Exchange
from gateway.limits import Limits
from gateway.settings import GatewaySettings
from gateway.sinks import JsonLinesSink

log = logging.getLogger("aigw.gateway")


class Recorder:
    def __init__(self, settings: GatewaySettings, limits: Limits, breaker: CircuitBreaker) -> None:
        self.settings = settings
        self.limits = limits
        self.breaker = breaker
        self.audit = JsonLinesSink(settings.audit.path, settings.audit.queue_size, "audit")
        self.metrics = JsonLinesSink(settings.metrics.path, settings.metrics.queue_size, "metrics")
        self.telemetry = JsonLinesSink(settings.telemetry.path, settings.telemetry.queue_size, "telemetry")
        # Requests whose reservation waits to be settled, and the task settling them in batches.
        self._settling: list[Exchange] = []
        self._settler: asyncio.Task[None] | None = None

    @property
    def sinks(self) -> tuple[JsonLinesSink, ...]:
        return self.audit, self.metrics, self.telemetry

    def start(self) -> None:
        for sink in self.sinks:
            sink.start()

    async def drain(self) -> None:
        """Wait for the settlements still under way (they need Redis: before it closes)."""
        while self._settler is not None:
            await asyncio.shield(self._settler)

    async def close(self) -> None:
        """Flush the files: the last thing the process does."""
        for sink in self.sinks:
            await asyncio.to_thread(sink.close)

    async def finish(self, exchange: Exchange) -> None:
        """Settle the budget reservation to what the request really cost, then record it."""
        await self._settle([exchange])

    def finish_soon(self, exchange: Exchange) -> None:
        """Finish off the request path: the answer does not wait for the settlement. Requests that finish while
        one batch is being settled go together in the next (one pipelined round trip for all of them)."""
        if exchange.reservation is None or exchange.reservation.settled:
            self.record(exchange)
            return
        self._settling.append(exchange)
        if self._settler is None:
            self._settler = asyncio.create_task(self._settle_batches())

    async def _settle_batches(self) -> None:
        try:
            while self._settling:
                batch, self._settling = self._settling, []
                await self._settle(batch)
        finally:
            self._settler = None

    async def _settle(self, exchanges: list[Exchange]) -> None:
        try:
            await self.limits.settle_all([(e.reservation, cost(e)) for e in exchanges if e.reservation is not None])
        except Exception:  # a bug (LimitsScriptError, or any other): logged; the records still carry each cost
            log.exception("settling the budget reservations of %s failed", [e.request_id for e in exchanges])
        finally:
            for exchange in exchanges:
                self.record(exchange)

    def record(self, exchange: Exchange) -> None:
        if exchange.recorded:
            return
        exchange.recorded = True
        latency_ms = round((time.perf_counter() - exchange.started) * 1000, 2)
        spent = cost(exchange)
        invocation = exchange.invocation
        self.metrics.put(self._metrics_line(exchange, latency_ms, spent))
        if not exchange.audited:
            return
        record: dict[str, Any] = {
            "time": exchange.at,
            "request_id": exchange.request_id,
            "environment": self.settings.environment,
            "user": exchange.user,
            "team": exchange.team,
            "canary": exchange.canary,
            "repository": exchange.repository,
            "model": exchange.model,
            # What was invoked for it: the team's own profile, or (flagged as a fallback) the shared one.
            "invoked": invocation.target if invocation else None,
            "profile_fallback": invocation.fallback if invocation else None,
            "api": exchange.api,
            # The client's own word (Claude Code's session and agent ids): groups a session's requests.
            "client": exchange.client,
            "method": exchange.method,
            "path": exchange.path,
            "status": exchange.status,
            "outcome": exchange.outcome,
            "reason": exchange.reason,
            "policy": exchange.policy,
            "dropped_headers": exchange.dropped_headers,
            "stream": exchange.stream,
            "input_tokens": exchange.usage.input_tokens,
            "output_tokens": exchange.usage.output_tokens,
            "usage_estimated": exchange.usage_estimated,
            "estimated_cost_usd": spent,
            "latency_ms": latency_ms,
            "first_byte_ms": _rounded(exchange.first_byte_ms),
            "upstream_ms": _rounded(exchange.upstream_ms),
            "breaker": self.breaker.state.value,
            "limits": exchange.limits,
            "budget": exchange.reservation.audit() if exchange.reservation else None,
            "prompt": "\n".join(exchange.prompt),
            "blocked_body_sha256": exchange.blocked_sha256,
            "completion": "".join(exchange.completion),
        }
        # Serialized here, once, to its size cap: the sink writes exactly this line.
        self.audit.put(capped_line(record, self.settings.audit_record_limit_bytes))

    def _metrics_line(self, exchange: Exchange, latency_ms: float, spent: float) -> dict[str, Any]:
        """A CloudWatch embedded-metric-format line: the agent turns it into metrics, no API calls here."""
        limits = exchange.limits or {}
        metrics = {
            "Requests": (1, "Count"),
            "Rejections": (0 if exchange.outcome == "ok" else 1, "Count"),
            "InputTokens": (exchange.usage.input_tokens, "Count"),
            "OutputTokens": (exchange.usage.output_tokens, "Count"),
            "EstimatedCostUsd": (spent, "None"),
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
                            ["Environment", "Model"],  # latency by model on the service dashboard
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
            "Model": exchange.model or "none",  # a dimension's value: never null
            "InvokedModel": exchange.invocation.target if exchange.invocation else None,
            "RequestId": exchange.request_id,
            **{name: value for name, (value, _) in metrics.items()},
        }


def cost(exchange: Exchange) -> float:
    """What the request cost at the model's configured prices and the options it asked for."""
    return exchange.pricing.cost(exchange.usage) if exchange.pricing else 0.0


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
