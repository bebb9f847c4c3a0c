"""What the rules see: text with the disguises people (and models) use taken off.

NFKC (full-width and compatibility forms to plain ones), every Unicode decimal digit as its ASCII digit
(Arabic-Indic, Devanagari…), Unicode separators (NBSP, thin space, line and paragraph separators) as a
space, and format characters (zero-width space and joiners, word joiner, BOM, soft hyphen, bidi marks)
removed. Matches are mapped back to the original text, so a redaction replaces exactly what was sent and
text without a match is passed on untouched. ASCII text, most of what passes, is its own normal form.

Each character is replaced on its own (never composed with its neighbours), so most characters become one
character and positions stay where they were; only the characters whose replacement is longer (ligatures,
fractions) are pieces of their own in the map back. Characters that vanish (format characters: a zero-width
space between every digit of a card number is 250,000 of them in a MiB) are only counted: a sorted list of
where they stood, made by `str.split` and `itertools.accumulate` without a Python step for each.
"""

from __future__ import annotations

import bisect
import codecs
import itertools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

# Around the replacement of a character that does not become exactly one character, in the translated text
# (noncharacters: a text holding one is normalised the slow way instead).
_OPEN, _CLOSE = "\ufdd0", "\ufdd1"
_GONE = "\ufdd2"  # a character that vanished, in the translated text (one for one with the original)
_MARKERS = (_OPEN, _CLOSE, _GONE)
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_FEW = 8  # distinct non-ASCII characters a text may have to be translated one `str.replace` each
_CACHE_LIMIT = 1 << 16  # distinct characters remembered (a text of every code point must not grow it unbounded)


@dataclass(frozen=True)
class Normalised:
    text: str
    # Pieces of the text in order, alternately a run that is the original's characters one for one (even
    # index) and one original character replaced by more or fewer characters (odd index): each piece's start
    # in `text` and in the original. Empty when the positions in `text` are the original's.
    _starts: tuple[int, ...] | list[int] = ()
    _origins: tuple[int, ...] | list[int] = ()
    _utf8: bytes | None = None  # the text in UTF-8 when normalising made it on the way
    # Where characters that vanished stood, as positions in `text` (sorted): the pieces above are of the text
    # with them still there.
    _removed: Sequence[int] = ()

    def utf8(self) -> bytes:
        """The text in UTF-8 (what RE2 reads)."""
        return self.text.encode() if self._utf8 is None else self._utf8

    @property
    def aligned(self) -> bool:
        """Whether every position in the text is the same position in the original."""
        return not self._starts and not self._removed

    def original_start(self, position: int) -> int:
        if self._removed:
            position += bisect.bisect_right(self._removed, position)
        if not self._starts:
            return position
        index = max(0, bisect.bisect_right(self._starts, position) - 1)
        if index % 2:
            return self._origins[index]
        return self._origins[index] + position - self._starts[index]

    def original_end(self, position: int) -> int:
        """Where an exclusive end in the normalised text falls in the original."""
        if position == 0:
            return position
        if self._removed:
            position += bisect.bisect_left(self._removed, position)
        if not self._starts:
            return position
        index = max(0, bisect.bisect_right(self._starts, position - 1) - 1)
        if index % 2:
            return self._origins[index] + 1
        return self._origins[index] + position - self._starts[index]


class _Replacements(dict[int, str]):
    """Code point -> its normal form as `str.translate` reads it, worked out once per character. A
    replacement that is not one character is marked (`_OPEN`…`_CLOSE`) so the map back can find it."""

    def __missing__(self, code: int) -> str:
        replacement = _marked(code)
        if len(self) < _CACHE_LIMIT:
            self[code] = replacement
        return replacement


def _marked(code: int) -> str:
    """The character's normal form, marked for the map back unless it is one character."""
    replacement = normal_character(chr(code))
    if not replacement:
        return _GONE
    return replacement if len(replacement) == 1 else f"{_OPEN}{replacement}{_CLOSE}"


_REPLACEMENTS = _Replacements({code: chr(code) for code in range(128)})
_TRANSLATE_RUNS = "aigw-normalise"


def _translate_run(error: UnicodeError) -> tuple[bytes, int]:
    """An encoding error handler: a run of non-ASCII characters as its normal form, in UTF-8."""
    assert isinstance(error, UnicodeEncodeError)
    return error.object[error.start : error.end].translate(_REPLACEMENTS).encode(), error.end


codecs.register_error(_TRANSLATE_RUNS, _translate_run)


def normalise(text: str) -> Normalised:
    if text.isascii():
        return Normalised(text)
    if any(marker in text for marker in _MARKERS):
        return _normalise_by_character(text)
    utf8 = None
    if _mostly_ascii(text):
        # A few non-ASCII runs in ASCII text: the ASCII encoder copies the rest at C speed and hands over each run.
        utf8 = text.encode("ascii", _TRANSLATE_RUNS)
        marked = utf8.decode()
    else:
        marked = _translate_few(text) or text.translate(_table(text))
    starts: list[int] = []
    origins: list[int] = []
    if _OPEN in marked:
        # Alternately runs kept one for one and single characters' replacements: "ab", "fi", "c", "½", "d" (the
        # characters that vanished are still there, one for one).
        parts = marked.replace(_CLOSE, _OPEN).split(_OPEN)
        lengths = list(map(len, parts))
        original_lengths = lengths.copy()
        original_lengths[1::2] = [1] * (len(parts) // 2)
        starts = list(itertools.accumulate(lengths, initial=0))[:-1]
        origins = list(itertools.accumulate(original_lengths, initial=0))[:-1]
        marked, utf8 = "".join(parts), None
    removed: list[int] = []
    if _GONE in marked:
        parts = marked.split(_GONE)
        removed = list(itertools.accumulate(map(len, parts[:-1])))
        marked, utf8 = "".join(parts), None
    return Normalised(marked, starts, origins, utf8, removed)


def _table(text: str) -> Sequence[str] | _Replacements:
    """What `str.translate` reads fastest for this text: a list of every BMP character's replacement (made once,
    ~30 ms; a list is read twice as fast as a dictionary), unless the text has a character beyond it."""
    global _BMP  # made on first use: most processes never see dense non-ASCII text
    if len(text.encode("utf-16-le", "surrogatepass")) != 2 * len(text):
        return _REPLACEMENTS  # a character past U+FFFF would be past the list's end, and left as it is
    if _BMP is None:
        _BMP = [_marked(code) if code > 0x7F else chr(code) for code in range(0x10000)]
    return _BMP


_BMP: list[str] | None = None


def _translate_few(text: str) -> str | None:
    """`text.translate(_REPLACEMENTS)` one `str.replace` for each distinct non-ASCII character, if there are
    few (none whose replacement holds a non-ASCII character a later one could change): None otherwise."""
    sample = text[:: max(1, len(text) // 4096)]
    if len({char for char in sample if char > "\x7f"}) > _FEW:
        return None
    marked = rest = text
    at = 0
    for _ in range(_FEW):
        found = _NON_ASCII.search(rest, at)
        if found is None:
            return marked
        char, at = found.group(), found.start()
        replacement = _REPLACEMENTS[ord(char)]
        if replacement != char:
            if not replacement.strip(_OPEN + _CLOSE).isascii() and replacement != _GONE:
                return None
            marked = marked.replace(char, replacement)
        rest = rest.replace(char, "")
    return None if _NON_ASCII.search(rest, at) else marked


def _mostly_ascii(text: str, samples: int = 64, width: int = 64) -> bool:
    """Whether fewer than a quarter of evenly spread samples of the text hold a non-ASCII character."""
    step = max(width, len(text) // samples)
    mixed = sum(not text[i : i + width].isascii() for i in range(0, len(text), step))
    return mixed * 4 < samples


def _normalise_by_character(text: str) -> Normalised:
    """The same result, built character by character (for a text holding the markers themselves)."""
    out: list[str] = []
    starts: list[int] = []
    origins: list[int] = []
    length = 0  # characters out so far
    run_start = run_normal = 0  # where the current one-for-one run began, in the original and in the result
    for position, char in enumerate(text):
        replacement = char if char.isascii() else normal_character(char)
        out.append(replacement)
        if len(replacement) == 1:
            length += 1
            continue
        starts += [run_normal, length]
        origins += [run_start, position]
        length += len(replacement)
        run_start, run_normal = position + 1, length
    if not starts:
        return Normalised("".join(out))
    starts.append(run_normal)
    origins.append(run_start)
    return Normalised("".join(out), starts, origins)


def normal_character(char: str) -> str:
    """What one character becomes before the rules see it (format characters dropped, spaces made one space,
    digits of any script made ASCII, the rest NFKC): the table above is built from this."""
    category = unicodedata.category(char)
    if category == "Cf":
        return ""
    if category in ("Zs", "Zl", "Zp"):
        return " "
    if category == "Nd":
        return str(unicodedata.decimal(char))
    return unicodedata.normalize("NFKC", char)
