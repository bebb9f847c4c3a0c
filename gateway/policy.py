"""Content policy: RE2 rules (linear time, whatever the input) over prompts and completions.

A PII regex that backtracked on a 4,200-line file once held a CPU at 100% for 11 minutes; RE2 cannot
backtrack, and the size pre-check runs before any rule.

    python -m gateway.policy --env dev FILE...     one JSON line per file: action, matches, ms
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gateway.normalise import Normalised, normalise
from gateway.pending import PendingMatches, minimum_length
from gateway.settings import PolicyRule, PolicySettings, compile_pattern

Where = Literal["prompt", "completion"]
Action = Literal["allow", "log", "redact", "block"]
SEVERITY: dict[Action, int] = {"allow": 0, "log": 1, "redact": 2, "block": 3}


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


@dataclass(frozen=True)
class Match:
    rule: CompiledRule
    start: int
    end: int


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

    def find(self, text: str | Normalised, where: Where, deadline: float | None = None) -> list[Match]:
        """Every counted match, found in the normalised text (`gateway.normalise`), with spans in the original.
        Past the deadline (a `time.perf_counter()` value), stops with `ScanBudgetError`."""
        normal = text if isinstance(text, Normalised) else normalise(text)
        found: list[Match] = []
        for rule in self.rules:
            if not rule.applies(where):
                continue
            for count, m in enumerate(rule.pattern.finditer(normal.text)):
                if deadline is not None and count % 256 == 255 and time.perf_counter() > deadline:
                    raise ScanBudgetError
                if rule.counts(m.group(0)):
                    found.append(Match(rule, normal.original_start(m.start()), normal.original_end(m.end())))
            if deadline is not None and time.perf_counter() > deadline:
                raise ScanBudgetError
        return found

    def scan(self, text: str, where: Where, *, signed: bool = False, deadline: float | None = None) -> Scan:
        return self.apply(text, self.find(text, where, deadline), signed=signed)

    @staticmethod
    def apply(text: str, matches: Iterable[Match], *, signed: bool = False) -> Scan:
        """Count every match, redact the redact-rule spans, and say the strongest action. Signed text (a
        thinking block, whose signature the vendor checks) cannot be edited: there, a redact rule blocks."""
        scan = Scan(text=text, recorded=text)
        spans: list[tuple[int, int, str]] = []
        hidden: list[tuple[int, int, str]] = []
        for match in matches:
            action: Action = "block" if blocks(match, signed) else match.rule.settings.action
            scan.matches[match.rule.id] += 1
            if SEVERITY[action] > SEVERITY[scan.action]:
                scan.action = action
            if action == "block" and match.rule.id not in scan.blocking_rules:
                scan.blocking_rules.append(match.rule.id)
            if action == "redact":
                spans.append((match.start, match.end, match.rule.id))
            if action in ("redact", "block"):
                hidden.append((match.start, match.end, match.rule.id))
        if spans:
            scan.text = redact(text, spans)
        if hidden:
            scan.recorded = redact(text, hidden)
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
