"""Audit records fit one CloudWatch log event: every line parses as JSON and is within the cap, whatever
the request, and a cut field carries the length and sha256 of its full text."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.audit import (
    MAX_RECORD_BYTES,
    MIN_RECORD_BYTES,
    WHOLE_RECORD,
    capped_line,
    describe,
    field_name,
)
from gateway.settings import GatewayOptions
from gateway.sinks import JsonLinesSink, json_line
from local.harness import prompt
from tests.gateway.conftest import GatewayFactory

LIMIT = 200 * 1024


def record(**changes: Any) -> dict[str, Any]:
    """A record shaped like the gateway's."""
    return {
        "time": "2026-11-30T00:00:00.000+00:00",
        "request_id": "5f0c6c9e-8d1e-4f57-9d6b-0a4c1c2b3d4e",
        "environment": "dev",
        "user": "dev@example.com",
        "team": "payments",
        "repository": "mobile-app",
        "model": "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "method": "POST",
        "path": "/model/anthropic.claude-sonnet-4-5-20250929-v1:0/invoke",
        "status": 200,
        "outcome": "ok",
        "reason": None,
        "policy": {"prompt": {"action": "log", "matches": {"email-address": 1}}},
        "stream": False,
        "input_tokens": 12,
        "output_tokens": 4,
        "limits": {"mode": "redis", "limit": None, "org_over_soft_cap": False},
        "prompt": "Say hello.",
        "completion": "Hello.",
        **changes,
    }


