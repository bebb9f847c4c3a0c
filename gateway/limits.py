"""Fleet-wide rate limits and team budget caps, on shared counters in Redis.

Counted in each process's memory, a limit is wrong by the number of instances; here every check is
one atomic Lua script over the shared counters, so 2 or 6 instances enforce exactly one limit. When
Redis is out of reach the fail mode decides: "open" falls back to a per-process limiter at each
limit divided by the fleet's minimum size (flagged on every decision), "closed" refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import redis.asyncio as aioredis
from botocore.session import Session
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from gateway.settings import GatewaySettings, RateLimits, RedisSettings

WINDOW_MS = 3_600_000
TIMEOUT_SLICE = 0.05
MICRO = 1_000_000  # budgets are counted in micro-dollars: integers, exact
LIMITS = ("user", "team", "org")

# KEYS: user, team, org windows. ARGV: now_ms, window_ms, user, team, org limits, org hard (1/0), member.
# Each window is a sorted set of request ids scored by time: exact over any rolling hour. A request
# that fails one limit is added to none. Run twice for one request (a retry after a timeout), it is
# counted once.
RATE_SCRIPT = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
if redis.call('ZSCORE', KEYS[1], ARGV[7]) then return {0, 0, 0, 0} end
local counts = {}
for i = 1, 3 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  counts[i] = redis.call('ZCARD', KEYS[i])
end
for i = 1, 3 do
  if counts[i] >= tonumber(ARGV[2 + i]) and (i < 3 or ARGV[6] == '1') then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    return {i, counts[i], tonumber(oldest[2]) + window - now, 0}
  end
end
for i = 1, 3 do
  redis.call('ZADD', KEYS[i], now, ARGV[7])
  redis.call('PEXPIRE', KEYS[i], window)
end
local org_over = 0
if counts[3] >= tonumber(ARGV[5]) then org_over = 1 end
return {0, 0, 0, org_over}
"""

# KEYS: settled, reserved total, reservations (hash id -> amount), expiries (zset id -> expiry ms).
# ARGV: now_ms, cap, amount, id, ttl_ms, enforce (1/0), key ttl seconds. Amounts in micro-dollars.
# Refuses when the month's settled spend plus open reservations has reached the cap, so concurrent
# requests of one team can overspend by at most one request's reservation.
RESERVE_SCRIPT = """
local now = tonumber(ARGV[1])
local amount = tonumber(ARGV[3])
if not amount or amount < 0 or amount > MAX_AMOUNT or amount ~= math.floor(amount) then
  return redis.error_reply('aigw: reservation amount out of range: ' .. tostring(ARGV[3]))
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)) do
  local amount = redis.call('HGET', KEYS[3], id)
  if amount then
    redis.call('DECRBY', KEYS[2], amount)
    redis.call('HDEL', KEYS[3], id)
  end
  redis.call('ZREM', KEYS[4], id)
end
local settled = tonumber(redis.call('GET', KEYS[1]) or '0')
local reserved = tonumber(redis.call('GET', KEYS[2]) or '0')
if redis.call('HEXISTS', KEYS[3], ARGV[4]) == 1 then return {1, settled, reserved, 0} end  -- a retry
local over = 0
if settled + reserved + amount > MAX_TOTAL then
  return redis.error_reply('aigw: budget counters would overflow')
end
if settled + reserved >= tonumber(ARGV[2]) then
  over = 1
  if ARGV[6] == '1' then return {0, settled, reserved} end
end
redis.call('HSET', KEYS[3], ARGV[4], ARGV[3])
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[5]), ARGV[4])
redis.call('INCRBY', KEYS[2], ARGV[3])
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[7]) end
return {1, settled, reserved, over}
"""

# KEYS as above. ARGV: id, actual amount. A reservation that already expired is simply absent.
SETTLE_SCRIPT = """
local actual = tonumber(ARGV[2])
if not actual or actual < 0 or actual > MAX_AMOUNT or actual ~= math.floor(actual) then
  return redis.error_reply('aigw: settled amount out of range: ' .. tostring(ARGV[2]))
end
local amount = redis.call('HGET', KEYS[3], ARGV[1])
if amount then
  redis.call('DECRBY', KEYS[2], amount)
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
end
return redis.call('INCRBY', KEYS[1], ARGV[2])
"""

# Both scripts check every argument before their first write, so a refused or failed script changes nothing.
# Lua numbers are doubles: exact integers up to 2^53. One request may hold at most $1e9 (in micro-dollars),
# and a month's counters stay far below both 2^53 and INCRBY's 2^63.
MAX_AMOUNT_MICRO = 10**15
MAX_TOTAL_MICRO = 2**52
RESERVE_SCRIPT = RESERVE_SCRIPT.replace("MAX_AMOUNT", str(MAX_AMOUNT_MICRO)).replace("MAX_TOTAL", str(MAX_TOTAL_MICRO))
SETTLE_SCRIPT = SETTLE_SCRIPT.replace("MAX_AMOUNT", str(MAX_AMOUNT_MICRO))

