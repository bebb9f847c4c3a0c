"""The content policy's check as it was before its prefilter (issue 14), frozen: the reference the tests compare
the gateway's `Policy` with, and the baseline `make bench-policy` times it against.

Every rule's `finditer` over the normalised text (normalised character by character), each match counted
unless allowlisted or (card rules) not Luhn-valid, spans mapped back to the original; then every match
counted, redact spans replaced, the strongest action taken. What a character normalises to and what a Luhn check
is are the gateway's own definitions (`normal_character`, `luhn_valid`): the reference freezes the mechanism
(no prefilter, no table, a Python step per match), not the definitions.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Any

from gateway.normalise import normal_character
from gateway.policy import SEVERITY, Action, CompiledRule, Match, Scan, Where, blocks, luhn_valid
from gateway.settings import PolicySettings, compile_pattern

_RUNS = re.compile(r"[\x00-\x7f]+|[^\x00-\x7f]")


@dataclass(frozen=True)
class Normalised:
    text: str
    _pieces: tuple[tuple[int, int, int, bool], ...] | None = None
    _starts: tuple[int, ...] = ()

    def original_start(self, position: int) -> int:
        piece = self._piece(position)
        if piece is None:
            return position
        start, origin, _length, same = piece
        return origin + (position - start) if same else origin

    def original_end(self, position: int) -> int:
        if position == 0:
            return 0
        piece = self._piece(position - 1)
        if piece is None:
            return position
        start, origin, _length, same = piece
        return origin + (position - start) if same else origin + 1

    def _piece(self, position: int) -> tuple[int, int, int, bool] | None:
        if self._pieces is None:
            return None
        index = bisect.bisect_right(self._starts, position) - 1
        return self._pieces[max(0, index)]


def normalise(text: str) -> Normalised:
    if text.isascii():
        return Normalised(text)
    out: list[str] = []
    pieces: list[tuple[int, int, int, bool]] = []
    length = 0
    for run in _RUNS.finditer(text):
        chunk = run.group()
        replacement = chunk if chunk.isascii() else normal_character(chunk)
        if replacement:
            pieces.append((length, run.start(), len(replacement), chunk.isascii()))
            out.append(replacement)
            length += len(replacement)
    pieces.append((length, len(text), 0, True))
    return Normalised("".join(out), tuple(pieces), tuple(piece[0] for piece in pieces))


def counts(rule: Any, matched: str) -> bool:
    if any(allowed.fullmatch(matched) for allowed in rule.allowlist):
        return False
    return luhn_valid(matched) if rule.settings.luhn else True


class ReferencePolicy:
    """`find` and `scan` as `gateway.policy.Policy` had them: one `finditer` per rule, every match in Python."""

    def __init__(self, settings: PolicySettings) -> None:
        self.rules = [
            CompiledRule(
                rule,
                compile_pattern(rule.pattern, f"rule {rule.id}"),
                tuple(compile_pattern(a, f"rule {rule.id} allowlist") for a in rule.allowlist),
            )
            for rule in settings.rules
        ]

    def find(self, text: str, where: Where) -> list[Match]:
        normal = normalise(text)
        found: list[Match] = []
        for rule in self.rules:
            if not rule.applies(where):
                continue
            for m in rule.pattern.finditer(normal.text):
                if counts(rule, m.group(0)):
                    found.append(Match(rule, normal.original_start(m.start()), normal.original_end(m.end())))
        return found

    def scan(self, text: str, where: Where, *, signed: bool = False) -> Scan:
        return apply(text, self.find(text, where), signed=signed)


def apply(text: str, matches: list[Match], *, signed: bool = False) -> Scan:
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


def redact(text: str, spans: list[tuple[int, int, str]]) -> str:
    pieces, cursor = [], 0
    for start, end, rule_id in sorted(spans):
        if start < cursor:
            continue
        pieces += [text[cursor:start], f"[REDACTED:{rule_id}]"]
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)
