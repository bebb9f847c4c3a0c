"""Which tail of a streamed text could still become a match: the rule-aware holdback.

For each rule, a second RE2 pattern matches every prefix of the rule's matches; searched with `\\z`, its
leftmost match is where a match may be in progress at the end of the text. A stream holds back from
there only, so ordinary text leaves at once and a secret of any length is held until it is whole.

The prefix pattern is derived from the rule's own pattern (parsed with Python's regex parser, written
back in RE2 syntax): P(ab) = P(a) | a P(b), P(a|b) = P(a) | P(b), P(x{m,n}) = x{0,n-1} P(x), and a
zero-width assertion's prefix is empty. A rule the parser cannot read holds back a fixed window instead.
"""

from __future__ import annotations

import re
import re._constants as sre  # type: ignore[import-not-found]
import re._parser as sre_parse  # type: ignore[import-not-found]  # the stdlib's regex parser, unstubbed
from collections.abc import Iterable
from typing import Any

import re2

from gateway.normalise import Normalised

FALLBACK_WINDOW = 512  # characters held for a rule whose prefixes cannot be derived
RE2_MAX_REPEAT = 1000

_CATEGORIES = {
    sre.CATEGORY_DIGIT: r"\d", sre.CATEGORY_NOT_DIGIT: r"\D", sre.CATEGORY_SPACE: r"\s",
    sre.CATEGORY_NOT_SPACE: r"\S", sre.CATEGORY_WORD: r"\w", sre.CATEGORY_NOT_WORD: r"\W",
}  # fmt: skip
_ASSERTIONS = {
    sre.AT_BOUNDARY: r"\b", sre.AT_NON_BOUNDARY: r"\B", sre.AT_BEGINNING: "^",
    sre.AT_BEGINNING_STRING: r"\A", sre.AT_END: "$", sre.AT_END_STRING: r"\z",
}  # fmt: skip


class UnsupportedError(ValueError):
    """A construct this translation does not handle."""


def prefix_pattern(pattern: str) -> str:
    """An RE2 pattern matching exactly the prefixes (empty included) of the pattern's matches."""
    parsed = sre_parse.parse(pattern)
    flags = ("i" if parsed.state.flags & sre.SRE_FLAG_IGNORECASE else "") + (
        "s" if parsed.state.flags & sre.SRE_FLAG_DOTALL else ""
    )
    body = _prefix(list(parsed))
    return f"(?{flags}:{body})" if flags else f"(?:{body})"


class PendingMatches:
    """Where a match of any of the rules may be in progress at the end of a text."""

    def __init__(self, patterns: Iterable[str]) -> None:
        options = re2.Options()
        options.log_errors = False
        options.max_mem = 64 << 20
        self.patterns = [re2.compile(_pending(pattern) + r"\z", options) for pattern in patterns]

    def start(self, normal: Normalised) -> int:
        """Where (in the original text) the leftmost tail that could still grow into a match begins; its end if none."""
        starts = [m.start() for pattern in self.patterns if (m := pattern.search(normal.text)) and m.end() > m.start()]
        return normal.original_start(min(starts)) if starts else normal.original_end(len(normal.text))


def minimum_length(pattern: str) -> int:
    """The fewest characters a match of the pattern can have (0 when the parser cannot tell)."""
    try:
        return int(sre_parse.parse(pattern).getwidth()[0])
    except (re.error, RecursionError, OverflowError):
        return 0


def _pending(pattern: str) -> str:
    try:
        return prefix_pattern(pattern)
    except (UnsupportedError, re.error, RecursionError):
        return rf"[\s\S]{{1,{FALLBACK_WINDOW}}}"


def _prefix(items: list[Any]) -> str:
    if not items:
        return ""
    first, rest = items[0], items[1:]
    head = _prefix_one(first)
    tail = _prefix(rest)
    if not rest:
        return head
    # A prefix ends inside the first item, or the first item is whole and a prefix of the rest follows.
    return f"(?:{head}|{emit([first])}{tail})" if head else f"(?:{emit([first])}{tail})?"


def _prefix_one(item: tuple[Any, Any]) -> str:
    op, arg = item
    if op in (sre.LITERAL, sre.NOT_LITERAL, sre.IN, sre.ANY):
        return f"(?:{emit([item])})?"
    if op is sre.AT:
        return ""
    if op is sre.BRANCH:
        return "(?:" + "|".join(_prefix(list(branch)) for branch in arg[1]) + ")"
    if op is sre.SUBPATTERN:
        _group, add, remove, inner = arg
        return _scoped(add, remove, _prefix(list(inner)))
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
        _low, high, inner = arg
        if high == 0:
            return ""
        part = _prefix(list(inner))
        whole = f"(?:{emit(list(inner))})"
        if high is sre.MAXREPEAT:
            return f"{whole}*{part}"
        if high == 1:
            return part
        return f"{whole}{{0,{high - 1}}}{part}"
    raise UnsupportedError(str(op))


def emit(items: Iterable[tuple[Any, Any]]) -> str:
    """The items written back as an RE2 pattern."""
    out = []
    for op, arg in items:
        if op is sre.LITERAL:
            out.append(_char(arg))
        elif op is sre.NOT_LITERAL:
            out.append(f"[^{_char(arg)}]")
        elif op is sre.ANY:
            out.append(".")
        elif op is sre.IN:
            out.append(_class(arg))
        elif op is sre.AT:
            out.append(_ASSERTIONS[arg])
        elif op is sre.BRANCH:
            out.append("(?:" + "|".join(emit(branch) for branch in arg[1]) + ")")
        elif op is sre.SUBPATTERN:
            _group, add, remove, inner = arg
            out.append(_scoped(add, remove, emit(inner)))
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            low, high, inner = arg
            if low > RE2_MAX_REPEAT or (high is not sre.MAXREPEAT and high > RE2_MAX_REPEAT):
                raise UnsupportedError("repeat count")
            upper = "" if high is sre.MAXREPEAT else str(high)
            lazy = "?" if op is sre.MIN_REPEAT else ""
            out.append(f"(?:{emit(inner)}){{{low},{upper}}}{lazy}")
        else:
            raise UnsupportedError(str(op))
    return "".join(out)


def _class(items: list[tuple[Any, Any]]) -> str:
    parts: list[str] = []
    for op, arg in items:
        if op is sre.NEGATE:
            parts.insert(0, "^")
        elif op is sre.LITERAL:
            parts.append(_char(arg))
        elif op is sre.RANGE:
            parts.append(f"{_char(arg[0])}-{_char(arg[1])}")
        elif op is sre.CATEGORY:
            parts.append(_CATEGORIES[arg])
        else:
            raise UnsupportedError(str(op))
    return "[" + "".join(parts) + "]"


def _scoped(add: int, remove: int, body: str) -> str:
    on = "i" if add & sre.SRE_FLAG_IGNORECASE else ""
    off = "i" if remove & sre.SRE_FLAG_IGNORECASE else ""
    if not on and not off:
        return f"(?:{body})"
    return f"(?{on}{'-' + off if off else ''}:{body})"


def _char(code: int) -> str:
    char = chr(code)
    return char if char.isascii() and char.isalnum() else f"\\x{{{code:x}}}"
