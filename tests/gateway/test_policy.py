"""The content policy: what each shipped rule catches and lets through, streaming, and linear time."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest

from config import load_config
from gateway.policy import Policy, StreamScanner, luhn_valid
from gateway.settings import PolicyRule, PolicySettings

SHIPPED = load_config("dev").gateway.policy


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy(SHIPPED)


# A real-looking secret for every shipped rule, and a near miss it must not count.
CASES = {
    "aws-access-key-id": ("key = AKIAZ7QXMP3VBN2LKW4R", "key = AKIAZ7QXMP3VBN2LKW4"),
    "aws-secret-access-key": (
        "aws_secret_access_key = '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'",
        "aws_secret_access_key = 'too-short'",
    ),
    "private-key": ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow", "-----BEGIN PUBLIC KEY-----\nMIIBIj"),
    "gcp-service-account-key": ('"private_key_id": "' + "a1" * 20 + '"', '"private_key_id": "not-hex"'),
    "github-token": ("token ghp_" + "A1b2C3d4E5" * 3 + "F6g7H8", "ghp_short"),
    "slack-token": ("xoxb-123456789012-abcdefghij", "xoxz-123456789012-abcdefghij"),
    "stripe-live-key": ("sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", "sk_test_4eC39HqLyjWDarjtT1zdp7dc"),
    "ai-vendor-key": ("sk-ant-api03-" + "x" * 40, "sk-ant-short"),
    "jwt": ("Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyMSJ9.c2lnbmF0dXJlLXBhcnQ", "eyJhbGciOi.only-one-part"),
    "connection-string-password": ("postgres://app:s3cr3t-pw@db.internal:5432/app", "postgres://db.internal:5432/app"),
    "password-assignment": ('password = "Tr0ub4dor&3x"', 'password = "changeme"'),
    "card-number": ("card 4000 0012 3456 7899 on file", "card 4000 0012 3456 7890 on file"),
    "us-ssn": ("ssn 536-22-8765", "ssn 000-12-3456"),
    "iban": ("IBAN FR14 2004 1010 0505 0001 3M02 606", "FR14"),
    "email-address": ("mail alice@bank.co.uk", "mail alice at bank"),
}


def test_every_shipped_rule_has_cases() -> None:
    assert {rule.id for rule in SHIPPED.rules} == set(CASES)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_catches_the_real_thing_and_not_the_near_miss(policy: Policy, rule_id: str) -> None:
    hit, miss = CASES[rule_id]
    assert policy.scan(hit, "prompt").matches[rule_id] == 1
    assert policy.scan(miss, "prompt").matches[rule_id] == 0


@pytest.mark.parametrize(
    ("text", "rule_id"),
    [
        ("test card 4111 1111 1111 1111", "card-number"),
        ("stripe test 4242424242424242", "card-number"),
        ("fixture ssn 078-05-1120", "us-ssn"),
        ("docs key AKIAIOSFODNN7EXAMPLE", "aws-access-key-id"),
        ("contact noreply@github.com", "email-address"),
    ],
)
def test_known_fixtures_are_allowlisted(policy: Policy, text: str, rule_id: str) -> None:
    assert policy.scan(text, "prompt").matches[rule_id] == 0


def test_actions_block_beats_redact_beats_log(policy: Policy) -> None:
    logged = policy.scan("write to alice@bank.co.uk", "prompt")
    assert (logged.action, logged.text) == ("log", "write to alice@bank.co.uk")
    redacted = policy.scan("alice@bank.co.uk paid with 4000 0012 3456 7899", "prompt")
    assert redacted.action == "redact"
    assert redacted.text == "alice@bank.co.uk paid with [REDACTED:card-number]"
    blocked = policy.scan("4000 0012 3456 7899 and AKIAZ7QXMP3VBN2LKW4R", "prompt")
    assert (blocked.action, blocked.blocking_rules) == ("block", ["aws-access-key-id"])


def test_rules_apply_where_configured() -> None:
    rule = PolicyRule(id="only-answers", pattern="secret", applies_to="completion", action="block")
    policy = Policy(PolicySettings(rules=(rule,)))
    assert policy.scan("a secret", "prompt").action == "allow"
    assert policy.scan("a secret", "completion").action == "block"


def test_luhn() -> None:
    assert luhn_valid("4000 0012 3456 7899")
    assert not luhn_valid("4000 0012 3456 7890")
    assert not luhn_valid("0000")  # too short to be a card
    assert not luhn_valid("4420 4593 8564")  # 12 digits: a phone number, whatever its checksum


def test_repository_scope() -> None:
    policy = Policy(SHIPPED)
    assert policy.repository_policy("payments-core") == "pci-scope"
    assert policy.repository_policy("platform/terraform-modules") == "infrastructure-as-code"
    assert policy.repository_policy("mobile-app") is None
    assert policy.repository_policy(None) is None


def stream(policy: Policy, pieces: list[str]) -> tuple[str, StreamScanner]:
    scanner = StreamScanner(policy)
    out = "".join(scanner.feed(piece) for piece in pieces) + scanner.finish()
    return out, scanner


def test_stream_redacts_a_match_split_across_chunks(policy: Policy) -> None:
    text = "Use card 4000 0012 3456 7899 for the refund. " + "Filler text. " * 80
    pieces = [text[i : i + 3] for i in range(0, len(text), 3)]
    out, scanner = stream(policy, pieces)
    assert out == text.replace("4000 0012 3456 7899", "[REDACTED:card-number]")
    assert scanner.total.matches["card-number"] == 1
    assert not scanner.blocked


def test_stream_releases_ordinary_text_at_once(policy: Policy) -> None:
    scanner = StreamScanner(policy)
    sentence = "The build failed because the cache key changed; rerun it with a clean cache. "
    assert scanner.feed(sentence) == sentence
    assert scanner.finish() == ""


def test_stream_holds_a_candidate_only_until_it_is_ruled_out(policy: Policy) -> None:
    scanner = StreamScanner(policy)
    assert scanner.feed("the key starts AKIA12") == "the key starts "
    assert scanner.feed("34 and is too short. ") == "AKIA1234 and is too short. "
    assert not scanner.blocked


def test_stream_redacts_a_token_far_longer_than_a_fixed_holdback(policy: Policy) -> None:
    token = "eyJ" + "a" * 3000 + ".eyJ" + "b" * 3000 + "." + "c" * 2000
    text = f"Authorization: Bearer {token} (expires soon)"
    out, scanner = stream(policy, [text[i : i + 7] for i in range(0, len(text), 7)])
    assert out == "Authorization: Bearer [REDACTED:jwt] (expires soon)"
    assert scanner.total.matches["jwt"] == 1


def test_stream_finds_a_secret_split_across_segments(policy: Policy) -> None:
    scanner = StreamScanner(policy)
    scanner.feed("aws key: AKIA")
    scanner.finish()  # the text block ends; the tool input goes on
    assert scanner.feed("ABCDEFGHIJKLMNOP\n") == ""
    assert scanner.blocked and scanner.total.blocking_rules == ["aws-access-key-id"]


def test_stream_blocks_a_redact_match_in_signed_text(policy: Policy) -> None:
    scanner = StreamScanner(policy)
    scanner.feed("The customer's SSN is 536-22-8765.", signed=True)
    scanner.finish()
    assert scanner.blocked and scanner.total.blocking_rules == ["us-ssn"]


def test_stream_block_releases_nothing_more(policy: Policy) -> None:
    scanner = StreamScanner(policy)
    first = scanner.feed("Here is the key: " + "ok " * 300)
    assert first and "PRIVATE" not in first
    assert scanner.feed("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn") == ""
    assert scanner.blocked and scanner.total.blocking_rules == ["private-key"]
    assert scanner.finish() == ""


# -- adversarial inputs: every shipped rule, in linear time ------------------------------------

NEAR_MISSES: dict[str, Callable[[int], str]] = {
    "aws-access-key-id": lambda n: ("AKIA" + "Z" * 15 + " ") * n,
    "aws-secret-access-key": lambda n: ("aws_secret_access_key = '" + "A" * 39 + "' ") * n,
    "private-key": lambda n: "-----BEGIN RSA PRIVATE KE " * n,
    "gcp-service-account-key": lambda n: ('"private_key_id": "' + "a" * 39 + '" ') * n,
    "github-token": lambda n: ("ghp_" + "a" * 35 + " ") * n,
    "slack-token": lambda n: "xoxb-abc " * n,
    "stripe-live-key": lambda n: "sk_live_short " * n,
    "ai-vendor-key": lambda n: "sk-ant-abc " * n,
    "jwt": lambda n: "eyJ" + "a" * (8 * n) + ".x",  # a long first part, never a second
    "connection-string-password": lambda n: "postgres://user:" * n,
    "password-assignment": lambda n: 'password = "' * n,
    "card-number": lambda n: "4000 0012 3456 789x " * n,
    "us-ssn": lambda n: "123-45-678 " * n,
    "iban": lambda n: "GB82 WEST 12! " * n,
    "email-address": lambda n: "a" * 60 + "@" * n,
}


def migration(lines: int) -> str:
    """A generated SQL migration of the kind that once held a PII regex at 100% CPU for 11 minutes."""
    rng = random.Random(4200)
    rows = [
        f"INSERT INTO customers (id, name, email, phone, note) VALUES ({i}, 'Customer {i}', "
        f"'customer{i}@{'bank.co.uk' if i % 500 == 250 else 'example.com'}', "
        f"'+44 20 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}', "
        f"'{'x' * rng.randint(10, 60)} {'4000 0012 3456 7899' if i % 1000 == 999 else rng.randint(10**11, 10**12)}');"
        for i in range(lines - 2)
    ]
    return "BEGIN;\n" + "\n".join(rows) + "\nCOMMIT;\n"


def scan_seconds(policy: Policy, text: str) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        policy.scan(text, "prompt")
        best = min(best, time.process_time() - started)
    return best


def test_every_shipped_rule_has_an_adversarial_input() -> None:
    assert set(NEAR_MISSES) == {rule.id for rule in SHIPPED.rules}


@pytest.mark.parametrize("rule_id", sorted(NEAR_MISSES))
def test_adversarial_input_scales_linearly(rule_id: str) -> None:
    """1 MiB of near-matches, then 4 MiB: a backtracking engine grows quadratically or worse; RE2 by ~4x.

    This compares two runs of the same code on the same machine (CPU time, best of three), not a limit.
    """
    (rule,) = [r for r in SHIPPED.rules if r.id == rule_id]
    policy = Policy(PolicySettings(rules=(rule,)))
    make = NEAR_MISSES[rule_id]
    unit = len(make(2)) - len(make(1))
    one_mib = make((1 << 20) // unit)
    four_mib = one_mib * 4
    assert len(one_mib) >= (1 << 20) - 1024
    assert policy.scan(one_mib, "prompt").matches[rule_id] == 0
    small, large = scan_seconds(policy, one_mib), scan_seconds(policy, four_mib)
    assert large < 10 * max(small, 0.002), f"{rule_id}: 1 MiB {small:.3f}s, 4 MiB {large:.3f}s"


def test_4200_line_migration_with_every_rule(policy: Policy) -> None:
    text = migration(4200)
    assert text.count("\n") == 4200
    scan = policy.scan(text, "prompt")
    # Four real-looking card numbers among 4,198 phone numbers and 12-digit ids; eight real addresses
    # among thousands of allowlisted @example.com ones.
    assert scan.action == "redact"
    assert dict(scan.matches) == {"card-number": 4, "email-address": 8}
    assert scan.text.count("[REDACTED:card-number]") == 4
    small, large = scan_seconds(policy, text), scan_seconds(policy, text * 4)
    assert large < 10 * max(small, 0.002), f"migration: x1 {small:.3f}s, x4 {large:.3f}s"
