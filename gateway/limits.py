"""Fleet-wide rate limits and team budget caps, on shared counters in Redis.

Counted in each process's memory, a limit is wrong by the number of instances; here every check is
one atomic Lua script over the shared counters, so 2 or 6 instances enforce exactly one limit. When
Redis is out of reach the fail mode decides: "open" falls back to a per-process limiter at each
limit divided by the fleet's minimum number of processes (its minimum size times the workers on each
instance; flagged on every decision), "closed" refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import redis.asyncio as aioredis
from botocore.session import Session
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError, ResponseError

from gateway.settings import GatewaySettings, RateLimits, RedisSettings

WINDOW_MS = 3_600_000
TIMEOUT_SLICE = 0.05
MICRO = 1_000_000  # budgets are counted in micro-dollars: integers, exact
LIMITS = ("user", "team", "org")

# One script per request for both checks: the rate limits and (for a team with a cap, on a priced request) the
# budget reservation, in one round trip to Redis.
# KEYS: user, team, org rate windows [, settled, reserved total, reservations (hash id -> amount),
# expiries (zset id -> expiry ms)].
# ARGV: now_ms, window_ms, user, team, org limits, org hard (1/0), request id
# [, cap, amount, reservation ttl ms, enforce (1/0), key ttl seconds]. Amounts in micro-dollars.
# Returns {refusing limit (0: none), retry ms, org over soft cap, budget allowed, settled, reserved, over cap}.
#
# Each rate window is a sorted set of request ids scored by time: exact over any rolling hour. A request that
# fails one limit is added to none and reserves nothing. Run twice for one request (a retry after a timeout),
# it is counted and reserved once. The budget refuses when the month's settled spend plus open reservations
# has reached the cap, so concurrent requests of one team can overspend by at most one request's reservation;
# a request the budget refuses still counts against the rate limits. Every argument is checked before the
# first write (only lapsed window entries and expired reservations are cleared before): a refused or failed
# script changes nothing.
ADMIT_SCRIPT = """
local now, window, id = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[7]
local budget = #KEYS == 7
local amount = 0
if budget then
  amount = tonumber(ARGV[9])
  if not amount or amount < 0 or amount > MAX_AMOUNT or amount ~= math.floor(amount) then
    return redis.error_reply('aigw: reservation amount out of range: ' .. tostring(ARGV[9]))
  end
end
local counted = redis.call('ZSCORE', KEYS[1], id)
local counts = {0, 0, 0}
if not counted then
  for i = 1, 3 do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
    counts[i] = redis.call('ZCARD', KEYS[i])
  end
  for i = 1, 3 do
    if counts[i] >= tonumber(ARGV[2 + i]) and (i < 3 or ARGV[6] == '1') then
      local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
      return {i, tonumber(oldest[2]) + window - now, 0, 0, 0, 0, 0}
    end
  end
end
local allowed, settled, reserved, over, reserve = 1, 0, 0, 0, false
if budget then
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', now)) do
    local held = redis.call('HGET', KEYS[6], old)
    if held then
      redis.call('DECRBY', KEYS[5], held)
      redis.call('HDEL', KEYS[6], old)
    end
    redis.call('ZREM', KEYS[7], old)
  end
  settled = tonumber(redis.call('GET', KEYS[4]) or '0')
  reserved = tonumber(redis.call('GET', KEYS[5]) or '0')
  if redis.call('HEXISTS', KEYS[6], id) == 0 then
    if settled + reserved + amount > MAX_TOTAL then
      return redis.error_reply('aigw: budget counters would overflow')
    end
    if settled + reserved >= tonumber(ARGV[8]) then
      over = 1
      if ARGV[11] == '1' then allowed = 0 end
    end
    reserve = allowed == 1
  end
end
if not counted then
  for i = 1, 3 do
    redis.call('ZADD', KEYS[i], now, id)
    redis.call('PEXPIRE', KEYS[i], window)
  end
end
if reserve then
  redis.call('HSET', KEYS[6], id, ARGV[9])
  redis.call('ZADD', KEYS[7], now + tonumber(ARGV[10]), id)
  redis.call('INCRBY', KEYS[5], ARGV[9])
  for i = 4, 7 do redis.call('EXPIRE', KEYS[i], ARGV[12]) end
end
local org_over = 0
if not counted and counts[3] >= tonumber(ARGV[5]) then org_over = 1 end
return {0, 0, org_over, allowed, settled, reserved, over}
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

