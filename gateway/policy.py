"""Content policy: RE2 rules (linear time, whatever the input) over prompts and completions.

A PII regex that backtracked on a 4,200-line file once held a CPU at 100% for 11 minutes; RE2 cannot
backtrack, and the size pre-check runs before any rule. An RE2 set says first where each rule may match
(`gateway.prefilter`), so a rule is searched only there; what each match costs in Python is bounded by
`max_matches_per_rule` and `max_matches_per_request` per request.

    python -m gateway.policy --env dev FILE...     one JSON line per file: action, matches, ms
"""

from __future__ import annotations

import argparse
import itertools
import json
import operator
import re
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import re2

from gateway.normalise import Normalised, normalise
from gateway.pending import PendingMatches, minimum_length
from gateway.prefilter import LiteralSplit, Prefilter
from gateway.settings import PolicyRule, PolicySettings, compile_pattern

Where = Literal["prompt", "completion"]
Action = Literal["allow", "log", "redact", "block"]
SEVERITY: dict[Action, int] = {"allow": 0, "log": 1, "redact": 2, "block": 3}


# The binding's own RE2 objects are called directly: its finditer wraps every match in Python objects.
UNANCHORED = re2._Anchor.UNANCHORED
START = re2._Anchor.ANCHOR_START
WHOLE = re2._Anchor.ANCHOR_BOTH
OVER_CAP = "too-many-matches"
_NON_DIGITS = bytes(b for b in range(256) if not 0x30 <= b <= 0x39)
_DIGIT_VALUE = bytes.maketrans(b"0123456789", bytes(range(10)))
_DIGIT_DOUBLED = bytes.maketrans(b"0123456789", bytes([0, 2, 4, 6, 8, 1, 3, 5, 7, 9]))


