"""Limits as running processes: two gateways sharing one real redis-server, which is killed mid-run."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from local.harness import RedisServer, prompt
from tests.gateway.conftest import GatewayFactory, RunningGateway

pytestmark = pytest.mark.usefixtures("reset_vendor")


def pair(make_stack: GatewayFactory, redis: RedisServer, **changes: Any) -> tuple[RunningGateway, RunningGateway]:
    settings = {"limits__enabled": True, "redis__retry_after_seconds": 0.2, **redis.settings(), **changes}
    return make_stack(**settings), make_stack(**settings)


def call(stack: RunningGateway, user: str, team: str = "payments", **kwargs: Any) -> httpx.Response:
    return stack.call(token=stack.keys.token("k1", user=user, team=team), **kwargs)


def test_the_121st_request_is_refused_by_either_gateway(make_stack: GatewayFactory, fresh_redis: RedisServer) -> None:
    a, b = pair(make_stack, fresh_redis)
    for i in range(120):
        response = call(a if i % 2 else b, "ana@example.com")
        assert response.status_code == 200, (i, response.text)
    for gateway in (a, b):
        refused = call(gateway, "ana@example.com")
        assert refused.status_code == 429
        body = refused.json()
        assert (body["error"]["type"], body["limit"], body["mode"]) == ("rate_limited", "user", "shared")
        assert "120 requests per rolling hour" in body["message"] and body["frees_at"]
        assert 3500 < int(refused.headers["retry-after"]) <= 3600
        record = gateway.audit(refused.headers["x-request-id"])
        assert (record["status"], record["outcome"], record["reason"]) == (429, "rate_limited", "user")
        assert record["limits"]["mode"] == "shared"
        line = gateway.metrics(refused.headers["x-request-id"])
        assert (line["RateLimited"], line["Limit"], line["LimitMode"]) == (1, "user", "shared")
    assert call(a, "ben@example.com").status_code == 200


def test_team_and_org_limits_across_gateways(make_stack: GatewayFactory, fresh_redis: RedisServer) -> None:
    a, b = pair(make_stack, fresh_redis, limits__team_per_hour=3, limits__org_per_hour=5, limits__org_cap="hard")
    for i, user in enumerate(("u1", "u2", "u3")):
        assert call(a if i % 2 else b, user).status_code == 200
    team_refused = call(a, "u4")
    assert (team_refused.status_code, team_refused.json()["limit"]) == (429, "team")
    assert call(b, "u4", team="platform").status_code == 200  # u4 was not counted when refused
    assert call(a, "u5", team="platform").status_code == 200  # the org's 5 are now used
    org_refused = call(b, "u6", team="mobile")
    assert (org_refused.status_code, org_refused.json()["limit"]) == (429, "org")


def test_soft_org_cap_passes_and_is_flagged(make_stack: GatewayFactory, fresh_redis: RedisServer) -> None:
    (a, _) = pair(make_stack, fresh_redis, limits__org_per_hour=1, limits__org_cap="soft")
    assert call(a, "u1").status_code == 200
    over = call(a, "u2")
    assert over.status_code == 200
    assert a.audit(over.headers["x-request-id"])["limits"]["org_over_soft_cap"] is True
    assert a.metrics(over.headers["x-request-id"])["OrgSoftCapExceeded"] == 1


def test_a_team_at_its_budget_gets_402(make_stack: GatewayFactory, fresh_redis: RedisServer) -> None:
    # A cap below one request's real cost: the first request (nothing spent yet) passes and settles past
    # the cap; the next is refused.
    cap = 0.0001
    a, b = pair(make_stack, fresh_redis, team_budgets_usd={"payments": cap})
    first = call(a, "ana@example.com")
    assert first.status_code == 200
    record = a.audit(first.headers["x-request-id"])
    assert record["budget"]["team"] == "payments"
    assert record["budget"]["reserved_usd"] >= record["estimated_cost_usd"] > cap  # worst case held, then settled
    refused = call(b, "ben@example.com", body=prompt("hello"))
    assert refused.status_code == 402
    body = refused.json()
    assert (body["error"]["type"], body["team"], body["cap_usd"]) == ("budget_exceeded", "payments", cap)
    assert body["spent_usd"] == pytest.approx(record["estimated_cost_usd"])  # settled to the real cost
    assert "Team payments has used $" in body["message"] and "budget for 20" in body["message"]
    assert call(b, "cy@example.com", team="mobile").status_code == 200  # no cap for mobile


def test_fail_open_when_redis_dies_then_recovers(make_stack: GatewayFactory, fresh_redis: RedisServer) -> None:
    a, b = pair(make_stack, fresh_redis, limits__user_per_hour=6)
    assert call(a, "ana@example.com").status_code == 200
    fresh_redis.kill()
    health = httpx.get(a.gateway.url + "/healthz").json()
    assert health["redis"] == {"ok": False, "fail_mode": "open"} and health["status"] == "ok"
    for _ in range(3):  # 6 per hour / a fleet of at least 2 = 3 per gateway while Redis is away
        response = call(a, "ana@example.com")
        assert response.status_code == 200
        assert a.audit(response.headers["x-request-id"])["limits"]["mode"] == "fail_open"
        assert a.metrics(response.headers["x-request-id"])["LimitFailOpen"] == 1
    refused = call(a, "ana@example.com")
    assert (refused.status_code, refused.json()["mode"]) == (429, "fail_open")
    assert call(b, "ana@example.com").status_code == 200  # the other gateway has its own share

    fresh_redis.start()
    time.sleep(0.3)  # past redis.retry_after_seconds: the gateways try Redis again
    recovered = call(b, "ben@example.com")
    assert recovered.status_code == 200
    assert b.audit(recovered.headers["x-request-id"])["limits"]["mode"] == "shared"
    assert httpx.get(b.gateway.url + "/healthz").json()["redis"]["ok"] is True


def test_fail_closed_when_redis_dies_then_recovers(make_stack: GatewayFactory, fresh_redis: RedisServer) -> None:
    a, _ = pair(make_stack, fresh_redis, limits__fail_mode="closed")
    assert call(a, "ana@example.com").status_code == 200
    fresh_redis.kill()
    refused = call(a, "ana@example.com")
    assert refused.status_code == 503
    body = refused.json()
    assert body["error"]["type"] == "limits_unavailable" and "fails closed" in body["message"]
    assert a.audit(refused.headers["x-request-id"])["limits"]["mode"] == "fail_closed"
    fresh_redis.start()
    time.sleep(0.3)
    assert call(a, "ana@example.com").status_code == 200


def test_policy_refused_requests_count_against_the_rate_limit(
    make_stack: GatewayFactory, fresh_redis: RedisServer
) -> None:
    """Otherwise a client stuck on a blocked prompt could hammer the gateway (and its policy engine) for free."""
    a, _ = pair(make_stack, fresh_redis, limits__user_per_hour=3)
    for _ in range(3):
        blocked = call(a, "ana@example.com", body=prompt("key AKIAZ7QXMP3VBN2LKW4R"))
        assert (blocked.status_code, blocked.json()["error"]["type"]) == (400, "policy_blocked")
    refused = call(a, "ana@example.com")
    assert (refused.status_code, refused.json()["limit"]) == (429, "user")


def test_requests_refused_before_the_policy_count_too_and_an_exhausted_caller_hears_so(
    make_stack: GatewayFactory, fresh_redis: RedisServer
) -> None:
    """A request refused before its budget is reserved (not JSON, out of scope) counts on its own; past the limit,
    the answer is 429 whatever else is wrong with the request."""
    a, _ = pair(make_stack, fresh_redis, limits__user_per_hour=2)
    assert call(a, "ana@example.com", body=b"{not json").json()["error"]["type"] == "malformed_body"
    assert call(a, "ana@example.com", body=prompt("hi", max_tokens=0)).json()["error"]["type"] == "invalid_max_tokens"
    for body in (b"{not json", prompt("hello")):
        refused = call(a, "ana@example.com", body=body)
        assert (refused.status_code, refused.json()["limit"]) == (429, "user")
        record = a.audit(refused.headers["x-request-id"])
        assert record["outcome"] == "rate_limited" and record["budget"] is None


@pytest.mark.parametrize("max_tokens", [10**18, 0, -1, 1.5, "100", True, None, 64_001])
def test_max_tokens_outside_the_models_range_is_refused_before_the_budget(
    make_stack: GatewayFactory, fresh_redis: RedisServer, max_tokens: Any
) -> None:
    """10^18 once overflowed the reservation script after it had written, corrupting the team's month."""
    a, b = pair(make_stack, fresh_redis, team_budgets_usd={"payments": 100.0})
    before = a.vendor_last()["requests"]
    refused = call(a, "ana@example.com", body=prompt("hello", max_tokens=max_tokens))
    assert refused.status_code == 400, refused.text
    assert (refused.json()["error"]["type"], refused.headers["x-amzn-errortype"]) == (
        "invalid_max_tokens",
        "ValidationException",
    )
    assert "from 1 to 64000" in refused.json()["message"]  # the model's own limit, from the table of models
    assert a.vendor_last()["requests"] == before
    fine = call(b, "ben@example.com", body=prompt("hello", max_tokens=64_000))
    assert fine.status_code == 200
    assert b.audit(fine.headers["x-request-id"])["budget"]["over_cap"] is False