Mode = Literal["shared", "fail_open", "fail_closed", "off"]


@dataclass
class RateDecision:
    allowed: bool
    mode: Mode
    limit: str | None = None  # which limit refused it
    retry_after_seconds: int = 0
    org_over_soft_cap: bool = False

    def audit(self) -> dict[str, Any]:
        return {"mode": self.mode, "limit": self.limit, "org_over_soft_cap": self.org_over_soft_cap}


@dataclass
class Reservation:
    team: str
    month: str
    id: str
    amount_usd: float
    mode: Mode
    allowed: bool = True
    over_cap: bool = False
    spent_usd: float = 0.0
    cap_usd: float = 0.0
    settled: bool = False

    def audit(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "team": self.team, "month": self.month, "reserved_usd": self.amount_usd,
            "spent_usd": self.spent_usd, "cap_usd": self.cap_usd, "over_cap": self.over_cap,
        }  # fmt: skip


class LocalLimiter:
    """The per-process stand-in while Redis is out of reach: each limit / the fleet's minimum size."""

    def __init__(self, limits: RateLimits, fleet_min_instances: int) -> None:
        share = max(1, fleet_min_instances)
        self.limits = {
            "user": max(1, limits.user_per_hour // share),
            "team": max(1, limits.team_per_hour // share),
            "org": max(1, limits.org_per_hour // share),
        }
        self.org_hard = limits.org_cap == "hard"
        self.windows: dict[str, deque[float]] = {}

    def check(self, keys: dict[str, str], now: float) -> RateDecision:
        windows = {name: self.windows.setdefault(key, deque()) for name, key in keys.items()}
        for window in windows.values():
            while window and window[0] <= now - WINDOW_MS / 1000:
                window.popleft()
        for name in LIMITS:
            window = windows[name]
            if len(window) >= self.limits[name] and (name != "org" or self.org_hard):
                retry = math.ceil(window[0] + WINDOW_MS / 1000 - now)
                return RateDecision(False, "fail_open", name, max(1, retry))
        for window in windows.values():
            window.append(now)
        return RateDecision(True, "fail_open", org_over_soft_cap=len(windows["org"]) > self.limits["org"])


@dataclass
class Limits:
    """Rate limits and budgets for one gateway process."""

    settings: GatewaySettings
    clock: Callable[[], float] = time.time
    client: aioredis.Redis | None = None
    _down_until: float = 0.0
    _local: LocalLimiter = field(init=False)
    _scripts: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._local = LocalLimiter(self.settings.limits, self.settings.fleet_min_instances)

        self.prefix = f"aigw:{{{self.settings.environment}}}"  # one hash slot for every key of an environment

    def connect(self) -> None:
        """Make the Redis client (reading its AUTH token); blocking, so run it at start-up."""
        self.client = redis_client(self.settings.redis, self.settings.vendor.region)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    @property
    def enabled(self) -> bool:
        return self.settings.limits.enabled

    async def reachable(self) -> bool:
        if self.client is None:
            return False
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError):
            return False

    # -- rate limits -----------------------------------------------------------------------------

    async def check_rate(self, user: str, team: str, request_id: str) -> RateDecision:
        limits = self.settings.limits
        if not limits.enabled:
            return RateDecision(True, "off")
        keys = {
            "user": f"{self.prefix}:rate:user:{user}",
            "team": f"{self.prefix}:rate:team:{team}",
            "org": f"{self.prefix}:rate:org",
        }
        now = self.clock()
        try:
            limit, _count, retry_ms, org_over = await self._run(
                "rate", RATE_SCRIPT, list(keys.values()),
                [int(now * 1000), WINDOW_MS, limits.user_per_hour, limits.team_per_hour, limits.org_per_hour,
                 1 if limits.org_cap == "hard" else 0, request_id],
            )  # fmt: skip
        except _UnreachableError:
            if limits.fail_mode == "closed":
                return RateDecision(False, "fail_closed")
            return self._local.check(keys, now)
        if limit:
            return RateDecision(False, "shared", LIMITS[int(limit) - 1], max(1, math.ceil(int(retry_ms) / 1000)))
        return RateDecision(True, "shared", org_over_soft_cap=bool(org_over))

    # -- budgets ---------------------------------------------------------------------------------

    async def reserve(self, team: str, request_id: str, amount_usd: float) -> Reservation | None:
        """Hold the request's worst-case cost against the team's month; None when the team has no cap."""
        cap = self.settings.team_budgets_usd.get(team)
        if cap is None or not self.enabled:
            return None
        if not 0 <= amount_usd * MICRO <= MAX_AMOUNT_MICRO:  # range-checked before Redis, and again in the script
            raise LimitsScriptError(f"reservation amount out of range: {amount_usd}")
        month = datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m")
        reservation = Reservation(team, month, request_id, amount_usd, "shared", cap_usd=cap)
        limits = self.settings.limits
        try:
            result = await self._run(
                "reserve", RESERVE_SCRIPT, self._budget_keys(team, month),
                [int(self.clock() * 1000), round(cap * MICRO), round(amount_usd * MICRO), request_id,
                 limits.reservation_ttl_seconds * 1000, 1 if limits.budget_mode == "enforce" else 0, 40 * 86_400],
            )  # fmt: skip
        except _UnreachableError:
            # Budgets are fleet-wide by nature: without Redis they cannot be checked, only flagged.
            reservation.mode = "fail_closed" if limits.fail_mode == "closed" else "fail_open"
            reservation.allowed = limits.fail_mode == "open"
            reservation.settled = True
            return reservation
        reservation.allowed = bool(result[0])
        reservation.spent_usd = (int(result[1]) + int(result[2])) / MICRO
        reservation.over_cap = not reservation.allowed or bool(result[3])
        reservation.settled = not reservation.allowed
        return reservation

    async def settle(self, reservation: Reservation, actual_usd: float) -> None:
        if reservation.settled:
            return
        reservation.settled = True
        # Out of reach: the reservation expires by itself; the actual spend is in the audit record.
        with contextlib.suppress(_UnreachableError):
            if not 0 <= actual_usd * MICRO <= MAX_AMOUNT_MICRO:
                raise LimitsScriptError(f"settled amount out of range: {actual_usd}")
            keys = self._budget_keys(reservation.team, reservation.month)
            await self._run("settle", SETTLE_SCRIPT, keys, [reservation.id, round(actual_usd * MICRO)])

    async def spent(self, team: str, month: str) -> tuple[float, float]:
        """Settled and reserved US dollars of a team's month (for tests and operators)."""
        assert self.client is not None
        settled, reserved = await self.client.mget(self._budget_keys(team, month)[:2])
        return int(settled or 0) / MICRO, int(reserved or 0) / MICRO

    def _budget_keys(self, team: str, month: str) -> list[str]:
        base = f"{self.prefix}:budget:{team}:{month}"
        return [f"{base}:settled", f"{base}:reserved", f"{base}:reservations", f"{base}:expiries"]

    async def _run(self, name: str, script: str, keys: list[str], args: list[Any]) -> Any:
        """Run a script on Redis, or raise _UnreachableError (and stay away from Redis for a moment)."""
        if self.client is None or time.monotonic() < self._down_until:
            raise _UnreachableError
        if name not in self._scripts:
            self._scripts[name] = self.client.register_script(script)
        try:
            return await on_loop_time(self._scripts[name](keys=keys, args=args), self.settings.redis.timeout_seconds)
        except ResponseError as error:  # Redis answered: the script refused or failed, a bug, not an outage
            raise LimitsScriptError(f"the {name} script failed: {error}") from error
        except (TimeoutError, RedisError, OSError) as error:
            self._down_until = time.monotonic() + self.settings.redis.retry_after_seconds
            raise _UnreachableError from error


class _UnreachableError(Exception):
    pass


async def on_loop_time(call: Awaitable[Any], timeout: float) -> Any:
    """Await a Redis call for `timeout` seconds of the event loop's own time.

    A plain timeout also counts the time the reply waited while this process's loop was busy elsewhere, and
    a busy process would take that for Redis being down and fall back to its local limiter. Here the wait
    goes in short slices, and a slice counts less the later the loop wakes from it (nothing when a whole
    slice late): only time the loop was free to read the reply counts. The client's socket timeout stays
    as the backstop.
    """
    task = asyncio.ensure_future(call)
    step = min(TIMEOUT_SLICE, timeout)
    waited = 0.0
    try:
        while True:
            started = time.perf_counter()
            done, _ = await asyncio.wait({task}, timeout=step)
            if done:
                return task.result()
            late = time.perf_counter() - started - step
            waited += max(0.0, step - late)  # a wake-up late by a whole step: the loop was busy, not waiting
            if waited >= timeout:
                raise TimeoutError(f"no answer from Redis within {timeout:g} s")
    finally:
        if not task.done():
            task.cancel()


class LimitsScriptError(RuntimeError):
    """A limits script refused its arguments or failed: a bug to log and answer with 500, never "Redis down"."""


def redis_client(settings: RedisSettings, region: str) -> aioredis.Redis | None:
    if settings.host is None:
        return None
    token = os.environ.get(settings.auth_token_env) if settings.auth_token_env else None
    if settings.auth_token_secret_id:
        client = Session().create_client("secretsmanager", region_name=region)
        token = client.get_secret_value(SecretId=settings.auth_token_secret_id)["SecretString"]
    return aioredis.Redis(
        host=settings.host,
        port=settings.port,
        ssl=settings.tls,
        password=token,
        # Only a backstop: each call's timeout is applied on the loop's own time (`on_loop_time`).
        socket_timeout=max(5.0, 10 * settings.timeout_seconds),
        socket_connect_timeout=max(5.0, 10 * settings.timeout_seconds),
        # No retries inside a request: one failed attempt means the fail mode decides, at once.
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )
