"""The policy's scanner (RE2 set prefilter, chunked searches, direct RE2 calls, per-request match cap) finds
exactly what every rule's own `finditer` finds, on adversarial shapes and random mixes of them; and past the
cap a body is blocked, with nothing unchecked passed on or recorded."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from config import load_config
from gateway import prefilter
from gateway.bodies import check_body
from gateway.policy import OVER_CAP, Policy, Scan
from gateway.settings import PolicyRule, PolicySettings
from local import adversarial
from local.policy_reference import ReferencePolicy

SHIPPED = load_config("dev").gateway.policy
UNCAPPED = SHIPPED.model_copy(update={"max_matches_per_rule": 10_000_000, "max_matches_per_request": 100_000_000})
CHUNK = prefilter.CHUNK_BYTES


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy(UNCAPPED)


@pytest.fixture(scope="module")
def reference() -> ReferencePolicy:
    return ReferencePolicy(UNCAPPED)


def outcome(scan: Scan) -> tuple[object, ...]:
    return scan.text, scan.recorded, dict(scan.matches), scan.action, scan.blocking_rules


def assert_same(policy: Policy, reference: ReferencePolicy, text: str) -> None:
    for where in ("prompt", "completion"):
        found = [(m.rule.id, m.start, m.end) for m in policy.find(text, where)]
        expected = [(m.rule.id, m.start, m.end) for m in reference.find(text, where)]
        assert found == expected
    for signed in (False, True):
        assert outcome(policy.scan(text, "prompt", signed=signed)) == outcome(
            reference.scan(text, "prompt", signed=signed)
        )


@pytest.mark.parametrize("shape", [*adversarial.SHAPES, "mixed"])
def test_every_shape_gives_what_each_rules_finditer_gives(
    policy: Policy, reference: ReferencePolicy, shape: str
) -> None:
    # Small, and over several chunks, so matches fall across chunk edges.
    for size, seed in ((700, 1), (3 * CHUNK + 1234, 2)):
        assert_same(policy, reference, adversarial.generate(shape, size, seed))


def test_the_shapes_have_matches_to_compare(reference: ReferencePolicy) -> None:
    """The comparison above is not between two empty results: the shapes hold matches of every rule."""
    texts = [adversarial.generate(shape, 3 * CHUNK + 1234, 2) for shape in adversarial.SHAPES]
    found = Counter(m.rule.id for text in texts for m in reference.find(text, "prompt"))
    assert set(found) == {rule.id for rule in SHIPPED.rules}


def test_random_mixes_give_what_each_rules_finditer_gives(policy: Policy, reference: ReferencePolicy) -> None:
    rng = random.Random(14)
    units = list(adversarial.SHAPES.values())
    glue = ["", " ", "\n", "\u200b", "\u00a0", "ﬁ", "…", "é", "٤", "_", "-", "@", ".", "\ufdd0"]
    for _ in range(60):
        pieces = [rng.choice(units)(rng) + rng.choice(glue) for _ in range(rng.randint(1, 400))]
        text = "".join(pieces)
        cut = rng.randint(0, len(text))
        assert_same(policy, reference, text[cut:] + text[:cut])


@pytest.mark.parametrize("secret", ["AKIAZ7QXMP3VBN2LKW4R", "4000 0012 3456 7899", "536-22-8765", "alice@bank.co.uk"])
def test_a_match_across_a_chunk_edge_is_found(policy: Policy, reference: ReferencePolicy, secret: str) -> None:
    for shift in range(-len(secret) - 2, 3):
        text = "x " * ((CHUNK + shift) // 2) + secret + " tail"
        assert secret.split()[0] in text
        assert_same(policy, reference, text)
        assert policy.scan(text, "prompt").matches


def test_a_long_jwt_across_many_chunks_is_found(policy: Policy, reference: ReferencePolicy) -> None:
    token = "eyJ" + "a" * (2 * CHUNK) + ".eyJ" + "b" * CHUNK + "." + "c" * 100
    text = "prose. " * 3000 + token + " more"
    assert_same(policy, reference, text)
    assert policy.scan(text, "prompt").matches["jwt"] == 1


def test_loosen_drops_only_repeat_upper_bounds() -> None:
    assert prefilter.loosen(r"\b[0-9]{3}-\d{2,4}x{5}") == r"\b[0-9]{3,}-\d{2,}x{5,}"
    assert prefilter.loosen(r"[{2,3}]{1,2}a\{2}\x{41}{3}") == r"[{2,3}]{1,}a\{2}\x{41}{3,}"
    assert prefilter.loosen(r"[]{}]{0,9}[[:alpha:]{2}]") == r"[]{}]{0,}[[:alpha:]{2}]"
    assert prefilter.loosen(r"\Qa{2}\E") == r"\Qa{2}\E"


def test_reach_is_none_where_pythons_parser_may_read_a_pattern_differently() -> None:
    assert prefilter.reach_bytes(r"\bab{2,5}") == 4 * 6
    for pattern in (r"a+", r"a?", r"a{,3}", r"[[:alpha:]]{3}", r"\pL{2}", r"\x{41}", r"(?U)a{2}", r"\Qab\E"):
        assert prefilter.reach_bytes(pattern) is None, pattern


def test_a_set_that_gives_no_answer_means_every_rule_is_searched() -> None:
    rules = prefilter._RuleSet({0: "abc", 1: "def"}, None)

    class Failed:
        def Match(self, _data: object) -> None:  # noqa: N802  (RE2's name)
            return None  # what RE2::Set reports when its automaton runs out of memory

    rules.regexps = Failed()
    assert rules.matching(b"nothing here") == [0, 1]


def test_a_rule_without_a_bound_is_found_by_its_head() -> None:
    assert prefilter.bounded_head(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}") == (
        r"\beyJ(?:[A-Za-z0-9\x{5f}\x{2d}]){8,8}",
        4 * 11,
    )
    assert prefilter.bounded_head(r"(?i)ab+c") == ("(?i:a(?:b){1,1})", 8)
    assert prefilter.bounded_head(r"(?:ab)+") == ("(?:ab){1,1}", 8)
    for pattern in (r"a*b", r"x|y+", r"\pL+x", r"(?s)a.+"):
        assert prefilter.bounded_head(pattern) is None, pattern
    # The shipped rules: one chunked pass, no pass over the whole text.
    shipped = Policy(SHIPPED).prefilter
    assert shipped.whole.rules == [] and shipped.headed == {[r.id for r in SHIPPED.rules].index("jwt")}


def test_a_headed_rule_finds_what_its_finditer_finds() -> None:
    rules = (
        PolicyRule(id="token", pattern=r"(?i)\btoken:[a-z]+!", action="log"),
        PolicyRule(id="run", pattern=r"x[ab]{2,}y", action="log"),
    )
    settings = PolicySettings(rules=rules, max_matches_per_rule=10_000_000, max_matches_per_request=100_000_000)
    policy, reference = Policy(settings), ReferencePolicy(settings)
    assert policy.prefilter.headed == {0, 1}
    rng = random.Random(5)
    pieces = [" ", "token:", "TOKEN:", "abc", "!", "x", "ab" * 50, "y", "xab", "a" * CHUNK]
    found: Counter[str] = Counter()
    for _ in range(40):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 60)))
        expected = [(m.rule.id, m.start, m.end) for m in reference.find(text, "prompt")]
        assert [(m.rule.id, m.start, m.end) for m in policy.find(text, "prompt")] == expected
        found.update(rule_id for rule_id, _, _ in expected)
    assert found["token"] > 5 and found["run"] > 5


# -- rules searched from each occurrence of a literal (the e-mail rule) ------------------------

EMAIL = next(rule for rule in SHIPPED.rules if rule.id == "email-address")


def test_the_email_rule_is_searched_from_each_at_sign() -> None:
    split = prefilter.LiteralSplit.of(EMAIL.pattern)
    assert split is not None and (split.literal, split.low, split.high) == (b"@", 1, 64)
    assert split.head is not None and split.tail.pattern.startswith("@")
    assert Policy(SHIPPED).searches[[r.id for r in SHIPPED.rules].index(EMAIL.id)].split is not None


@pytest.mark.parametrize(
    "pattern",
    [
        r"(?i)\b[a-z]{1,64}@x",  # a flag for the whole pattern
        r"[a-z]{1,3}@x|y",  # `|` at the top level reads across the split
        r"[^@]{1,3}@x",  # a negated class holds non-ASCII characters
        r"[a-z@]{1,3}@x",  # the literal is in the class: the run is not forced
        r"[a-z]{1,3}@+x",  # the literal repeated
        r"[a-z]{1,3}?@x",  # a lazy repeat
        r"[[:alpha:]]{1,3}@x",  # syntax Python's parser reads differently
        r"[a-z]{0,3}@x",  # may be empty
    ],
)
def test_other_patterns_are_not_split(pattern: str) -> None:
    assert prefilter.LiteralSplit.of(pattern) is None


@pytest.mark.parametrize(
    "pattern",
    [
        EMAIL.pattern,
        r"\b[a-c_.]{2,5}x[a-cx]{1,3}\b",  # the literal again inside a match, a non-word character in the run
        r"[ab]{3,4}-[ab-]{0,3}",  # no leading assertion, the literal may follow straight after a match
    ],
)
def test_a_split_rule_finds_what_its_finditer_finds(pattern: str) -> None:
    rule = PolicyRule(id="split", pattern=pattern, action="log")
    settings = PolicySettings(rules=(rule,), max_matches_per_rule=10_000_000, max_matches_per_request=100_000_000)
    policy, reference = Policy(settings), ReferencePolicy(settings)
    assert policy.searches[0].split is not None
    rng = random.Random(pattern)
    alphabet = [
        "a",
        "b",
        "c",
        "x",
        "_",
        ".",
        "-",
        "@",
        " ",
        "9",
        "%",
        "é",
        "\u200b",
        "co",
        ".uk",
        "b.io",
        "ab",
        "xa",
        "a" * 70,
    ]
    found = 0
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        expected = [(m.start, m.end) for m in reference.find(text, "prompt")]
        assert [(m.start, m.end) for m in policy.find(text, "prompt")] == expected, text
        found += len(expected)
    assert found > 30
    # Across chunk edges, and with the set's ranges in between.
    text = "".join(rng.choice(alphabet) for _ in range(3 * CHUNK))
    assert [(m.start, m.end) for m in policy.find(text, "prompt")] == [
        (m.start, m.end) for m in reference.find(text, "prompt")
    ]


# -- the cap on matches checked per rule per request ------------------------------------------


def ssns(count: int) -> str:
    rng = random.Random(count)
    return " ".join(adversarial.ssn(rng) for _ in range(count))


def capped_policy(cap: int = 1000) -> Policy:
    return Policy(SHIPPED.model_copy(update={"max_matches_per_rule": cap}))


def test_past_the_cap_a_text_is_blocked_and_its_unchecked_rest_not_recorded() -> None:
    policy = capped_policy()
    checked, unchecked = ssns(1000), ssns(10)
    key = "AKIAZ7QXMP3VBN2LKW4R"
    scan = policy.scan(f"{checked} then {unchecked} and {key}", "prompt")
    assert scan.action == "block"
    assert scan.blocking_rules == ["aws-access-key-id", f"us-ssn:{OVER_CAP}"]
    assert scan.matches["us-ssn"] == 1000
    assert scan.recorded.endswith(f"then [REDACTED:us-ssn:{OVER_CAP}]")
    assert unchecked.split()[0] not in scan.recorded and key not in scan.recorded
    assert scan.recorded.count("[REDACTED:us-ssn]") == 1000


def test_up_to_the_cap_nothing_changes() -> None:
    policy, reference = capped_policy(), ReferencePolicy(SHIPPED)
    text = ssns(1000)
    assert outcome(policy.scan(text, "prompt")) == outcome(reference.scan(text, "prompt"))
    assert policy.scan(text, "prompt").action == "redact"


def test_allowlisted_matches_count_towards_the_cap() -> None:
    """The cap bounds the work, and checking a fixture against the allowlist is work."""
    scan = capped_policy().scan("123-45-6789 " * 1001, "prompt")
    assert (scan.action, scan.blocking_rules, scan.matches["us-ssn"]) == ("block", [f"us-ssn:{OVER_CAP}"], 0)


def test_the_cap_is_per_request_across_the_strings_of_a_body() -> None:
    policy = capped_policy()
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": ssns(400)}] * 3}]}
    _, scan, recorded = check_body(policy, body, "prompt")
    assert scan.action == "block" and scan.blocking_rules == [f"us-ssn:{OVER_CAP}"]
    assert scan.matches["us-ssn"] == 1000
    assert recorded[-1].endswith(f"[REDACTED:us-ssn:{OVER_CAP}]")
    # Each string alone is under the cap: redacted and passed on.
    assert policy.scan(ssns(400), "prompt").action == "redact"


def test_a_cut_through_match_is_hidden_whole() -> None:
    """The unchecked rest begins at the first match past the cap; a match of another rule that began before
    it and runs into it is hidden from its own start."""
    rule = PolicyRule(id="digits", pattern=r"\d", action="log")
    secret = PolicyRule(id="secret-run", pattern=r"SECRET[0-9 ]+END", action="block")
    policy = Policy(PolicySettings(rules=(rule, secret), max_matches_per_rule=1000))
    text = "0" * 999 + "SECRET 12 END"  # the 1,001st digit is inside the secret
    scan = policy.scan(text, "prompt")
    assert scan.blocking_rules == ["secret-run", f"digits:{OVER_CAP}"]
    assert "SECRET" not in scan.recorded and "12" not in scan.recorded


def test_the_cap_is_validated() -> None:
    with pytest.raises(ValueError, match="max_matches_per_rule"):
        PolicySettings(max_matches_per_rule=10)
    assert PolicySettings().max_matches_per_rule >= 4200  # a 4,200-line migration of fixtures passes
    with pytest.raises(ValueError, match="max_matches_per_request"):
        PolicySettings(max_matches_per_request=10)
    assert PolicySettings().max_matches_per_request >= 3 * 4200  # with an SSN, a card and an address a line


def emails(count: int) -> str:
    return " ".join(f"user{i}@bank.co.uk" for i in range(count))


def ssn_list(count: int) -> str:
    """SSNs a comma apart (spaced, the digits of neighbours would run on as card-like numbers)."""
    return ", ".join(ssns(count).split())


def test_past_the_cap_of_every_rule_together_the_rules_with_matches_left_block() -> None:
    policy = Policy(SHIPPED.model_copy(update={"max_matches_per_request": 1000}))
    key = "AKIAZ7QXMP3VBN2LKW4R"
    scan = policy.scan(f"{key} {ssn_list(600)} {emails(600)} {ssn_list(5)} and {emails(1)}", "prompt")
    # Rules are checked in order: the key, the 600 + 5 SSNs, then the first 395 addresses.
    assert tuple(scan.matches[rule] for rule in ("aws-access-key-id", "us-ssn", "email-address")) == (1, 605, 394)
    assert scan.action == "block"
    assert scan.blocking_rules == ["aws-access-key-id", f"email-address:{OVER_CAP}"]
    assert scan.recorded.endswith(f"user393@bank.co.uk [REDACTED:email-address:{OVER_CAP}]")
    assert "user394@" not in scan.recorded and "user0@" in scan.recorded
    # A rule with nothing left to check is not named: a text past the cap with no more addresses passes them.
    assert policy.scan(f"{ssn_list(600)} {emails(400)}", "prompt").action == "redact"


def test_the_cap_of_every_rule_together_is_per_request_across_a_body() -> None:
    policy = Policy(SHIPPED.model_copy(update={"max_matches_per_request": 1000}))
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": ssn_list(400)}] * 2 + [
        {"type": "text", "text": emails(400)}
    ]}]}  # fmt: skip
    _, scan, recorded = check_body(policy, body, "prompt")
    assert scan.blocking_rules == [f"email-address:{OVER_CAP}"]
    assert (scan.matches["us-ssn"], scan.matches["email-address"]) == (800, 200)
    assert recorded[-1].endswith(f"[REDACTED:email-address:{OVER_CAP}]") and "user200@" not in recorded[-1]


def test_the_default_caps_pass_a_migration_of_fixtures_and_stop_a_text_of_keys() -> None:
    policy = Policy(SHIPPED)
    checked: Counter[str] = Counter()
    migration = policy.scan(adversarial.generate("sql-migration", 1 << 20), "prompt", processed=checked)
    assert migration.action == "redact" and checked.total() > 12_600  # allowlisted fixtures included
    checked.clear()
    keys = policy.scan(adversarial.generate("key-like", 1 << 20), "prompt", processed=checked)
    assert keys.blocking_rules[-1].endswith(OVER_CAP) and checked.total() == 15_000


def test_a_match_at_a_chunk_start_sees_the_character_before_it() -> None:
    """`\\B` (and `\\b`, `^` in multi-line mode) at a match's start read the character before the chunk."""
    rule = PolicyRule(id="inside-a-word", pattern=r"\Bab", action="log")
    policy = Policy(PolicySettings(rules=(rule,)))
    text = "x" * CHUNK + "ab"
    assert [(m.start, m.end) for m in policy.find(text, "prompt")] == [(CHUNK, CHUNK + 2)]
    assert policy.find("x" * (CHUNK - 1) + " ab", "prompt") == []