def luhn_valid(text: str) -> bool:
    digits = [int(c) for c in text if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _luhn_valid_ascii(matched: bytes) -> bool:
    """`luhn_valid` for ASCII text, without a Python step per digit."""
    digits = matched.translate(None, _NON_DIGITS)[::-1]
    if not 13 <= len(digits) <= 19:
        return False
    return (sum(digits[0::2].translate(_DIGIT_VALUE)) + sum(digits[1::2].translate(_DIGIT_DOUBLED))) % 10 == 0


class ScanBudgetError(Exception):
    """A check ran past its time budget."""


@dataclass(frozen=True)
class CompiledRule:
    settings: PolicyRule
    pattern: Any
    allowlist: tuple[Any, ...]

    @property
    def id(self) -> str:
        return self.settings.id

    def applies(self, where: Where) -> bool:
        return self.settings.applies_to in (where, "both")

    def counts(self, matched: str) -> bool:
        if any(allowed.fullmatch(matched) for allowed in self.allowlist):
            return False
        return luhn_valid(matched) if self.settings.luhn else True


class Match(NamedTuple):  # a tuple: a dense text has thousands, each made in Python
    rule: CompiledRule
    start: int
    end: int


_RULE = operator.itemgetter(0)
_new_tuple = tuple.__new__  # `_new_tuple(Match, (rule, start, end))`: a Match without the Python `__new__` frame


class _RuleSearch:
    """One rule as `Policy.find` runs it: its RE2 program and allowlist called on UTF-8 bytes directly."""

    def __init__(self, rule: CompiledRule, reach: int | None) -> None:
        self.rule = rule
        self.applies = {where: rule.applies(where) for where in ("prompt", "completion")}
        self.match = rule.pattern._regexp.Match
        self.reach = reach  # how far past a range its matches beginning there may reach; None: searched whole
        self.split = LiteralSplit.of(rule.settings.pattern) if reach is not None else None
        self.luhn = rule.settings.luhn
        self.allowed = [a._regexp.Match for a in _one_allowlist(rule)]
        self.always_counts = not self.allowed and not self.luhn
        # Stands in for the rule's matches past the cap: blocks, and hides the unchecked rest from the record.
        over_cap = rule.settings.model_copy(update={"id": f"{rule.id}:{OVER_CAP}", "action": "block"})
        self.over_cap = CompiledRule(over_cap, rule.pattern, ())

    def counts(self, matched: bytes) -> bool:
        """`CompiledRule.counts` on the match's UTF-8 bytes."""
        for allowed in self.allowed:
            if allowed(WHOLE, matched, 0, len(matched))[0][0] >= 0:
                return False
        if not self.luhn:
            return True
        return _luhn_valid_ascii(matched) if matched.isascii() else luhn_valid(matched.decode())

    def spans(self, data: bytes, ranges: list[tuple[int, int]], budget: int, deadline: float | None) -> _Spans:
        """The byte spans of the pattern's matches in `data`, as its `finditer` gives them, beginning in the
        ranges; at most `budget` of them."""
        if self.reach is None:
            return self._spans_whole(data, ranges[0][0], budget, deadline)
        if self.split is not None:
            return self._spans_split(self.split, data, ranges, budget, deadline)
        match, reach, size = self.match, self.reach, len(data)
        found: list[tuple[int, int]] = []
        append = found.append
        position = 0
        for start, end in ranges:
            position = max(position, start)
            # No match begins between `position` and `start`, and one beginning before `end` ends within reach.
            limit = min(size, end + reach)
            while position < end:
                span = match(UNANCHORED, data, position, limit)[0]
                begin = span[0]
                if begin < 0 or begin >= end:
                    break  # none begins in this range (one further on is found from its own range)
                if not budget:
                    return _Spans(found, begin)
                budget -= 1
                append(span)
                position = span[1] if span[1] > begin else begin + 1
                if not budget & 255 and deadline is not None and time.perf_counter() > deadline:
                    raise ScanBudgetError
        return _Spans(found, None)

    @staticmethod
    def _spans_split(
        split: LiteralSplit, data: bytes, ranges: list[tuple[int, int]], budget: int, deadline: float | None
    ) -> _Spans:
        """`spans` for a rule searched from each of its literal's occurrences (`LiteralSplit`)."""
        run, low, high, reach = split.run, split.low, split.high, split.tail_reach
        tail = split.tail._regexp.Match
        head = None if split.head is None else split.head._regexp.Match
        size = len(data)
        found: list[tuple[int, int]] = []
        append = found.append
        position = 0  # where the last match ended: none begins before it
        for start, end in ranges:
            first = max(position, start)  # the earliest a match may begin
            stop = min(size, end + high)  # a match beginning in the range has its literal before this
            limit = min(size, stop + reach)
            while first + low < stop:
                # The next literal after which `c R` matches (RE2 skips the rest of them at automaton speed).
                span = tail(UNANCHORED, data, first + low, limit)[0]
                at = span[0]
                if at < 0 or at >= stop:
                    break
                # The leftmost start: within `high` bytes before the literal and in the run of `C` ending there.
                begin = max(first, at - high)
                begin += len(data[begin:at].rstrip(run))
                last = min(at - low, end - 1)  # the latest start: `low` before the literal, and in the range
                if begin <= last and head is not None:
                    begin = head(UNANCHORED, data, begin, last + 1)[0][0]
                if 0 <= begin <= last:
                    if not budget:
                        return _Spans(found, begin)
                    budget -= 1
                    append((begin, span[1]))
                    position = first = span[1]
                    if not budget & 255 and deadline is not None and time.perf_counter() > deadline:
                        raise ScanBudgetError
                else:
                    first = max(first, at + 1 - low)
        return _Spans(found, None)

    def _spans_whole(self, data: bytes, position: int, budget: int, deadline: float | None) -> _Spans:
        """The binding's `finditer` loop, empty matches included, over the text from `position` (where the
        first match may begin) to its end."""
        match, size = self.match, len(data)
        found: list[tuple[int, int]] = []
        while True:
            begin, finish = span = match(UNANCHORED, data, position, size)[0]
            if begin < 0:
                break
            if not budget:
                return _Spans(found, begin)
            budget -= 1
            found.append(span)
            if not budget & 255 and deadline is not None and time.perf_counter() > deadline:
                raise ScanBudgetError
            if position == size:
                break
            position = position + _char_bytes(data[position]) if position == finish else finish
        return _Spans(found, None)


@dataclass(frozen=True)
class _Spans:
    found: list[tuple[int, int]]
    over_cap: int | None  # where the first match past the budget begins (bytes), if there is one


def _one_allowlist(rule: CompiledRule) -> tuple[Any, ...]:
    """The rule's allowlist as one pattern (a match is allowed if it matches any entry whole), or as it is when
    the entries cannot be joined (repeated group names)."""
    if len(rule.allowlist) < 2:
        return rule.allowlist
    try:
        return (compile_pattern("|".join(f"(?:{a.pattern})" for a in rule.allowlist), f"rule {rule.id} allowlist"),)
    except ValueError:
        return rule.allowlist


def _char_bytes(lead: int) -> int:
    """How many bytes the UTF-8 character beginning with this byte has."""
    return 1 if lead < 0xC0 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4


class _CharOffsets:
    """Character offsets of byte offsets into UTF-8 text: the byte offset less the continuation bytes before it,
    counted from the offset asked last when it is near, else from a per-block count made once."""

    BLOCK = 4096
    _CONTINUATION = bytes(range(0x80, 0xC0))

    def __init__(self, data: bytes) -> None:
        self.data = data
        blocks = (self._continuations(data[i : i + self.BLOCK]) for i in range(0, len(data), self.BLOCK))
        self.before = list(itertools.accumulate(blocks, initial=0))
        self.byte = self.char = 0

    def __call__(self, offset: int) -> int:
        if 0 <= offset - self.byte < self.BLOCK:
            self.char += offset - self.byte - self._continuations(self.data[self.byte : offset])
        else:
            block = offset // self.BLOCK
            start = block * self.BLOCK
            self.char = offset - self.before[block] - self._continuations(self.data[start:offset])
        self.byte = offset
        return self.char

    @classmethod
    def _continuations(cls, chunk: bytes) -> int:
        return len(chunk) - len(chunk.translate(None, cls._CONTINUATION))


@dataclass
class Scan:
    """What the rules found in one text, and the text as it may be passed on."""

    text: str
    # The text as the audit trail may keep it: blocked spans too are replaced (the trail is locked for a year).
    recorded: str = ""
    matches: Counter[str] = field(default_factory=Counter)
    action: Action = "allow"
    blocking_rules: list[str] = field(default_factory=list)

    def merge(self, other: Scan) -> None:
        self.matches.update(other.matches)
        self.blocking_rules.extend(r for r in other.blocking_rules if r not in self.blocking_rules)
        if SEVERITY[other.action] > SEVERITY[self.action]:
            self.action = other.action


class Policy:
    def __init__(self, settings: PolicySettings) -> None:
        self.settings = settings
        self.rules = [
            CompiledRule(
                rule,
                compile_pattern(rule.pattern, f"rule {rule.id}"),
                tuple(compile_pattern(a, f"rule {rule.id} allowlist") for a in rule.allowlist),
            )
            for rule in settings.rules
        ]
        # Shorter ASCII strings (most keys, enums and numbers) cannot hold a match of any rule: not scanned.
        self.shortest_match = min((minimum_length(rule.settings.pattern) for rule in self.rules), default=0)
        self.prefilter = Prefilter([rule.settings.pattern for rule in self.rules])
        self.searches = [_RuleSearch(rule, reach) for rule, reach in zip(self.rules, self.prefilter.reach, strict=True)]
        self.max_matches = settings.max_matches_per_rule
        self.max_total = settings.max_matches_per_request
        self.pending = PendingMatches(rule.settings.pattern for rule in self.rules if rule.applies("completion"))
        self.blocked_repositories = [
            (blocked.policy, compile_pattern(blocked.pattern, f"blocked repository {blocked.policy}"))
            for blocked in settings.blocked_repositories
        ]

    def repository_policy(self, repository: str | None) -> str | None:
        """The policy that keeps this repository out of the gateway, if any: checked against the normalised
        path and each of its tails, so `git@host:Org/Payments-Core.git` is `payments-core` as well."""
        if repository:
            segments = repository.split("/")
            for policy, pattern in self.blocked_repositories:
                if any(pattern.search("/".join(segments[i:])) for i in range(len(segments))):
                    return policy
        return None

    def find(
        self,
        text: str | Normalised,
        where: Where,
        deadline: float | None = None,
        processed: Counter[str] | None = None,
    ) -> list[Match]:
        """Every counted match, found in the normalised text (`gateway.normalise`), with spans in the original.
        Past the deadline (a `time.perf_counter()` value), stops with `ScanBudgetError`.

        `processed` counts each rule's matches checked so far in this request (a new count if None): past
        `max_matches_per_rule`, or once the rules together are past `max_matches_per_request`, a rule's matches
        are not checked; a match of its `:too-many-matches` stand-in (a block) covers the rest of the text from
        its first unchecked match instead, so it is neither passed on nor recorded."""
        normal = text if isinstance(text, Normalised) else normalise(text)
        data = normal.utf8()
        # ASCII text the normalisation left as it was: byte offsets are the original's character offsets.
        plain = len(data) == len(normal.text) and normal.aligned
        candidates = self.prefilter.candidates(data)
        processed = Counter() if processed is None else processed
        left = self.max_total - processed.total()  # of the request's matches, every rule together
        found: list[Match] = []
        over_cap: list[Match] = []
        offsets: _CharOffsets | None = None  # made for the first match, if the text needs it
        for search, ranges in zip(self.searches, candidates, strict=True):
            if not search.applies[where]:
                continue
            rule = search.rule
            if ranges:
                budget = max(0, min(self.max_matches - processed[rule.id], left))
                spans = search.spans(data, ranges, budget, deadline)
                processed[rule.id] += len(spans.found)
                left -= len(spans.found)
                counted = spans.found
                if not search.always_counts:
                    verdicts: dict[bytes, bool] = {}  # fixtures repeat: each distinct text is checked once
                    counted = []
                    for span in spans.found:
                        matched = data[span[0] : span[1]]
                        verdict = verdicts.get(matched)
                        if verdict is None:
                            verdict = verdicts[matched] = search.counts(matched)
                        if verdict:
                            counted.append(span)
                if plain:
                    found += [_new_tuple(Match, (rule, begin, finish)) for begin, finish in counted]
                else:
                    offsets = offsets or _CharOffsets(data)
                    for begin, finish in counted:
                        start, end = offsets(begin), offsets(finish)
                        found.append(Match(rule, normal.original_start(start), normal.original_end(end)))
                if spans.over_cap is not None:
                    start = spans.over_cap
                    if not plain:
                        offsets = offsets or _CharOffsets(data)
                        start = normal.original_start(offsets(start))
                    over_cap.append(Match(search.over_cap, start, normal.original_end(len(normal.text))))
            if deadline is not None and time.perf_counter() > deadline:
                raise ScanBudgetError
        for index, cap in enumerate(over_cap):
            # From the start of any match it cuts through: `redact` drops a span that begins inside another.
            start = min([cap.start] + [m.start for m in found if m.end > cap.start])
            over_cap[index] = Match(cap.rule, start, cap.end)
        return found + over_cap

    def scan(
        self,
        text: str,
        where: Where,
        *,
        signed: bool = False,
        deadline: float | None = None,
        processed: Counter[str] | None = None,
    ) -> Scan:
        return self.apply(text, self.find(text, where, deadline, processed), signed=signed)

    @staticmethod
    def apply(text: str, matches: Iterable[Match], *, signed: bool = False) -> Scan:
        """Count every match, redact the redact-rule spans, and say the strongest action. Signed text (a
        thinking block, whose signature the vendor checks) cannot be edited: there, a redact rule blocks."""
        scan = Scan(text=text, recorded=text)
        spans: list[tuple[int, int, str]] = []
        hidden: list[tuple[int, int, str]] = []
        rule: CompiledRule
        for rule, group in itertools.groupby(matches, key=_RULE):  # what a match does depends on its rule only
            same = list(group)
            rule_id: str = rule.id
            action: Action = "block" if blocks(same[0], signed) else rule.settings.action
            if SEVERITY[action] > SEVERITY[scan.action]:
                scan.action = action
            if action == "block" and rule_id not in scan.blocking_rules:
                scan.blocking_rules.append(rule_id)
            scan.matches[rule_id] += len(same)
            if action in ("redact", "block"):
                found = [(start, end, rule_id) for _, start, end in same]
                hidden += found
                if action == "redact":
                    spans += found
        if spans:
            scan.text = redact(text, spans)
        if hidden:
            scan.recorded = scan.text if len(hidden) == len(spans) else redact(text, hidden)
        return scan


def normalise_repository(value: str) -> str:
    """One form for every way a repository is named: lower case, no scheme, user, host or `.git`.

    `https://github.com/Org/Repo.git`, `git@github.com:org/repo`, `github.com/org/repo/` and ` ORG/Repo ` are all
    `org/repo`.
    """
    text = unicodedata.normalize("NFKC", value).strip().lower()
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text)
    text = re.sub(r"^[^@/]*@", "", text)
    host, colon, rest = text.partition(":")
    if colon and "/" not in host:  # host:port/org/repo, or scp-like host:org/repo
        text = f"{host}/{re.sub(r'^[0-9]+/', '', rest)}"
    segments = [segment for segment in text.split("/") if segment]
    if len(segments) > 1 and "." in segments[0]:  # a host name
        segments = segments[1:]
    if segments and segments[-1].endswith(".git"):
        segments[-1] = segments[-1][: -len(".git")]
    return "/".join(segments)


