"""What sign-in keeps between requests, in the shared Redis (ElastiCache in AWS) so that every gateway process
sees it: device grants, pending IdP sign-ins, and refresh-token families. No new database.

Secrets are kept only as SHA-256 hashes: a device code or refresh token read from Redis cannot be used. Every
change that must happen once (a device grant handed out, a refresh token rotated) is one Lua script.

A refresh token rotates on every use. Presenting a rotated one again means two holders have it: the whole
family (every token since that sign-in) is revoked, on every process at once, since they all read it here.
Two terminals sharing one stored credential refresh moments apart, so a repeat within `reuse_grace_seconds`
is refused without revoking.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from gateway.access_tokens import Person
from gateway.limits import on_loop_time
from gateway.settings import SigninSettings

# RFC 8628 §6.1: a short code of consonants only (no words, no look-alikes), typed with or without the dash.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_CHARS = 8
REFRESH_PREFIX = "aigw_rt_"
# A device grant's record outlives its code by this much, so a late poll hears "expired", not "unknown".
EXPIRED_GRACE_SECONDS = 3600
STORE_TIMEOUT_SECONDS = 1.0
SETTINGS_SEEN_SECONDS = 30 * 86_400

POLL_SCRIPT = """
-- KEYS[1] the device grant; ARGV: now (ms)
local grant = redis.call('HGETALL', KEYS[1])
if #grant == 0 then return {'unknown'} end
local g = {}
for i = 1, #grant, 2 do g[grant[i]] = grant[i + 1] end
local now = tonumber(ARGV[1])
if now >= tonumber(g.expires_at) then
  redis.call('DEL', KEYS[1])
  return {'expired'}
end
local interval = tonumber(g.interval)
if now - tonumber(g.last_poll) < interval * 1000 then
  redis.call('HSET', KEYS[1], 'last_poll', now, 'interval', interval + 5)
  return {'slow_down', tostring(interval + 5)}
end
redis.call('HSET', KEYS[1], 'last_poll', now)
if g.status == 'approved' then
  redis.call('DEL', KEYS[1])
  return {'approved', g.person}
end
if g.status == 'denied' then
  redis.call('DEL', KEYS[1])
  return {'denied', g.reason or ''}
end
return {'pending'}
"""

DECIDE_SCRIPT = """
-- KEYS[1] the user code, KEYS[2] its device grant; ARGV: status, person or reason, now (ms)
local grant = redis.call('GET', KEYS[1])
if not grant or grant ~= KEYS[2] then return 'unknown' end
if redis.call('HGET', KEYS[2], 'status') ~= 'pending' then return 'decided' end
if tonumber(ARGV[3]) >= tonumber(redis.call('HGET', KEYS[2], 'expires_at')) then return 'expired' end
redis.call('DEL', KEYS[1])
if ARGV[1] == 'approved' then
  redis.call('HSET', KEYS[2], 'status', 'approved', 'person', ARGV[2])
else
  redis.call('HSET', KEYS[2], 'status', 'denied', 'reason', ARGV[2])
end
return 'ok'
"""

ROTATE_SCRIPT = """
-- KEYS[1] the presented token, KEYS[2] its family, KEYS[3] the token to issue in its place
-- ARGV: now (ms), idle ttl (s), reuse grace (ms)
local token = redis.call('HGETALL', KEYS[1])
if #token == 0 then return {'invalid'} end
local t = {}
for i = 1, #token, 2 do t[token[i]] = token[i + 1] end
local family = redis.call('HGETALL', KEYS[2])
if #family == 0 then return {'invalid'} end
local f = {}
for i = 1, #family, 2 do f[family[i]] = family[i + 1] end
if f.revoked == '1' then return {'revoked'} end
local now = tonumber(ARGV[1])
if t.rotated_at then
  if now - tonumber(t.rotated_at) <= tonumber(ARGV[3]) then return {'raced'} end
  redis.call('HSET', KEYS[2], 'revoked', '1', 'revoked_at', now, 'revoked_why', 'reuse')
  return {'reused'}