# Both scripts check every argument before their first write.
# Lua numbers are doubles: exact integers up to 2^53. One request may hold at most $1e9 (in micro-dollars),
# and a month's counters stay far below both 2^53 and INCRBY's 2^63.
MAX_AMOUNT_MICRO = 10**15
MAX_TOTAL_MICRO = 2**52
ADMIT_SCRIPT = ADMIT_SCRIPT.replace("MAX_AMOUNT", str(MAX_AMOUNT_MICRO)).replace("MAX_TOTAL", str(MAX_TOTAL_MICRO))
SETTLE_SCRIPT = SETTLE_SCRIPT.replace("MAX_AMOUNT", str(MAX_AMOUNT_MICRO))

SCRIPTS = {"admit": ADMIT_SCRIPT, "settle": SETTLE_SCRIPT}
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
    """The per-process stand-in while Redis is out of reach: each limit / the fleet's minimum number of processes
    (its minimum size times each instance's workers)."""

    def __init__(self, limits: RateLimits, processes: int) -> None:
        share = max(1, processes)
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
        self._local = LocalLimiter(self.settings.limits, self.settings.fleet_min_instances * self.settings.workers)

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

    # -- rate limits and budgets: one script -----------------------------------------------------

    async def check_rate(self, user: str, team: str, request_id: str) -> RateDecision:
        """The rate limits alone (a request refused before its budget could be reserved still counts)."""
        decision, _ = await self.admit(user, team, request_id, None)
        return decision

    async def admit(
        self, user: str, team: str, request_id: str, amount_usd: float | None
    ) -> tuple[RateDecision, Reservation | None]:
        """The rate limits, and the request's worst-case cost (`amount_usd`, None: not priced) held against the
        team's month when the team has a cap: one round trip. The reservation is None when nothing was held."""
        limits = self.settings.limits
        if not limits.enabled:
            return RateDecision(True, "off"), None
        keys = [f"{self.prefix}:rate:user:{user}", f"{self.prefix}:rate:team:{team}", f"{self.prefix}:rate:org"]
        now = self.clock()
        args: list[Any] = [
            int(now * 1000), WINDOW_MS, limits.user_per_hour, limits.team_per_hour, limits.org_per_hour,
            1 if limits.org_cap == "hard" else 0, request_id,
        ]  # fmt: skip
        cap = self.settings.team_budgets_usd.get(team) if amount_usd is not None else None
        reservation = None
        if cap is not None and amount_usd is not None:
            if not 0 <= amount_usd * MICRO <= MAX_AMOUNT_MICRO:  # range-checked before Redis, and in the script
                raise LimitsScriptError(f"reservation amount out of range: {amount_usd}")
            month = datetime.fromtimestamp(now, UTC).strftime("%Y-%m")
            reservation = Reservation(team, month, request_id, amount_usd, "shared", cap_usd=cap)
            keys += self._budget_keys(team, month)
            args += [
                round(cap * MICRO), round(amount_usd * MICRO), limits.reservation_ttl_seconds * 1000,
                1 if limits.budget_mode == "enforce" else 0, 40 * 86_400,
            ]  # fmt: skip
        try:
            limit, retry_ms, org_over, allowed, settled, reserved, over = await self._run("admit", keys, args)
        except _UnreachableError:
            return self._unreachable(dict(zip(LIMITS, keys, strict=False)), now, reservation)
        if limit:
            decision = RateDecision(False, "shared", LIMITS[int(limit) - 1], max(1, math.ceil(int(retry_ms) / 1000)))
            return decision, None
        if reservation is not None:
            reservation.allowed = bool(allowed)
            reservation.spent_usd = (int(settled) + int(reserved)) / MICRO
            reservation.over_cap = not reservation.allowed or bool(over)
            reservation.settled = not reservation.allowed
        return RateDecision(True, "shared", org_over_soft_cap=bool(org_over)), reservation

    def _unreachable(
        self, keys: dict[str, str], now: float, reservation: Reservation | None
    ) -> tuple[RateDecision, Reservation | None]:
        """Redis out of reach: the fail mode decides."""
        fail_mode = self.settings.limits.fail_mode
        decision = RateDecision(False, "fail_closed") if fail_mode == "closed" else self._local.check(keys, now)
        if reservation is not None:
            # Budgets are fleet-wide by nature: without Redis they cannot be checked, only flagged.
            reservation.mode = "fail_closed" if fail_mode == "closed" else "fail_open"
            reservation.allowed = fail_mode == "open"
            reservation.settled = True
        return decision, reservation

    async def settle_all(self, settlements: Sequence[tuple[Reservation, float]]) -> None:
        """Settle reservations to what their requests really cost (US dollars): one pipelined round trip for all.
        Out of reach, they expire by themselves; the actual spend is in each audit record. An amount out of range
        is a bug: LimitsScriptError, after the others are settled."""
        calls, refused = [], []
        for reservation, actual_usd in settlements:
            if reservation.settled:
                continue
            reservation.settled = True
            if not 0 <= actual_usd * MICRO <= MAX_AMOUNT_MICRO:
                refused.append(f"settled amount out of range: {actual_usd}")
                continue
            keys = self._budget_keys(reservation.team, reservation.month)
            calls.append((keys, [reservation.id, round(actual_usd * MICRO)]))
        if calls:
            with contextlib.suppress(_UnreachableError):
                await self._run_all("settle", calls)
        if refused:
            raise LimitsScriptError("; ".join(refused))

    async def spent(self, team: str, month: str) -> tuple[float, float]:
        """Settled and reserved US dollars of a team's month (for tests and operators)."""
        assert self.client is not None
        settled, reserved = await self.client.mget(self._budget_keys(team, month)[:2])
        return int(settled or 0) / MICRO, int(reserved or 0) / MICRO

    def _budget_keys(self, team: str, month: str) -> list[str]:
        base = f"{self.prefix}:budget:{team}:{month}"
        return [f"{base}:settled", f"{base}:reserved", f"{base}:reservations", f"{base}:expiries"]

    async def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run a script on Redis, or raise _UnreachableError (and stay away from Redis for a moment)."""
        if self.client is None or time.monotonic() < self._down_until:
            raise _UnreachableError
        if name not in self._scripts:
            self._scripts[name] = self.client.register_script(SCRIPTS[name])
        try:
            return await on_loop_time(self._scripts[name](keys=keys, args=args), self.settings.redis.timeout_seconds)
        except ResponseError as error:  # Redis answered: the script refused or failed, a bug, not an outage
            raise LimitsScriptError(f"the {name} script failed: {error}") from error
        except (TimeoutError, RedisError, OSError) as error:
            self._down_until = time.monotonic() + self.settings.redis.retry_after_seconds
            raise _UnreachableError from error

    async def _run_all(self, name: str, calls: Sequence[tuple[list[str], list[Any]]]) -> None:
        """Run a script once per call, in one pipeline (one round trip), as `_run` runs one. EVALSHA directly: a
        pipeline given redis-py's script object asks Redis whether it has the script first, every time."""
        if self.client is None or time.monotonic() < self._down_until:
            raise _UnreachableError
        sha = hashlib.sha1(SCRIPTS[name].encode()).hexdigest()
        try:
            for attempt in range(2):
                pipeline = self.client.pipeline(transaction=False)
                for keys, args in calls:
                    pipeline.evalsha(sha, len(keys), *keys, *args)
                timeout = self.settings.redis.timeout_seconds
                results = await on_loop_time(pipeline.execute(raise_on_error=False), timeout)
                missing = [
                    call for call, result in zip(calls, results, strict=True) if isinstance(result, NoScriptError)
                ]
                if not missing or attempt:
                    break
                await on_loop_time(self.client.script_load(SCRIPTS[name]), timeout)  # Redis restarted: load it, then
                calls = missing  # run only those (a settlement must not run twice)
        except (TimeoutError, RedisError, OSError) as error:
            self._down_until = time.monotonic() + self.settings.redis.retry_after_seconds
            raise _UnreachableError from error
        failed = [result for result in results if isinstance(result, ResponseError)]
        if failed:
            raise LimitsScriptError(f"the {name} script failed {len(failed)} of {len(calls)} times: {failed[0]}")
        if any(isinstance(result, Exception) for result in results):  # the connection broke on the way
            self._down_until = time.monotonic() + self.settings.redis.retry_after_seconds
            raise _UnreachableError


