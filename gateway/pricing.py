"""What a request costs: the model's price, times what the request asked for that changes it (a service
tier, optimised latency, the 1M-token context beta). Options the configuration does not price are refused,
so no request can cost more than its reservation said."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.messages import Usage
from gateway.settings import CostOptions, LongContextPricing, ModelPrice

SERVICE_TIER_HEADER = "x-amzn-bedrock-service-tier"
LATENCY_HEADER = "x-amzn-bedrock-performanceconfig-latency"


class CostOptionError(ValueError):
    """A request asked for a tier, latency or beta this gateway does not allow."""


@dataclass(frozen=True)
class Pricing:
    price: ModelPrice
    factor: float = 1.0  # the service tier's times the latency's
    long_context: LongContextPricing | None = None  # when the request asked for the 1M-token context

    def cost(self, usage: Usage) -> float:
        """US dollars for this usage."""
        input_factor = output_factor = self.factor
        if self.long_context and usage.input_tokens > self.long_context.above_input_tokens:
            input_factor *= self.long_context.input_factor
            output_factor *= self.long_context.output_factor
        return round(
            usage.input_tokens / 1000 * self.price.input_per_1k_usd * input_factor
            + usage.output_tokens / 1000 * self.price.output_per_1k_usd * output_factor,
            6,
        )

    def worst_case(self, request_bytes: int, max_tokens: int) -> float:
        """The most the request can cost: its input estimated from its size, all of max_tokens, and the long
        context's surcharge whenever the request asked for it."""
        usage = Usage(input_tokens=math.ceil(request_bytes / 3), output_tokens=max_tokens)
        if self.long_context:
            usage.input_tokens = max(usage.input_tokens, self.long_context.above_input_tokens + 1)
        return self.cost(usage)


def pricing_for(price: ModelPrice, options: CostOptions, headers: Mapping[str, str], payload: Any) -> Pricing:
    """The request's pricing; raises CostOptionError for an option the configuration does not price."""
    body = payload if isinstance(payload, dict) else {}
    tier = headers.get(SERVICE_TIER_HEADER) or _nested(body, "serviceTier", "type") or "default"
    latency = headers.get(LATENCY_HEADER) or _nested(body, "performanceConfig", "latency") or "standard"
    factor = 1.0
    for what, value, table in (("service tier", tier, options.service_tiers), ("latency", latency, options.latency)):
        if not isinstance(value, str) or value.lower() not in table:
            raise CostOptionError(f"The {what} {str(value)[:40]!r} is not allowed here; allowed: {', '.join(table)}.")
        factor *= table[value.lower()]
    betas = [*_list(body.get("anthropic_beta")), *headers.get("anthropic-beta", "").split(",")]
    long_context = options.long_context
    asked = long_context is not None and any(b.strip().startswith(long_context.beta_prefix) for b in betas)
    if long_context is None and any(b.strip().startswith("context-1m") for b in betas):
        raise CostOptionError("The 1M-token context beta is not allowed here.")
    return Pricing(price, factor, long_context if asked else None)


def _nested(body: dict[str, Any], key: str, inner: str) -> Any:
    value = body.get(key)
    return value.get(inner) if isinstance(value, dict) else None


def _list(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []
