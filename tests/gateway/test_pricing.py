"""What a request costs when it asks for a service tier, optimised latency or the 1M-token context: the pure
arithmetic, then a running gateway pricing, refusing and filtering what clients send."""

from __future__ import annotations

import json

import pytest

from gateway.messages import Usage
from gateway.pricing import CostOptionError, Pricing, pricing_for
from gateway.settings import CostOptions, ModelPrice
from local.harness import RedisServer, prompt
from tests.gateway.conftest import GatewayFactory, RunningGateway

PRICE = ModelPrice(input_per_1k_usd=0.003, output_per_1k_usd=0.015)


def test_tiers_and_latency_multiply_the_price() -> None:
    usage = Usage(input_tokens=1000, output_tokens=1000)
    base = Pricing(PRICE).cost(usage)
    assert base == pytest.approx(0.018)
    options = CostOptions()
    priority = pricing_for(PRICE, options, {"x-amzn-bedrock-service-tier": "priority"}, {})
    assert priority.cost(usage) == pytest.approx(base * 1.75)
    flex_optimized = pricing_for(PRICE, options, {}, {"serviceTier": {"type": "flex"},
                                                      "performanceConfig": {"latency": "optimized"}})  # fmt: skip
    assert flex_optimized.cost(usage) == pytest.approx(base * 0.5 * 1.25)


def test_the_long_context_surcharge_applies_above_its_threshold_only() -> None:
    pricing = pricing_for(PRICE, CostOptions(), {"anthropic-beta": "context-1m-2025-08-07"}, {})
    assert pricing.cost(Usage(200_000, 1000)) == Pricing(PRICE).cost(Usage(200_000, 1000))
    above = Usage(300_000, 1000)
    assert pricing.cost(above) == pytest.approx(300 * 0.003 * 2.0 + 1 * 0.015 * 1.5)
    assert pricing.worst_case(1000, 1000) == pytest.approx(200.001 * 0.003 * 2.0 + 0.015 * 1.5, rel=1e-3)


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"x-amzn-bedrock-service-tier": "reserved"}, {}),
        ({}, {"performanceConfig": {"latency": "turbo"}}),
        ({}, {"serviceTier": {"type": ["priority"]}}),
    ],
)
def test_an_option_the_config_does_not_price_is_refused(headers: dict[str, str], body: dict[str, object]) -> None:
    with pytest.raises(CostOptionError, match="not allowed here"):
        pricing_for(PRICE, CostOptions(), headers, body)


def test_the_long_context_beta_can_be_switched_off() -> None:
    with pytest.raises(CostOptionError, match="1M-token context"):
        pricing_for(PRICE, CostOptions(long_context=None), {}, {"anthropic_beta": ["context-1m-2025-08-07"]})


# -- through a running gateway -------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(make_stack: GatewayFactory) -> RunningGateway:
    return make_stack()


@pytest.mark.usefixtures("reset_vendor")
def test_a_priority_request_is_billed_as_one(stack: RunningGateway) -> None:
    standard = stack.call()
    priority = stack.call(headers={"x-amzn-bedrock-service-tier": "priority"})
    assert priority.status_code == standard.status_code == 200
    assert stack.vendor_last()["last"]["headers"]["x-amzn-bedrock-service-tier"] == "priority"
    cost = [stack.audit(r.headers["x-request-id"])["estimated_cost_usd"] for r in (standard, priority)]
    assert cost[1] == pytest.approx(cost[0] * 1.75, abs=2e-6)  # both rounded to micro-dollars


@pytest.mark.usefixtures("reset_vendor")
def test_an_unpriced_tier_is_refused_before_the_vendor(stack: RunningGateway) -> None:
    before = stack.vendor_last()["requests"]
    response = stack.call(headers={"x-amzn-bedrock-service-tier": "reserved"})
    assert (response.status_code, response.json()["error"]["type"]) == (400, "option_not_allowed")
    assert stack.vendor_last()["requests"] == before


@pytest.mark.usefixtures("reset_vendor")
def test_bedrock_headers_outside_the_allowlist_are_not_passed_on(stack: RunningGateway) -> None:
    response = stack.call(
        headers={"x-amzn-bedrock-guardrailidentifier": "gr-other", "x-amzn-bedrock-projectidentifier": "proj-x"}
    )
    assert response.status_code == 200
    sent = stack.vendor_last()["last"]["headers"]
    assert not any(name.startswith("x-amzn-bedrock-g") or "project" in name for name in sent)
    record = stack.audit(response.headers["x-request-id"])
    assert record["dropped_headers"] == ["x-amzn-bedrock-guardrailidentifier", "x-amzn-bedrock-projectidentifier"]


@pytest.mark.usefixtures("reset_vendor")
def test_the_long_context_beta_reserves_its_surcharge(make_stack: GatewayFactory, fresh_redis: RedisServer) -> None:
    budgeted = make_stack(limits__enabled=True, **fresh_redis.settings())
    plain = budgeted.call(body=prompt("hi"))
    long = budgeted.call(body=prompt("hi", anthropic_beta=["context-1m-2025-08-07"]))
    reserved = [budgeted.audit(r.headers["x-request-id"])["budget"]["reserved_usd"] for r in (plain, long)]
    assert reserved[1] > 100 * reserved[0]  # as if 200k tokens of input at twice the price
    assert json.loads(budgeted.vendor_last()["last"]["body"])["anthropic_beta"] == ["context-1m-2025-08-07"]
