"""Where in a text each rule may match, from one pass of an RE2 set, before any rule's own search.

Searching every rule over the whole text costs one automaton pass per rule (15 rules: ~30 ms a MiB of
source code), mostly to find nothing. Instead an RE2 set of every rule, loosened (repeat upper bounds
dropped: each match of a rule is still a match of its loosened form, and the set's automaton stays small
where counted repeats would multiply its states), runs over the text in chunks and says which rules may
have a match beginning in each chunk. A rule is then searched only from those chunks, and only as far as
its longest match can reach, which gives exactly the matches a search of the whole text would.

A rule whose longest match cannot be bounded (the jwt rule's unbounded repeats) has a bounded head instead,
a necessary start of each of its matches (the pattern up to its first unbounded repeat, that repeat taken
its fewest times), in the same chunked set: the rule is searched from the first chunk where its head is,
to the end. A rule without either (syntax Python's parser reads differently from RE2, or a head too long
for the chunks' overlap) is checked by a second set over the whole text and, if that finds it, searched whole.
A set whose automaton ran out of memory gives no answer (RE2 reports no match then): the sentinel pattern,
which matches every text, tells that apart, and every rule is then searched there.
"""

from __future__ import annotations

import re
import re._constants as sre  # type: ignore[import-not-found]
import re._parser as sre_parse  # type: ignore[import-not-found]  # the stdlib's regex parser, unstubbed
from collections.abc import Sequence
from typing import Any

import re2

from gateway.pending import UnsupportedError, emit

CHUNK_BYTES = 16 * 1024
# Context either side of a slice: one UTF-8 character before (an assertion at a match's start reads it), and a
# few bytes beyond a match's furthest end.
MARGIN_BYTES = 8
SENTINEL = r"\z"  # matches every text, at its end: absent from a set's answer only when the set failed
# Text Python's regex parser reads differently from RE2 (or not at all): a rule using any is given no window.
_DIVERGENT = re.compile(r"\\[QEpPCzZxuUN]|\[:[a-zA-Z]+:\]|\{,")
_FLAGS = re.compile(r"\(\?([a-zA-Z-]*)[:)]")
_REPEAT = re.compile(r"\{(\d+)(?:,(\d*))?\}")


def loosen(pattern: str) -> str:
    """The pattern with every counted repeat's upper bound dropped (`x{2,5}` and `x{2}` become `x{2,}`): it
    matches everything the pattern matches. Only braces RE2 reads as a repeat are touched (not escaped, not
    in a character class, not in `\\Q…\\E`, not `\\x{…}` or `\\p{…}`)."""
    if "\\Q" in pattern:
        return pattern
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            end = _escape_end(pattern, i)
            out.append(pattern[i:end])
            i = end
        elif char == "[":
            end = _class_end(pattern, i)
            out.append(pattern[i:end])
            i = end
        elif char == "{" and (repeat := _REPEAT.match(pattern, i)):
            out.append("{" + repeat.group(1) + ",}")
            i = repeat.end()
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _escape_end(pattern: str, i: int) -> int:
    if pattern[i + 1 : i + 2] in ("x", "p", "P") and pattern[i + 2 : i + 3] == "{":
        close = pattern.find("}", i + 3)
        return len(pattern) if close < 0 else close + 1
    return i + 2


def _class_end(pattern: str, i: int) -> int:
    """Just past the `]` that closes the class opening at `i` (a `]` first in the class is a literal)."""
    j = i + 1
    if pattern[j : j + 1] == "^":
        j += 1
    if pattern[j : j + 1] == "]":
        j += 1
    while j < len(pattern):
        if pattern[j] == "\\":
            j = _escape_end(pattern, j)
        elif pattern.startswith("[:", j):
            close = pattern.find(":]", j + 2)
            j = len(pattern) if close < 0 else close + 2
        elif pattern[j] == "]":
            return j + 1
        else:
            j += 1
    return len(pattern)


def reach_bytes(pattern: str) -> int | None:
    """The most UTF-8 bytes a match can span (four to a character), or None when it has no bound, cannot
    match at least one character, or is written in syntax Python's parser may read differently from RE2."""
    if _DIVERGENT.search(pattern) or any(set(flags) - set("ims-") for flags in _FLAGS.findall(pattern)):
        return None
    try:
        low, high = sre_parse.parse(pattern).getwidth()
    except (re.error, RecursionError, OverflowError):
        return None
    if low < 1 or high >= sre.MAXREPEAT:
        return None
    return 4 * int(high)