end
redis.call('HSET', KEYS[1], 'rotated_at', now)
local ttl = math.min(tonumber(ARGV[2]), redis.call('TTL', KEYS[2]))
if ttl <= 0 then return {'invalid'} end
redis.call('HSET', KEYS[3], 'family', t.family)
redis.call('EXPIRE', KEYS[3], ttl)
return {'ok', f.person}
"""

REVOKE_SCRIPT = """
-- KEYS[1] the family; ARGV: now (ms), why
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'revoked', '1', 'revoked_at', ARGV[1], 'revoked_why', ARGV[2])
return 1
"""

COUNT_SCRIPT = """
-- KEYS[1] the counter; ARGV: window (s)
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


class StoreUnavailableError(Exception):
    """Redis cannot be reached (or is not configured): sign-in answers 503 `temporarily_unavailable`."""


@dataclass(frozen=True)
class DeviceGrant:
    device_code: str
    user_code: str


@dataclass(frozen=True)
class Poll:
    state: Literal["pending", "slow_down", "approved", "denied", "expired", "unknown"]
    person: Person | None = None
    interval: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class Rotation:
    state: Literal["ok", "invalid", "revoked", "reused", "raced"]
    person: Person | None = None
    refresh_token: str | None = None


@dataclass(frozen=True)
class PendingSignin:
    """A verification page's trip to the IdP: which device grant it approves, and what the callback checks."""

    user_code: str
    code_verifier: str
    nonce: str
    redirect_uri: str
    browser: str  # the hash of the cookie the page set: the callback must come from the same browser


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def normalise_user_code(typed: str) -> str | None:
    """A typed user code as issued (`BCDF-GHJK`): case, spaces and dashes aside; None if it cannot be one."""
    letters = "".join(c for c in typed.upper() if c not in " -\t")
    if len(letters) != USER_CODE_CHARS or any(c not in USER_CODE_ALPHABET for c in letters):
        return None
    return f"{letters[:4]}-{letters[4:]}"


