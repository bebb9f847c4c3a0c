"""Rate limits and budgets against a real redis-server, with the clock injected (no sleeps).

Two `Limits` objects stand for two gateway processes: each has its own Redis connection and its own
fallback, and they share only what is in Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from config import load_config
from config.render import gateway_settings
from gateway.limits import WINDOW_MS, Limits, LimitsScriptError, Reservation
from gateway.settings import GatewaySettings
from local.harness import RedisServer

T0 = datetime(2026, 11, 26, 10, 59, 0, tzinfo=UTC).timestamp()  # a minute before the top of the hour


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def reserve(limits: Limits, team: str, amount_usd: float) -> Reservation | None:
    """A priced request of its own user (so only the budget can refuse it): its reservation."""
    decision, reservation = await limits.admit(f"u-{rid()}", team, rid(), amount_usd)
    assert decision.allowed
    return reservation


def settings_for(redis: RedisServer, **limits: Any) -> GatewaySettings:
    data = gateway_settings(load_config("dev")).model_dump(mode="json")
    data["environment"] = f"t{uuid.uuid4().hex[:8]}"  # keys of one test only
    data["redis"].update(host="127.0.0.1", port=redis.port, tls=False, retry_after_seconds=0)
    data["limits"].update(limits)
    return GatewaySettings.model_validate(data)


def run(redis: RedisServer, test: Callable[..., Awaitable[None]], *, processes: int = 2, **limits: Any) -> None:
    """Run `test(clock, limits_a, limits_b, …)` with `processes` Limits sharing one Redis."""
    settings = settings_for(redis, **limits)
    clock = Clock()

    async def main() -> None:
        instances = [Limits(settings, clock) for _ in range(processes)]
        for instance in instances:
            instance.connect()
        try:
            await test(clock, *instances)
        finally:
            for instance in instances:
                await instance.close()

    asyncio.run(main())


def rid() -> str:
    return uuid.uuid4().hex


def test_121st_request_of_a_user_is_refused_whichever_process_serves_it(fresh_redis: RedisServer) -> None:
    async def test(clock: Clock, a: Limits, b: Limits) -> None:
        for i in range(120):
            decision = await (a if i % 2 else b).check_rate("ana", "payments", rid())
            assert decision.allowed and decision.mode == "shared"
            clock.now += 1
        for process in (a, b):
            refused = await process.check_rate("ana", "payments", rid())
            assert (refused.allowed, refused.limit, refused.mode) == (False, "user", "shared")
            assert refused.retry_after_seconds == 3600 - 120  # when the first of the 120 leaves the hour
        assert (await a.check_rate("ben", "payments", rid())).allowed  # other users are not affected

    run(fresh_redis, test)


def test_the_rolling_hour_is_exact_at_the_boundary(fresh_redis: RedisServer) -> None:
    async def test(clock: Clock, a: Limits, b: Limits) -> None:
        for _ in range(120):  # all at 10:59:00
            assert (await a.check_rate("ana", "payments", rid())).allowed
        clock.now = T0 + 61  # 11:00:01: a fixed hourly window would have reset here
        assert not (await b.check_rate("ana", "payments", rid())).allowed
        clock.now = T0 + 3599.999
        assert not (await b.check_rate("ana", "payments", rid())).allowed
        clock.now = T0 + 3600  # exactly an hour after: those 120 no longer count
        assert (await b.check_rate("ana", "payments", rid())).allowed

    run(fresh_redis, test)


def test_a_request_refused_by_the_team_limit_uses_up_nothing(fresh_redis: RedisServer) -> None:
    async def test(clock: Clock, a: Limits, b: Limits) -> None:
        assert (await a.check_rate("ana", "payments", rid())).allowed
        assert (await a.check_rate("ana", "payments", rid())).allowed
        assert (await b.check_rate("ben", "payments", rid())).allowed  # the team's 3 are used
        refused = await b.check_rate("ana", "payments", rid())
        assert (refused.allowed, refused.limit) == (False, "team")
        # Had the refused request counted against ana (2 + 1 = 3), this would be refused as "user".
        assert (await a.check_rate("ana", "platform", rid())).allowed

    run(fresh_redis, test, user_per_hour=3, team_per_hour=3)


def test_org_soft_cap_flags_and_hard_cap_refuses(fresh_redis: RedisServer) -> None:
    async def soft(clock: Clock, a: Limits, b: Limits) -> None:
        for user in ("u1", "u2"):
            decision = await a.check_rate(user, "payments", rid())
            assert decision.allowed and not decision.org_over_soft_cap
        over = await b.check_rate("u3", "platform", rid())
        assert over.allowed and over.org_over_soft_cap

    async def hard(clock: Clock, a: Limits, b: Limits) -> None:
        for user in ("u1", "u2"):
            assert (await a.check_rate(user, "payments", rid())).allowed
        refused = await b.check_rate("u3", "platform", rid())
        assert (refused.allowed, refused.limit) == (False, "org")

    run(fresh_redis, soft, org_per_hour=2, org_cap="soft")
    run(fresh_redis, hard, org_per_hour=2, org_cap="hard")


def test_budget_reservations_of_concurrent_requests_never_overspend(fresh_redis: RedisServer) -> None:
    cap = load_config("dev").budgets.team_monthly_usd["payments"]
    worst_case = cap * 0.3

    async def test(clock: Clock, a: Limits, b: Limits) -> None:
        reservations = await asyncio.gather(*(reserve(process, "payments", worst_case) for process in (a, b) * 10))
        admitted = [r for r in reservations if r is not None and r.allowed]
        refused = [r for r in reservations if r is not None and not r.allowed]
        assert len(admitted) == 4 and len(refused) == 16  # 0, .3, .6, .9 of the cap were free; then it is reached
        month = datetime.fromtimestamp(T0, UTC).strftime("%Y-%m")
        settled, reserved = await a.spent("payments", month)
        assert settled == 0 and reserved == pytest.approx(4 * worst_case)
        assert reserved <= cap + worst_case  # at most one request's reservation beyond the cap
        assert all(r.spent_usd >= cap for r in refused) and refused[0].cap_usd == cap
        fresh_redis.command("SCRIPT", "FLUSH")  # as after a Redis restart: the settlement loads its script again
        await a.settle_all([(reservation, 12.34) for reservation in admitted[:3]])  # one pipelined round trip
        await b.settle_all([(admitted[3], 12.34), (admitted[0], 99.0)])  # settled once only: the 99 is ignored
        settled, reserved = await a.spent("payments", month)
        assert settled == pytest.approx(4 * 12.34) and reserved == 0
        assert (await reserve(b, "payments", worst_case)).allowed  # type: ignore[union-attr]

    run(fresh_redis, test)


def test_a_reservation_never_settled_expires(fresh_redis: RedisServer) -> None:
    async def test(clock: Clock, a: Limits, b: Limits) -> None:
        cap = a.settings.team_budgets_usd["payments"]
        held = await reserve(a, "payments", cap)  # then its process dies
        assert held is not None and held.allowed
        assert not (await reserve(b, "payments", 1.0)).allowed  # type: ignore[union-attr]
        clock.now += a.settings.limits.reservation_ttl_seconds + 1
        assert (await reserve(b, "payments", 1.0)).allowed  # type: ignore[union-attr]

    run(fresh_redis, test)


def test_warn_mode_lets_a_team_over_its_cap_through_flagged(fresh_redis: RedisServer) -> None:
    async def test(clock: Clock, a: Limits, b: Limits) -> None:
        cap = a.settings.team_budgets_usd["payments"]
        await reserve(a, "payments", cap)
        over = await reserve(b, "payments", 1.0)
        assert over is not None and over.allowed and over.over_cap

    run(fresh_redis, test, budget_mode="warn")


def test_teams_without_a_budget_are_not_capped(fresh_redis: RedisServer) -> None:
    async def test(clock: Clock, a: Limits) -> None:
        assert await reserve(a, "mobile", 10_000) is None

    run(fresh_redis, test, processes=1)


def test_fail_open_falls_back_to_a_per_process_share_and_recovers(fresh_redis: RedisServer) -> None:
    async def test(clock: Clock, a: Limits, b: Limits) -> None:
        assert (await a.check_rate("ana", "payments", rid())).mode == "shared"
        fresh_redis.kill()
        share = 120 // (a.settings.fleet_min_instances * a.settings.workers)  # each process of the smallest fleet
        assert a.settings.limits.user_per_hour == 120 and share == 15  # 2 instances of 4 workers
        for _ in range(share):
            decision = await a.check_rate("ana", "payments", rid())
            assert decision.allowed and decision.mode == "fail_open"
        refused = await a.check_rate("ana", "payments", rid())
        assert (refused.allowed, refused.limit, refused.mode) == (False, "user", "fail_open")
        assert (await b.check_rate("ana", "payments", rid())).allowed  # b has its own share
        budget = await reserve(a, "payments", 1.0)
        assert budget is not None and budget.allowed and budget.mode == "fail_open"
        fresh_redis.start()  # back: the next request uses the shared counters again
        assert (await a.check_rate("ana", "payments", rid())).mode == "shared"

    run(fresh_redis, test)


def test_fail_closed_refuses_while_redis_is_away_and_recovers(fresh_redis: RedisServer) -> None:
    async def test(clock: Clock, a: Limits) -> None:
        fresh_redis.kill()
        refused = await a.check_rate("ana", "payments", rid())
        assert (refused.allowed, refused.mode) == (False, "fail_closed")
        assert not await a.reachable()
        fresh_redis.start()
        assert await a.reachable()
        assert (await a.check_rate("ana", "payments", rid())).allowed

    run(fresh_redis, test, processes=1, fail_mode="closed")


def test_the_auth_token_comes_from_the_configured_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Locally an environment variable; in AWS a Secrets Manager secret (same code path after reading)."""
    server = RedisServer(tmp_path, password="s3cret-token").start()
    try:
        base = settings_for(server).model_dump(mode="json")
        base["redis"]["auth_token_env"] = "AIGW_TEST_REDIS_TOKEN"

        async def decide(token: str) -> str:
            monkeypatch.setenv("AIGW_TEST_REDIS_TOKEN", token)
            limits = Limits(GatewaySettings.model_validate(base), Clock())
            limits.connect()
            try:
                return (await limits.check_rate("ana", "payments", rid())).mode
            finally:
                await limits.close()

        assert asyncio.run(decide("s3cret-token")) == "shared"
        assert asyncio.run(decide("wrong")) == "fail_open"  # refused AUTH: treated as out of reach
    finally:
        server.kill()