def bounded_head(pattern: str) -> tuple[str, int] | None:
    """A necessary start of every match of the pattern, of bounded length: its top-level items up to the first
    one without a bound, that one (a repeat `x{m,}`, `x*`, `x+` of something bounded) taken `m` times; written
    back in RE2 syntax, with the most UTF-8 bytes it can span. None when there is no such start of at least
    one character, or the parser may read the pattern differently from RE2 (or the writer might drop a flag:
    only `i` is written back for a group)."""
    if _DIVERGENT.search(pattern) or any(set(flags) - set("i-") for flags in _FLAGS.findall(pattern)):
        return None
    try:
        parsed = sre_parse.parse(pattern)
        head: list[Any] = []
        for item in parsed:
            if sre_parse.SubPattern(parsed.state, [item]).getwidth()[1] < sre.MAXREPEAT:
                head.append(item)
                continue
            op, arg = item
            if op is sre.MAX_REPEAT and arg[0] > 0 and arg[2].getwidth()[1] < sre.MAXREPEAT:
                head.append((op, (arg[0], arg[0], arg[2])))
            break
        low, high = sre_parse.SubPattern(parsed.state, head).getwidth() if head else (0, 0)
        if low < 1:
            return None
        written = emit(head)
    except (re.error, RecursionError, OverflowError, UnsupportedError):
        return None
    return (f"(?i:{written})" if parsed.state.flags & sre.SRE_FLAG_IGNORECASE else written), 4 * int(high)


class Prefilter:
    """An RE2 set per kind of rule: chunked (a bound on a match's length is known) and whole-text (the rest)."""

    def __init__(self, patterns: Sequence[str]) -> None:
        options = re2.Options()
        options.log_errors = False
        options.max_mem = 64 << 20
        # Per rule: how far past a chunk its matches beginning there may reach (bytes); None: searched whole.
        self.reach: list[int | None] = []
        chunked: dict[int, str] = {}  # rule -> what the chunked set looks for: the rule, or its head
        self.headed: set[int] = set()  # rules the chunked set finds by their head
        overlaps = [0]
        for index, pattern in enumerate(patterns):
            reach = reach_bytes(pattern)
            if reach is not None and reach > CHUNK_BYTES // 2:
                reach = None  # windows that long would make the chunks overlap more than they cover
            self.reach.append(None if reach is None else reach + MARGIN_BYTES)
            if reach is not None:
                chunked[index] = pattern
                overlaps.append(reach + MARGIN_BYTES)
            elif (head := bounded_head(pattern)) is not None and head[1] <= CHUNK_BYTES // 2:
                chunked[index] = head[0]
                self.headed.add(index)
                overlaps.append(head[1] + MARGIN_BYTES)
        self.chunked = _RuleSet(chunked, options)
        self.whole = _RuleSet({i: p for i, p in enumerate(patterns) if i not in chunked}, options)
        self.overlap = max(overlaps)

    def candidates(self, data: bytes) -> list[list[tuple[int, int]]]:
        """Per rule, the byte ranges of `data` in which one of its matches may begin (merged, in order)."""
        ranges: list[list[tuple[int, int]]] = [[] for _ in self.reach]
        size = len(data)
        if self.whole.rules:
            for index in self.whole.matching(data):
                ranges[index].append((0, size))
        if self.chunked.rules:
            view = memoryview(data)
            start = 0
            while start < size:
                end = _char_start(data, min(size, start + CHUNK_BYTES))
                if end <= start:  # not UTF-8 (a chunk of continuation bytes): the rest as one chunk
                    end = size
                first = _char_start(data, max(0, start - 4))
                last = _char_start(data, min(size, end + self.overlap))
                for index in self.chunked.matching(view[first:last]):
                    rule_ranges = ranges[index]
                    if index in self.headed:  # searched from the first chunk with its head to the end
                        if not rule_ranges:
                            rule_ranges.append((start, size))
                        continue
                    if rule_ranges and rule_ranges[-1][1] == start:
                        rule_ranges[-1] = (rule_ranges[-1][0], end)
                    else:
                        rule_ranges.append((start, end))
                start = end
        return ranges