def strict_json(line: str) -> dict[str, Any]:
    """Parse as a strict JSON reader would: no NaN or Infinity."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    parsed: dict[str, Any] = json.loads(line, parse_constant=refuse)
    return parsed


def as_json(value: Any) -> Any:
    """The value as any JSON reader sees it once written (surrogate pairs joined, tuples as lists)."""
    return json.loads(json_line(value))


def test_the_cap_is_below_what_the_cloudwatch_agent_forwards_whole() -> None:
    assert MAX_RECORD_BYTES == 256 * 1024 - 26
    assert GatewayOptions.model_fields["audit_record_limit_bytes"].default == LIMIT
    options = {"auth": {"issuer": "i", "audience": "a", "jwks_url": "u"}}
    with pytest.raises(ValidationError, match="audit_record_limit_bytes"):
        GatewayOptions.model_validate({**options, "audit_record_limit_bytes": MAX_RECORD_BYTES + 1})
    with pytest.raises(ValidationError, match="audit_record_limit_bytes"):
        GatewayOptions.model_validate({**options, "audit_record_limit_bytes": MIN_RECORD_BYTES - 1})
    with pytest.raises(ValidationError, match="audit_text_limit_bytes"):  # gone, not silently ignored
        GatewayOptions.model_validate({**options, "audit_text_limit_bytes": 1024})


def test_a_record_within_the_cap_is_written_whole() -> None:
    line = capped_line(record(), LIMIT)
    assert line == json_line({**record(), "truncated": False})
    assert "cut" not in strict_json(line)


def test_prompt_and_completion_share_the_room_fairly() -> None:
    big = "a" * (1024 * 1024)
    line = capped_line(record(prompt=big, completion=big.upper()), LIMIT)
    parsed = strict_json(line)
    assert len(line) <= LIMIT and parsed["truncated"] is True
    assert parsed["cut"] == {"prompt": describe(big), "completion": describe(big.upper())}
    assert big.startswith(parsed["prompt"]) and big.upper().startswith(parsed["completion"])
    assert abs(len(parsed["prompt"]) - len(parsed["completion"])) <= 1
    assert len(line) > LIMIT - 64  # the room is used, not thrown away
    assert parsed["path"] == record()["path"] and parsed["user"] == "dev@example.com"  # nothing else cut


def test_a_short_text_is_kept_whole_and_not_said_to_be_cut() -> None:
    short, long = "b" * 30_000, "c" * 2_000_000
    parsed = strict_json(capped_line(record(prompt=short, completion=long), LIMIT))
    assert parsed["prompt"] == short and list(parsed["cut"]) == ["completion"]
    assert 150_000 < len(parsed["completion"]) < LIMIT - len(short)


def test_the_cut_is_by_serialized_size_not_by_characters() -> None:
    """A NUL is one byte of UTF-8 and six written (\\u0000): text under the cap can make a line over it."""
    text = "\x00" * 150_000
    assert len(text.encode()) < LIMIT < len(json_line(text))
    line = capped_line(record(prompt=text), LIMIT)
    assert len(line.encode()) <= LIMIT
    assert strict_json(line)["cut"]["prompt"] == {"bytes": 150_000, "sha256": hashlib.sha256(text.encode()).hexdigest()}


def test_a_cut_never_splits_an_escape_or_a_surrogate_pair() -> None:
    limit = 2 * MIN_RECORD_BYTES
    for unit in ("😀", "é\n", '\\"', "\x01😀é"):  # written 12, 8, 4 and 24 characters long
        for pad in range(12):  # every offset of the cut against the escapes
            text = "x" * pad + unit * 6_000
            line = capped_line(record(prompt=text), limit)
            kept = strict_json(line)["prompt"]
            assert len(line) <= limit and text.startswith(kept) and len(kept) > 1000
            assert not any("\ud800" <= char <= "\udfff" for char in kept)


def test_lengths_are_utf8_bytes_and_the_digest_verifies_a_full_copy() -> None:
    text = "café ✓ 😀 " * 100_000
    parsed = strict_json(capped_line(record(completion=text), LIMIT))
    full_copy = text.encode()
    assert parsed["cut"]["completion"]["bytes"] == len(full_copy) != len(text)
    assert parsed["cut"]["completion"]["sha256"] == hashlib.sha256(full_copy).hexdigest()


def test_inflated_headers_and_claims_are_cut_too_and_cannot_push_the_prompt_out() -> None:
    inflated = record(
        path="/model/" + "p" * 400_000,
        repository="r" * 300_000,
        user="u" * 250_000,
        reason="e" * 250_000,
        policy={"prompt": {"action": "x" * 300_000, "matches": {}}},
        prompt="q" * 1_000_000,
    )
    line = capped_line(inflated, LIMIT)
    parsed = strict_json(line)
    assert len(line) <= LIMIT
    assert set(parsed["cut"]) == {"path", "repository", "user", "reason", "policy.prompt.action", "prompt"}
    assert parsed["cut"]["policy.prompt.action"] == describe("x" * 300_000)
    assert len(parsed["prompt"]) > 20_000  # a fair share, like each inflated field
    assert parsed["team"] == "payments" and parsed["request_id"] == record()["request_id"]


def test_a_record_that_cannot_fit_leaves_a_minimal_one_with_the_whole_lines_digest() -> None:
    huge = record(policy={"prompt": {"matches": {f"rule-{i}": i for i in range(1000)}}})  # ~17 KB of numbers
    line = capped_line(huge, MIN_RECORD_BYTES)
    parsed = strict_json(line)
    whole = json_line({**huge, "truncated": False})
    assert parsed == {
        "time": huge["time"], "request_id": huge["request_id"], "environment": "dev", "method": "POST",
        "status": 200, "outcome": "ok", "truncated": True,
        "cut": {WHOLE_RECORD: {"bytes": len(whole), "sha256": hashlib.sha256(whole.encode()).hexdigest()}},
    }  # fmt: skip


def test_values_json_has_no_type_for_are_written_as_strings() -> None:
    parsed = strict_json(capped_line(record(latency_ms=float("nan"), first_byte_ms=float("inf"), at=Path("x")), LIMIT))
    assert (parsed["latency_ms"], parsed["first_byte_ms"], parsed["at"]) == ("nan", "inf", "x")


def test_the_sink_writes_a_line_exactly_as_given(tmp_path: Path) -> None:
    sink = JsonLinesSink(tmp_path / "audit.jsonl", 100, "audit")
    sink.start()
    line = capped_line(record(prompt="d" * 1_000_000), LIMIT)
    sink.put(line)
    sink.put({"plain": "record"})
    with pytest.raises(ValueError, match="newline"):
        sink.put('{"a":1}\n{"b":2}')
    sink.close()
    assert (tmp_path / "audit.jsonl").read_text() == line + "\n" + '{"plain":"record"}\n'


def test_fields_are_named_by_their_path() -> None:
    assert field_name(("prompt",)) == "prompt"
    assert field_name(("policy", "prompt", "action")) == "policy.prompt.action"
    assert field_name(("items", 2, "text")) == "items[2].text"


# -- whatever the input ----------------------------------------------------------------------------

ANY_CHARACTER = st.characters(exclude_categories=())  # control characters and lone surrogates included
# Any size, cheaply: a short random piece repeated.
ANY_STRING = st.builds(lambda piece, times: piece * times, st.text(ANY_CHARACTER, max_size=8), st.integers(0, 30_000))
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), ANY_STRING)
NESTED = st.recursive(
    SCALAR,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text("abc_", min_size=1, max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
RECORDS = st.fixed_dictionaries(
    {
        "time": ANY_STRING,
        "request_id": ANY_STRING,
        "user": st.none() | ANY_STRING,
        "team": st.none() | ANY_STRING,
        "repository": st.none() | ANY_STRING,
        "path": ANY_STRING,
        "status": st.integers(),
        "reason": st.none() | ANY_STRING,
        "policy": NESTED,
        "limits": NESTED,
        "prompt": ANY_STRING,
        "completion": ANY_STRING,
    }
)


def leaf(node: Any, name: str) -> Any:
    """The value a `cut` name (`policy.rules[2].id`) points at."""
    for index, key in re.findall(r"\[(\d+)\]|([a-z_]+)", name):
        node = node[int(index)] if index else node[key]
    return node


def written(value: Any) -> Any:
    """The value as a JSON reader sees it in the record: what JSON has no number for, as a string."""
    if isinstance(value, dict):
        return {key: written(item) for key, item in value.items()}
    if isinstance(value, list):
        return [written(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return as_json(value)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(RECORDS, st.integers(MIN_RECORD_BYTES, 64 * 1024))
def test_any_record_is_one_parseable_line_within_the_cap(original: dict[str, Any], limit: int) -> None:
    line = capped_line(original, limit)
    assert len(line.encode()) <= limit and line.isascii() and "\n" not in line
    parsed = strict_json(line)
    cut = parsed.get("cut", {})
    assert parsed["truncated"] is bool(cut)
    if WHOLE_RECORD in cut:  # nothing fitted: the digest is of the whole line
        return
    for name, full in cut.items():
        text = leaf(original, name)
        assert full == describe(text)
        assert as_json(text).startswith(leaf(parsed, name)) and leaf(parsed, name) != as_json(text)
    for key, value in original.items():  # what was not cut is as it was
        if key not in cut and not any(name.startswith((key + ".", key + "[")) for name in cut):
            assert parsed[key] == written(value)


# -- through a running gateway ---------------------------------------------------------------------


@pytest.mark.usefixtures("reset_vendor")
def test_a_two_megabyte_exchange_gives_one_capped_record_that_describes_the_full_text(
    make_stack: GatewayFactory,
) -> None:
    stack = make_stack(policy__max_request_bytes=4 * 1024 * 1024)
    asked = "naïve café, tab\there ✓ " * 45_000  # ~1 MiB, escapes written longer than they are
    answered = "déjà vu\n😀 " * 80_000  # ~1 MiB of UTF-8
    stack.vendor_control(completion=answered)
    response = stack.call("invoke", prompt(asked))
    assert response.status_code == 200
    assert response.json()["content"][0]["text"] == answered  # the client gets it all; only the record is cut
    request_id = response.headers["x-request-id"]
    record = stack.audit(request_id)
    (line,) = [raw for raw in stack.settings.audit.path.read_bytes().splitlines() if request_id.encode() in raw]
    assert len(line) <= stack.settings.audit_record_limit_bytes == LIMIT
    assert strict_json(line.decode()) == record and record["truncated"] is True
    assert record["cut"]["prompt"] == {
        "bytes": len(asked.encode()),
        "sha256": hashlib.sha256(asked.encode()).hexdigest(),
    }
    assert record["cut"]["completion"] == {
        "bytes": len(answered.encode()),
        "sha256": hashlib.sha256(answered.encode()).hexdigest(),
    }
    assert asked.startswith(record["prompt"]) and answered.startswith(record["completion"])
    assert len(record["prompt"]) > 20_000 and len(record["completion"]) > 20_000
    assert record["status"] == 200 and record["user"] == "dev@example.com"
    assert httpx.get(stack.gateway.url + "/healthz").json()["audit"]["ok"] is True