@pytest.mark.parametrize("amount", [10**18, -5, "12abc", 2**53 + 1])
def test_the_reservation_script_checks_before_it_writes(fresh_redis: RedisServer, amount: Any) -> None:
    """A refused script changes nothing, and is a bug to report (500), never "Redis is down"."""

    async def test(clock: Clock, a: Limits) -> None:
        keys = [f"rate:{name}" for name in ("user", "team", "org")] + a._budget_keys("payments", "2026-11")
        args = [int(clock() * 1000), WINDOW_MS, 10**9, 10**9, 10**9, 0, rid(), 10**9, amount, 900_000, 1, 3600]
        with pytest.raises(LimitsScriptError, match="out of range"):
            await a._run("admit", keys, args)
        assert a.client is not None and await a.client.exists(*keys) == 0  # not even counted
        reservation = await reserve(a, "payments", 0.5)
        assert reservation is not None and reservation.mode == "shared"  # Redis is not considered down

    run(fresh_redis, test, processes=1)


def test_a_busy_loop_does_not_make_redis_look_down(fresh_redis: RedisServer) -> None:
    """Redis answers at once; this process's loop is busy with 100 other tasks for a few seconds. Only time the
    loop was free counts towards the 250 ms timeout, so the check is still shared, not the local fallback."""

    async def test(clock: Clock, a: Limits) -> None:
        busy = True

        async def other_work() -> None:
            while busy:
                time.sleep(0.005)
                await asyncio.sleep(0)

        workers = [asyncio.create_task(other_work()) for _ in range(100)]
        await asyncio.sleep(0)
        started = time.perf_counter()
        decisions = [await a.check_rate(f"u{i}", "payments", rid()) for i in range(3)]
        waited = time.perf_counter() - started
        busy = False
        await asyncio.gather(*workers)
        assert waited > 2 * a.settings.redis.timeout_seconds  # each answer sat behind the other work
        assert [(d.allowed, d.mode) for d in decisions] == [(True, "shared")] * 3

    run(fresh_redis, test, processes=1)