class SigninStore:
    def __init__(self, settings: SigninSettings, environment: str, redis: Callable[[], aioredis.Redis | None]) -> None:
        self.settings = settings
        self.redis = redis  # the limits' client, made at start
        self.prefix = f"aigw:{{{environment}}}:signin"  # one hash slot, like the limits' keys
        self._scripts: dict[str, Any] = {}

    # -- device grants (RFC 8628) ------------------------------------------------------------------

    async def new_device_grant(self, surface: str) -> DeviceGrant:
        settings = self.settings
        device_code = secrets.token_urlsafe(32)  # 256 bits
        grant = self._key("device", digest(device_code))
        now = _now_ms()
        for _ in range(5):  # a user code is short: on the rare collision with a live one, draw another
            letters = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_CHARS))
            user_code = f"{letters[:4]}-{letters[4:]}"
            code_key = self._key("user_code", user_code)
            if await self._call(lambda c, k=code_key: c.set(k, grant, nx=True, ex=settings.device_code_seconds)):
                break
        else:
            raise StoreUnavailableError("no free user code")
        record = {
            "status": "pending", "user_code": user_code, "surface": surface[:40], "created": now,
            "expires_at": now + settings.device_code_seconds * 1000, "last_poll": 0,
            "interval": settings.poll_interval_seconds,
        }  # fmt: skip
        ttl = settings.device_code_seconds + EXPIRED_GRACE_SECONDS
        await self._call(lambda c: c.pipeline().hset(grant, mapping=record).expire(grant, ttl).execute())
        return DeviceGrant(device_code, user_code)

    async def grant_is_pending(self, user_code: str) -> bool:
        grant = await self._call(lambda c: c.get(self._key("user_code", user_code)))
        return grant is not None

    async def decide(self, user_code: str, person: Person | None, reason: str = "") -> str:
        """Approve the device grant for `person`, or deny it (None) saying why: 'ok', 'unknown', 'decided' or
        'expired'."""
        code_key = self._key("user_code", user_code)
        grant = await self._call(lambda c: c.get(code_key))
        if grant is None:
            return "unknown"
        status, value = ("approved", person.to_json()) if person else ("denied", reason)
        result = await self._script("decide", DECIDE_SCRIPT, [code_key, _text(grant)], [status, value, _now_ms()])
        return _text(result)

    async def poll(self, device_code: str) -> Poll:
        result = await self._script("poll", POLL_SCRIPT, [self._key("device", digest(device_code))], [_now_ms()])
        state = _text(result[0])
        if state == "approved":
            return Poll("approved", person=Person.from_json(_text(result[1])))
        if state == "slow_down":
            return Poll("slow_down", interval=int(_text(result[1])))
        if state == "denied":
            return Poll("denied", reason=_text(result[1]))
        return Poll(state)  # type: ignore[arg-type]

    # -- the verification page's trips to the IdP -----------------------------------------------------

    async def start_signin(self, pending: PendingSignin) -> str:
        """The `state` the IdP hands back to the callback (single use, as long as a device code lives)."""
        state = secrets.token_urlsafe(32)
        value = json.dumps(pending.__dict__)
        await self._call(lambda c: c.set(self._key("state", state), value, ex=self.settings.device_code_seconds))
        return state

    async def finish_signin(self, state: str) -> PendingSignin | None:
        value = await self._call(lambda c: c.getdel(self._key("state", state)))
        return PendingSignin(**json.loads(value)) if value else None

    # -- refresh-token families -------------------------------------------------------------------------

    async def new_family(self, person: Person) -> str:
        """A sign-in's first refresh token."""
        settings = self.settings
        family = secrets.token_urlsafe(16)
        token = REFRESH_PREFIX + secrets.token_urlsafe(32)
        family_key, token_key = self._key("family", family), self._key("refresh", digest(token))
        record = {"person": person.to_json(), "sub": person.sub, "created": _now_ms(), "revoked": "0"}
        await self._call(
            lambda c: (
                c.pipeline()
                .hset(family_key, mapping=record)
                .expire(family_key, settings.session_max_seconds)
                .hset(token_key, mapping={"family": family})
                .expire(token_key, settings.refresh_idle_seconds)
                .execute()
            )
        )
        return token

    async def rotate(self, token: str) -> Rotation:
        token_key = self._key("refresh", digest(token))
        family = await self._call(lambda c: c.hget(token_key, "family"))
        if family is None:
            return Rotation("invalid")
        successor = REFRESH_PREFIX + secrets.token_urlsafe(32)
        result = await self._script(
            "rotate",
            ROTATE_SCRIPT,
            [token_key, self._key("family", _text(family)), self._key("refresh", digest(successor))],
            [_now_ms(), self.settings.refresh_idle_seconds, self.settings.reuse_grace_seconds * 1000],
        )
        state = _text(result[0])
        if state == "ok":
            return Rotation("ok", Person.from_json(_text(result[1])), successor)
        return Rotation(state)  # type: ignore[arg-type]

    async def revoke(self, token: str, why: str) -> bool:
        """Revoke the family of a refresh token (RFC 7009); False if it was not one."""
        family = await self._call(lambda c: c.hget(self._key("refresh", digest(token)), "family"))
        if family is None:
            return False
        result = await self._script("revoke", REVOKE_SCRIPT, [self._key("family", _text(family))], [_now_ms(), why])
        return bool(result)

    # -- managed settings delivered --------------------------------------------------------------------------

    async def note_settings(self, user: str, checksum: str) -> None:
        """Which managed settings (their checksum, the ETag) a person last received, and when: which policy each
        laptop runs, for the platform team and auditors."""
        key = self._key("settings", digest(user))
        record = {"user": user, "checksum": checksum, "at": _now_ms()}
        await self._call(lambda c: c.pipeline().hset(key, mapping=record).expire(key, SETTINGS_SEEN_SECONDS).execute())

    # -- per-address counters ----------------------------------------------------------------------------

    async def count(self, what: str, address: str, window_seconds: int = 600) -> int:
        """Requests of this kind from this address in the current window (fixed, `window_seconds` long)."""
        window = int(time.time()) // window_seconds
        key = self._key("count", what, address, str(window))
        return int(await self._script("count", COUNT_SCRIPT, [key], [window_seconds]))

    # -- Redis ---------------------------------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def _call(self, command: Any) -> Any:
        client = self.redis()
        if client is None:
            raise StoreUnavailableError("no Redis is configured: sign-in needs the shared store")
        try:
            return await on_loop_time(command(client), STORE_TIMEOUT_SECONDS)
        except ResponseError:
            raise
        except (TimeoutError, RedisError, OSError) as error:
            raise StoreUnavailableError(str(error) or type(error).__name__) from error

    async def _script(self, name: str, source: str, keys: list[str], args: list[Any]) -> Any:
        client = self.redis()
        if client is not None and name not in self._scripts:
            self._scripts[name] = client.register_script(source)
        return await self._call(lambda _c: self._scripts[name](keys=keys, args=args))


def _now_ms() -> int:
    return int(time.time() * 1000)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
