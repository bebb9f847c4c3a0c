"""The IdP's signing keys as the gateway reads them from SSM: the discovery document, the checks a key set must
pass, the trimmed form that fits one parameter, and when a run fetches and writes. Pure: the handler does the I/O.

The parameter's value is one JSON object:

    {"issuer": ..., "jwks_uri": ..., "fetched_at": "2026-11-30T10:00:00+00:00", "keys": [{"kty": "RSA", ...}]}

`keys` is what a JWT verifier reads; `fetched_at` is when that key set was fetched (the parameter is not rewritten
while the IdP serves the same keys, so it is also when the keys last changed).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

DISCOVERY_PATH = "/.well-known/openid-configuration"
# What a verifier needs of a public JWK (RFC 7517, 7518, 8037); certificate chains (x5c) and the rest stay out, so
# a key set fits one parameter.
VERIFIER_MEMBERS = ("kty", "kid", "use", "alg", "n", "e", "crv", "x", "y")
# Members of private or symmetric keys (RFC 7518 6.2.2, 6.3.2, 6.4.1; RFC 8037 2): an IdP must never publish them,
# and a set that carries one is refused whole.
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
PUBLIC_MEMBERS = {"RSA": ("n", "e"), "EC": ("crv", "x", "y"), "OKP": ("crv", "x")}
# Parameter Store's value limits: 4 KB in the standard tier, 8 KB in the advanced one.
STANDARD_TIER_BYTES = 4096
MAX_PARAMETER_BYTES = 8192
# What CloudFormation creates the parameter with, so that IAM and the gateway can name it before the first run.
EMPTY_VALUE = json.dumps({"fetched_at": None, "keys": []}, separators=(",", ":"))

Key = dict[str, str]


class KeySetError(ValueError):
    """A discovery document or key set the mirror refuses to publish."""


def discovery_url(issuer: str) -> str:
    """OpenID Connect Discovery 1.0, section 4: the issuer with `/.well-known/openid-configuration` appended."""
    return issuer.rstrip("/") + DISCOVERY_PATH


def checked_url(url: str, what: str) -> str:
    """HTTPS only; plain HTTP is allowed to a loopback address, where the local token issuer runs in tests."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return url
    raise KeySetError(f"{what} must be an https:// URL, not {url!r}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def jwks_uri_from(document: object, issuer: str) -> str:
    """The key set's URL from a discovery document that was issued for exactly this issuer."""
    if not isinstance(document, dict):
        raise KeySetError("the discovery document is not a JSON object")
    # Discovery 1.0, section 4.3: the issuer in the document must be identical to the one it was fetched for.
    if document.get("issuer") != issuer:
        raise KeySetError(f"the discovery document is for issuer {document.get('issuer')!r}, not {issuer!r}")
    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri:
        raise KeySetError("the discovery document has no jwks_uri")
    return checked_url(jwks_uri, "jwks_uri")


def public_signing_keys(key_set: object) -> list[Key]:
    """The set's public signing keys, trimmed to what a verifier needs and in a stable order.

    Refused whole: anything but an object with a non-empty `keys` list, a key with private or symmetric material,
    a key whose members are not strings, two keys with one `kid`, or a set with no usable signing key. Skipped:
    encryption keys (`use: enc`) and key types a JWT verifier here cannot use.
    """
    if not isinstance(key_set, dict):
        raise KeySetError("the key set is not a JSON object")
    keys = key_set.get("keys")
    if not isinstance(keys, list) or not keys:
        raise KeySetError("the key set has no 'keys' list, or it is empty")
    kept: list[Key] = []
    for index, key in enumerate(keys):
        if not isinstance(key, dict):
            raise KeySetError(f"key {index} is not a JSON object")
        private = sorted(member for member in PRIVATE_MEMBERS if member in key)
        if private:
            raise KeySetError(f"key {index} (kid {key.get('kid')!r}) carries private key material: {private}")
        trimmed = {member: key[member] for member in VERIFIER_MEMBERS if member in key}
        if any(not isinstance(value, str) or not value for value in trimmed.values()):
            raise KeySetError(f"key {index} (kid {key.get('kid')!r}) has a member that is not a non-empty string")
        required = PUBLIC_MEMBERS.get(trimmed.get("kty", ""))
        if required is None or trimmed.get("use", "sig") != "sig":
            continue
        missing = [member for member in required if member not in trimmed]
        if missing:
            raise KeySetError(f"key {index} (kid {key.get('kid')!r}) lacks {missing}")
        kept.append(trimmed)
    if not kept:
        raise KeySetError("the key set holds no public signing key")
    kids = [key.get("kid", "") for key in kept]
    repeated = sorted({kid for kid in kids if kids.count(kid) > 1})
    if repeated:
        raise KeySetError(f"the key set names these kids more than once: {repeated}")
    return sorted(kept, key=lambda key: (key.get("kid", ""), json.dumps(key, sort_keys=True)))


@dataclass(frozen=True)
class Stored:
    """What the parameter holds now."""

    keys: tuple[Key, ...] = ()
    fetched_at: datetime | None = None

    def has_kid(self, kid: str) -> bool:
        return any(key.get("kid") == kid for key in self.keys)


def parse_stored(value: str | None) -> Stored:
    """The parameter's value; an unreadable one counts as empty, so the next run overwrites it."""
    if not value:
        return Stored()
    try:
        data = json.loads(value)
        keys = data["keys"]
        fetched_at = datetime.fromisoformat(data["fetched_at"]) if data.get("fetched_at") else None
    except (ValueError, TypeError, KeyError):
        return Stored()
    if not isinstance(keys, list) or not all(isinstance(key, dict) for key in keys):
        return Stored()
    if fetched_at is not None and fetched_at.tzinfo is None:
        fetched_at = fetched_at.replace(tzinfo=UTC)  # the function writes UTC; a hand-written value may omit it
    return Stored(tuple(keys), fetched_at)


def render(keys: Sequence[Key], *, issuer: str, jwks_uri: str, fetched_at: datetime) -> str:
    """The parameter's new value, compact; refused if it cannot fit even the advanced tier."""
    value = json.dumps(
        {"issuer": issuer, "jwks_uri": jwks_uri, "fetched_at": fetched_at.isoformat(), "keys": list(keys)},
        separators=(",", ":"),
    )
    size = len(value.encode())
    if size > MAX_PARAMETER_BYTES:
        raise KeySetError(f"the trimmed key set is {size} bytes; an SSM parameter holds at most {MAX_PARAMETER_BYTES}")
    return value


def tier_for(value: str) -> str:
    """The tier a value needs by its size. Writes ask for Intelligent-Tiering, which picks this tier itself and,
    unlike an explicit 'Standard', does not fail once a larger set has moved the parameter to the advanced tier
    (Parameter Store cannot move a parameter back)."""
    return "Standard" if len(value.encode()) <= STANDARD_TIER_BYTES else "Advanced"


def changed(stored: Stored, keys: Sequence[Key]) -> bool:
    return sorted(map(_canonical, stored.keys)) != sorted(map(_canonical, keys))


def _canonical(key: Mapping[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


def is_scheduled(event: Mapping[str, Any]) -> bool:
    """EventBridge's scheduled events; anything else (the gateway's request, a manual invoke) is on demand."""
    return event.get("source") == "aws.events" and event.get("detail-type") == "Scheduled Event"


@dataclass(frozen=True)
class Decision:
    fetch: bool
    reason: str


def decide(
    event: Mapping[str, Any], stored: Stored, now: datetime, min_interval: timedelta, last_fetch: datetime | None
) -> Decision:
    """Whether this run fetches from the IdP.

    Scheduled runs always do. On-demand runs are what a gateway sends when a token names a kid it does not know:
    a whole fleet may ask at once after a rotation, and made-up kids cost nothing to send. So an on-demand run does
    not fetch when the parameter already holds the kid asked about, nor within `min_interval` of the parameter's
    fetch time or of this container's own last fetch (the parameter is not rewritten when the keys are the same).
    """
    if is_scheduled(event):
        return Decision(True, "scheduled")
    kid = event.get("kid")
    if isinstance(kid, str) and stored.has_kid(kid):
        return Decision(False, "kid_already_mirrored")
    recent = [moment for moment in (stored.fetched_at, last_fetch) if moment is not None]
    if recent and now - max(recent) < min_interval:
        return Decision(False, "rate_limited")
    return Decision(True, "on_demand")
