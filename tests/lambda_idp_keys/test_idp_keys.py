"""The pure part of the IdP-keys function: discovery, what a key set must be, trimming, size, and when to fetch."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from idp_keys import (
    EMPTY_VALUE,
    MAX_PARAMETER_BYTES,
    STANDARD_TIER_BYTES,
    VERIFIER_MEMBERS,
    KeySetError,
    Stored,
    changed,
    checked_url,
    decide,
    discovery_url,
    jwks_uri_from,
    parse_stored,
    public_signing_keys,
    render,
    tier_for,
)

from tests.lambda_idp_keys.keys import ISSUER, JWKS_URI, discovery, ec_jwk, rsa_jwk, rsa_private, rsa_private_jwk

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
MINUTE = timedelta(seconds=60)
SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event", "time": "2026-11-30T10:00:00Z"}


# -- discovery -------------------------------------------------------------------------------------


def test_the_discovery_document_sits_under_the_issuer() -> None:
    assert discovery_url(ISSUER) == ISSUER + "/.well-known/openid-configuration"
    assert discovery_url("https://idp.example.com/") == "https://idp.example.com/.well-known/openid-configuration"


def test_the_discovery_document_gives_the_key_sets_url() -> None:
    assert jwks_uri_from(discovery(), ISSUER) == JWKS_URI


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        (["not", "an", "object"], "not a JSON object"),
        (discovery(issuer="https://evil.example.com/oauth2/default"), "is for issuer"),
        (discovery(issuer=ISSUER + "/"), "is for issuer"),  # identical means identical (Discovery 1.0, 4.3)
        ({"issuer": ISSUER}, "no jwks_uri"),
        (discovery(jwks_uri=""), "no jwks_uri"),
        (discovery(jwks_uri="http://idp.example.com/keys"), "must be an https:// URL"),
    ],
)
def test_a_bad_discovery_document_is_refused(document: Any, complaint: str) -> None:
    with pytest.raises(KeySetError, match=complaint):
        jwks_uri_from(document, ISSUER)


def test_plain_http_only_to_a_loopback_address() -> None:
    assert checked_url("http://127.0.0.1:8000/keys", "u") == "http://127.0.0.1:8000/keys"
    assert checked_url("http://localhost:8000/keys", "u") == "http://localhost:8000/keys"
    for url in ("http://10.0.0.1/keys", "http://idp.example.com/keys", "ftp://idp.example.com/keys", "keys"):
        with pytest.raises(KeySetError):
            checked_url(url, "u")


# -- the key set ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_set", "complaint"),
    [
        ([], "not a JSON object"),
        ({}, "no 'keys' list"),
        ({"keys": []}, "no 'keys' list"),
        ({"keys": "k1"}, "no 'keys' list"),
        ({"keys": ["k1"]}, "key 0 is not a JSON object"),
    ],
)
def test_a_malformed_key_set_is_refused(key_set: Any, complaint: str) -> None:
    with pytest.raises(KeySetError, match=complaint):
        public_signing_keys(key_set)


def test_a_set_carrying_private_key_material_is_refused_whole() -> None:
    with pytest.raises(KeySetError, match=r"key 1 \(kid 'leaked'\) carries private key material: \['d', 'dp'"):
        public_signing_keys({"keys": [rsa_jwk("good"), rsa_private_jwk("leaked")]})


@pytest.mark.parametrize("member", ["d", "p", "q", "k"])
def test_any_one_private_member_is_enough_to_refuse(member: str) -> None:
    with pytest.raises(KeySetError, match="private key material"):
        public_signing_keys({"keys": [{**rsa_jwk("k1"), member: "c2VjcmV0"}]})


def test_a_symmetric_key_is_refused() -> None:
    with pytest.raises(KeySetError, match="private key material"):
        public_signing_keys({"keys": [rsa_jwk("k1"), {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}]})


def test_keys_are_trimmed_to_what_a_verifier_needs() -> None:
    published = [rsa_jwk("r1", x5u="https://idp.example.com/cert"), ec_jwk("e1")]
    kept = public_signing_keys({"keys": published})
    assert [key["kid"] for key in kept] == ["e1", "r1"]
    for original, trimmed in zip(sorted(published, key=lambda key: key["kid"]), kept, strict=True):
        assert set(trimmed) <= set(VERIFIER_MEMBERS)
        assert trimmed == {member: original[member] for member in VERIFIER_MEMBERS if member in original}
    assert set(kept[1]) == {"kty", "kid", "use", "alg", "n", "e"}  # no x5c, x5t, x5u
    assert set(kept[0]) == {"kty", "kid", "use", "alg", "crv", "x", "y"}


def test_encryption_keys_and_unknown_key_types_are_left_out() -> None:
    kept = public_signing_keys({"keys": [rsa_jwk("sig"), rsa_jwk("enc", use="enc"), {"kty": "XYZ", "kid": "odd"}]})
    assert [key["kid"] for key in kept] == ["sig"]
    with pytest.raises(KeySetError, match="no public signing key"):
        public_signing_keys({"keys": [rsa_jwk("enc", use="enc")]})


@pytest.mark.parametrize(
    ("key", "complaint"),
    [
        ({"kty": "RSA", "kid": "k1", "e": "AQAB"}, r"lacks \['n'\]"),
        ({"kty": "EC", "kid": "k1", "crv": "P-256", "x": "AA"}, r"lacks \['y'\]"),
        ({"kty": "RSA", "kid": "k1", "n": 12345, "e": "AQAB"}, "not a non-empty string"),
    ],
)
def test_a_key_missing_its_public_members_is_refused(key: dict[str, Any], complaint: str) -> None:
    with pytest.raises(KeySetError, match=complaint):
        public_signing_keys({"keys": [rsa_jwk("fine"), key]})


def test_two_keys_with_one_kid_are_refused() -> None:
    with pytest.raises(KeySetError, match=r"more than once: \['k1'\]"):
        public_signing_keys({"keys": [rsa_jwk("k1"), rsa_jwk("k1")]})


def test_the_trimmed_set_still_verifies_the_idps_tokens() -> None:
    private = rsa_private(2048, 1)
    value = render(
        public_signing_keys({"keys": [rsa_jwk("k1", private), ec_jwk("e1")]}),
        issuer=ISSUER,
        jwks_uri=JWKS_URI,
        fetched_at=NOW,
    )
    token = jwt.encode({"sub": "dev", "exp": int(time.time()) + 60}, private, algorithm="RS256", headers={"kid": "k1"})
    key = jwt.PyJWKSet.from_dict(json.loads(value))["k1"]
    assert jwt.decode(token, key, algorithms=["RS256"])["sub"] == "dev"


# -- size and tier -----------------------------------------------------------------------------------


def test_a_typical_set_fits_the_standard_tier_once_trimmed() -> None:
    # Six 2048-bit keys with their certificate chains, as some IdPs publish: far over 4 KB as published.
    published = {"keys": [rsa_jwk(f"key-{i}") for i in range(6)]}
    assert len(json.dumps(published)) > STANDARD_TIER_BYTES
    value = render(public_signing_keys(published), issuer=ISSUER, jwks_uri=JWKS_URI, fetched_at=NOW)
    assert len(value.encode()) <= STANDARD_TIER_BYTES and tier_for(value) == "Standard"


def test_a_larger_set_needs_the_advanced_tier_and_a_too_large_one_is_refused() -> None:
    (one,) = public_signing_keys({"keys": [rsa_jwk("key", rsa_private(4096))]})  # ~0.8 KB trimmed
    big = [{**one, "kid": f"key-{i}"} for i in range(12)]
    value = render(big[:6], issuer=ISSUER, jwks_uri=JWKS_URI, fetched_at=NOW)
    assert STANDARD_TIER_BYTES < len(value.encode()) <= MAX_PARAMETER_BYTES and tier_for(value) == "Advanced"
    with pytest.raises(KeySetError, match="at most 8192"):
        render(big, issuer=ISSUER, jwks_uri=JWKS_URI, fetched_at=NOW)


# -- what the parameter holds ----------------------------------------------------------------------------


def test_the_parameter_round_trips() -> None:
    keys = public_signing_keys({"keys": [rsa_jwk("k1"), ec_jwk("e1")]})
    stored = parse_stored(render(keys, issuer=ISSUER, jwks_uri=JWKS_URI, fetched_at=NOW))
    assert stored == Stored(tuple(keys), NOW)
    assert stored.has_kid("k1") and not stored.has_kid("k2")


@pytest.mark.parametrize("value", [None, "", EMPTY_VALUE, "not json", "[]", '{"keys": "k1"}', '{"fetched_at": "x"}'])
def test_an_empty_or_unreadable_parameter_counts_as_empty(value: str | None) -> None:
    assert parse_stored(value) == Stored()


def test_the_same_keys_in_another_order_are_no_change() -> None:
    keys = public_signing_keys({"keys": [rsa_jwk("k1"), rsa_jwk("k2")]})
    stored = Stored(tuple(keys), NOW)
    assert not changed(stored, list(reversed(keys)))
    assert changed(stored, keys[:1])
    assert changed(stored, [*keys, public_signing_keys({"keys": [ec_jwk("e1")]})[0]])
    assert changed(Stored(), keys)


# -- when to fetch --------------------------------------------------------------------------------------


def stored_at(fetched_at: datetime | None, *kids: str) -> Stored:
    return Stored(tuple({"kty": "RSA", "kid": kid, "n": "AA", "e": "AQAB"} for kid in kids), fetched_at)


def test_scheduled_runs_always_fetch() -> None:
    decision = decide(SCHEDULED, stored_at(NOW, "k1"), NOW + timedelta(seconds=1), MINUTE, NOW)
    assert (decision.fetch, decision.reason) == (True, "scheduled")


def test_an_on_demand_run_for_a_kid_already_mirrored_does_not_fetch() -> None:
    decision = decide({"kid": "k1"}, stored_at(NOW - timedelta(hours=1), "k1"), NOW, MINUTE, None)
    assert (decision.fetch, decision.reason) == (False, "kid_already_mirrored")


def test_on_demand_runs_are_rate_limited_by_the_parameters_fetch_time() -> None:
    stored = stored_at(NOW, "k1")
    assert decide({"kid": "k2"}, stored, NOW + timedelta(seconds=59), MINUTE, None).reason == "rate_limited"
    assert decide({"kid": "k2"}, stored, NOW + timedelta(seconds=60), MINUTE, None).fetch


def test_on_demand_runs_are_rate_limited_by_this_containers_last_fetch() -> None:
    # The keys did not change, so the parameter still says an hour ago: the container's memory holds the line.
    stored = stored_at(NOW - timedelta(hours=1), "k1")
    assert decide({"kid": "made-up"}, stored, NOW + timedelta(seconds=30), MINUTE, NOW).reason == "rate_limited"
    assert decide({"kid": "made-up"}, stored, NOW + timedelta(seconds=61), MINUTE, NOW).fetch


def test_an_empty_parameter_is_filled_on_demand() -> None:
    decision = decide({}, Stored(), NOW, MINUTE, None)
    assert (decision.fetch, decision.reason) == (True, "on_demand")
