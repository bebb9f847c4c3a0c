"""What the rules see: text with the disguises people (and models) use taken off.

NFKC (full-width and compatibility forms to plain ones), every Unicode decimal digit as its ASCII digit
(Arabic-Indic, Devanagari…), Unicode separators (NBSP, thin space, line and paragraph separators) as a
space, and format characters (zero-width space and joiners, word joiner, BOM, soft hyphen, bidi marks)
removed. Matches are mapped back to the original text, so a redaction replaces exactly what was sent and
text without a match is passed on untouched. ASCII text, most of what passes, is its own normal form.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass

_RUNS = re.compile(r"[\x00-\x7f]+|[^\x00-\x7f]")


@dataclass(frozen=True)
class Normalised:
    text: str
    # (start in text, start in the original, length in text, whether it is the original unchanged): None if
    # the whole text is unchanged.
    _pieces: tuple[tuple[int, int, int, bool], ...] | None = None
    _starts: tuple[int, ...] = ()

    def original_start(self, position: int) -> int:
        piece = self._piece(position)
        if piece is None:
            return position
        start, origin, _length, same = piece
        return origin + (position - start) if same else origin

    def original_end(self, position: int) -> int:
        """Where an exclusive end in the normalised text falls in the original."""
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
        replacement = chunk if chunk.isascii() else _character(chunk)
        if replacement:
            pieces.append((length, run.start(), len(replacement), chunk.isascii()))
            out.append(replacement)
            length += len(replacement)
    pieces.append((length, len(text), 0, True))
    return Normalised("".join(out), tuple(pieces), tuple(piece[0] for piece in pieces))


def _character(char: str) -> str:
    category = unicodedata.category(char)
    if category == "Cf":
        return ""
    if category in ("Zs", "Zl", "Zp"):
        return " "
    if category == "Nd":
        return str(unicodedata.decimal(char))
    return unicodedata.normalize("NFKC", char)