def test_redis_that_does_not_answer_times_out_on_the_loops_own_time(fresh_redis: RedisServer) -> None:
    async def test(clock: Clock, a: Limits) -> None:
        await a.check_rate("warm", "payments", rid())
        fresh_redis.pause()
        try:
            started = time.perf_counter()
            decision = await a.check_rate("ana", "payments", rid())
            waited = time.perf_counter() - started
        finally:
            fresh_redis.resume()
        assert decision.mode == "fail_open"
        assert a.settings.redis.timeout_seconds <= waited < 5.0

    run(fresh_redis, test, processes=1)


def test_one_script_counts_the_rate_and_holds_the_budget_together(fresh_redis: RedisServer) -> None:
    """A request the budget refuses still counts against the rate limits; one the rate limits refuse holds nothing."""

    async def test(clock: Clock, a: Limits) -> None:
        cap = a.settings.team_budgets_usd["payments"]
        month = datetime.fromtimestamp(T0, UTC).strftime("%Y-%m")
        decision, held = await a.admit("ana", "payments", rid(), cap)  # the whole month at once
        assert decision.allowed and held is not None and held.allowed
        decision, refused = await a.admit("ana", "payments", rid(), 1.0)
        assert decision.allowed and refused is not None and not refused.allowed  # the budget said no ...
        assert not (await a.check_rate("ana", "payments", rid())).allowed  # ... yet it was the second of 2
        _, reserved = await a.spent("payments", month)
        assert reserved == pytest.approx(cap)
        decision, nothing = await a.admit("ana", "payments", rid(), 1.0)
        assert (decision.allowed, decision.limit, nothing) == (False, "user", None)
        assert (await a.spent("payments", month))[1] == pytest.approx(cap)  # the rate-refused one held nothing

    run(fresh_redis, test, processes=1, user_per_hour=2)