def redact(text: str, spans: Iterable[tuple[int, int, str]]) -> str:
    """Replace each span (overlaps merged, first rule wins) with a marker naming the rule."""
    pieces, cursor = [], 0
    for start, end, rule_id in sorted(spans):
        if start < cursor:
            continue
        pieces += [text[cursor:start], f"[REDACTED:{rule_id}]"]
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)


class StreamScanner:
    """Checks a completion as it streams, holding back only what could still become a match.

    Text leaves as soon as no rule's match can be in progress over it (`gateway.pending`): ordinary
    prose streams at once, a candidate secret is held until it is whole or ruled out, however long,
    up to `stream_hold_max_chars`. The end of what already left stays as context, so a match split
    across segments (content blocks, tool input and text) is still found; a blocking one ends the stream.
    In signed text (thinking), which must not be edited, a redact rule blocks instead.
    """

    CONTEXT_CHARS = 256  # of released text, kept to find matches that began in an earlier segment

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.max_held = policy.settings.stream_hold_max_chars
        self.context = ""
        self.pending = ""
        self.signed = False
        self.total = Scan(text="")
        self._scanned = 0  # len(pending) at the last scan: a long held run is rescanned as it grows by a quarter

    def feed(self, text: str, *, signed: bool = False) -> str:
        """Text of one segment; returns what may leave now."""
        self.pending += text
        self.signed = signed
        if len(self.pending) < self._scanned + max(64, self._scanned // 4) and self._scanned > 256:
            return ""
        return self._release(final=False)

    def finish(self) -> str:
        """The segment ended: everything left, checked whole."""
        return self._release(final=True)

    @property
    def blocked(self) -> bool:
        return self.total.action == "block"

    def _release(self, *, final: bool) -> str:
        text, offset = self.context + self.pending, len(self.context)
        normal = normalise(text)  # once, for the rules and for what may still be pending
        matches = [m for m in self.policy.find(normal, "completion") if m.end > offset]
        if any(blocks(m, self.signed) for m in matches):
            # A block ends the stream: count what was seen, release nothing more.
            self.total.merge(Policy.apply(text, matches, signed=self.signed))
            self.pending = ""
            return ""
        cut = len(self.pending)
        if not final:
            cut = max(0, self.policy.pending.start(normal) - offset)
            cut = max(cut, len(self.pending) - self.max_held)
            for match in matches:
                if match.start < offset + cut < match.end:
                    cut = max(0, match.start - offset)
        released = [Match(m.rule, max(0, m.start - offset), m.end - offset) for m in matches if m.end <= offset + cut]
        scan = Policy.apply(self.pending[:cut], released, signed=self.signed)
        self.total.merge(scan)
        self.pending = self.pending[cut:]
        self._scanned = len(self.pending)
        self.context = (self.context + scan.text)[-self.CONTEXT_CHARS :]
        return scan.text


def blocks(match: Match, signed: bool) -> bool:
    """Whether a match stops the request: a block rule, or a redact rule in text that must not be edited."""
    action = match.rule.settings.action
    return action == "block" or (signed and action == "redact")


def scan_file(policy: Policy, path: Path) -> dict[str, Any]:
    text = path.read_text(errors="replace")
    started = time.perf_counter()
    scan = policy.scan(text, "prompt")
    elapsed_ms = (time.perf_counter() - started) * 1000
    return {
        "file": str(path),
        "action": scan.action,
        "matches": [{"rule": rule, "count": count} for rule, count in sorted(scan.matches.items())],
        "ms": round(elapsed_ms, 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.policy", description="Scan files with an environment's content-policy rules."
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--env", default="dev", help="environment whose config/<env>.yaml holds the rules")
    source.add_argument("--settings", type=Path, help="a rendered gateway settings file instead of --env")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return 0 if exit_.code == 0 else 2
    try:
        policy = Policy(_policy_settings(args.env, args.settings))
    except (ValueError, OSError) as error:
        print(f"policy: {error}", file=sys.stderr)
        return 2
    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        print(f"policy: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    for path in args.files:
        print(json.dumps(scan_file(policy, path)), flush=True)
    return 0


def _policy_settings(environment: str, settings_file: Path | None) -> PolicySettings:
    if settings_file is not None:
        from gateway.settings import GatewaySettings

        return GatewaySettings.read(settings_file).policy
    from config import ConfigError, load_config  # the CDK side's config: available in a checkout

    try:
        return load_config(environment).gateway.policy
    except ConfigError as error:
        raise ValueError(str(error)) from error


if __name__ == "__main__":
    sys.exit(main())