class _RuleSet:
    """Some of the rules, loosened, in one RE2 set, with the sentinel last."""

    def __init__(self, patterns: dict[int, str], options: Any) -> None:
        self.rules = list(patterns)
        self.regexps = re2.Set.SearchSet(options)
        if not patterns:
            return
        for pattern in patterns.values():
            loose = loosen(pattern)
            try:
                re2.compile(loose, options)
            except re2.error:
                loose = pattern  # the rule as written: a set of exact rules is as sound, only slower
            self.regexps.Add(loose)
        self.regexps.Add(SENTINEL)
        self.regexps.Compile()

    def matching(self, data: Any) -> list[int]:
        """The rules that may match somewhere in `data`: every one of them if the set could not tell."""
        found = self.regexps.Match(data)
        sentinel = len(self.rules)
        if not found or sentinel not in found:
            return self.rules
        return [self.rules[i] for i in found if i != sentinel]


def _char_start(data: bytes, position: int) -> int:
    """The start of the UTF-8 character at `position` (itself unless it is a continuation byte)."""
    while 0 < position < len(data) and data[position] & 0xC0 == 0x80:
        position -= 1
    return position


class LiteralSplit:
    """A rule of the form `\\b?[C]{m,n}c R`, where the literal character `c` is not in the ASCII class `C` (the
    e-mail rule: a local part, `@`, a domain), searched from each `c` instead of as one automaton.

    RE2's automaton for such a pattern tracks every length of the run before `c` against every length of what
    follows (the e-mail rule: 64 x 253 counts), which outgrows its state cache on text with many near misses and
    runs ~20x slower. But a match's `C` run is forced (it stops at the first character not in `C`, which must be
    `c`), so a match is: the leftmost start `s` within `n` bytes before a `c`, inside the `C` run ending there,
    at least `m` before it, where the leading assertion holds; then `c R`, searched anchored at that `c` (its
    leftmost-first match there is the whole pattern's, the part before `c` having one way to match)."""

    # `\b?`, a class, `{m,n}`, then a character RE2 reads as itself (plain, or an escaped punctuation mark).
    _FORM = re.compile(r"(\\b)?(\[(?:\\.|[^\]\\])+\])\{(\d+),(\d+)\}([^\\\[\](){}|.*+?^$]|\\[^0-9A-Za-z])")

    def __init__(self, run: bytes, low: int, high: int, literal: bytes, head: Any, tail: Any) -> None:
        self.run = run  # the bytes of `C`
        self.low, self.high = low, high
        self.literal = literal
        self.head = head  # `\b[C]`: where, from a position, the leading assertion first holds; None: no assertion
        self.tail = tail  # `c R`: the search finds the next `c` it matches after
        reach = reach_bytes(tail.pattern)
        self.tail_reach = (CHUNK_BYTES if reach is None else reach) + MARGIN_BYTES  # past its `c`, at most

    @classmethod
    def of(cls, pattern: str, options: Any = None) -> LiteralSplit | None:
        """The split of a pattern of that form, or None for any other."""
        form = cls._FORM.match(pattern)
        if form is None or _DIVERGENT.search(pattern):
            return None
        boundary, klass, low, high, literal = form.groups()
        try:
            parsed = list(sre_parse.parse(pattern))
            (_, (_, _, repeated)), (kind, code) = parsed[1 if boundary else 0 : 3 if boundary else 2]
            items = list(repeated)
        except (re.error, RecursionError, OverflowError, ValueError, TypeError):
            return None
        literal = literal[-1]
        # The parse agrees (so nothing at the top level, such as `|`, reads across the split), and the class
        # is plain ASCII, which RE2 reads as Python does.
        if (
            kind is not sre.LITERAL
            or code != ord(literal)
            or code > 0x7F
            or len(items) != 1
            or items[0][0] is not sre.IN
        ):
            return None
        for what, value in items[0][1]:
            if not ((what is sre.LITERAL and value < 0x80) or (what is sre.RANGE and value[1] < 0x80)):
                return None
        low_count, high_count = int(low), int(high)
        if not 1 <= low_count <= high_count:
            return None
        try:
            member = re2.compile(klass, options)
            head = re2.compile(rf"\b{klass}", options) if boundary else None
            tail = re2.compile(pattern[form.start(5) :], options)
        except re2.error:
            return None
        run = bytes(b for b in range(0x80) if member.fullmatch(chr(b)))
        if literal.encode() in run:
            return None
        return cls(run, low_count, high_count, literal.encode(), head, tail)