class _UnreachableError(Exception):
    pass


async def on_loop_time(call: Awaitable[Any], timeout: float) -> Any:
    """Await a Redis call for `timeout` seconds of the event loop's own time.

    A plain timeout also counts the time the reply waited while this process's loop was busy elsewhere, and
    a busy process would take that for Redis being down and fall back to its local limiter. Here a timer
    ticks in short slices, and a slice counts less the later the loop runs it (nothing when a whole slice
    late): only time the loop was free to read the reply counts. The client's socket timeout stays as the
    backstop. (A timer, not a task and `asyncio.wait`: this is on every request's path.)
    """
    loop = asyncio.get_running_loop()
    step = min(TIMEOUT_SLICE, timeout)
    waited = 0.0
    deadline = asyncio.timeout(None)

    def tick(due: float) -> None:
        nonlocal waited
        waited += max(0.0, step - (loop.time() - due))  # a tick late by a whole step: the loop was busy
        if waited >= timeout:
            deadline.reschedule(loop.time())
        else:
            timers[0] = loop.call_at(loop.time() + step, tick, loop.time() + step)

    timers = [loop.call_at(loop.time() + step, tick, loop.time() + step)]
    try:
        async with deadline:
            return await call
    except TimeoutError:
        raise TimeoutError(f"no answer from Redis within {timeout:g} s") from None
    finally:
        timers[0].cancel()


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
