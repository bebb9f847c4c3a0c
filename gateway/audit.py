"""The audit record as it leaves the gateway: one JSON line, never longer than the configured cap.

The CloudWatch agent ships the audit file line by line and cuts a line longer than a log event may be
(256 KiB, of which PutLogEvents counts 26 bytes per event as overhead), appending "[Truncated...]": what
arrives is no longer JSON. A record can be far longer (prompt and completion text, megabytes), so the
gateway cuts it itself, by the size of the line the sink writes (the JSON escapes included), and says so:

    "truncated": true,
    "cut": {"prompt": {"bytes": 2097152, "sha256": "…"}, "completion": {…}}

Each cut field keeps a prefix of its text; `bytes` and `sha256` describe the full text (UTF-8), so an
auditor holding a full copy can prove it is the one that passed. Prompt and completion are cut first,
sharing the room fairly. If even without them the record is too long (an inflated path, repository
header, claim or error text), every string in the record shares the room fairly, the texts included,
so an inflated header cannot push the prompt out. Should even empty strings not fit (no record the
gateway makes comes close), a minimal record remains, with the sha256 of the whole line it replaces.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from gateway.sinks import json_line

# What the agent forwards whole: a log event's message may be 256 KiB less the 26 bytes PutLogEvents adds.
CLOUDWATCH_EVENT_BYTES = 256 * 1024
CLOUDWATCH_EVENT_OVERHEAD_BYTES = 26
MAX_RECORD_BYTES = CLOUDWATCH_EVENT_BYTES - CLOUDWATCH_EVENT_OVERHEAD_BYTES
# Room for the record's own fields with every string emptied, and for the minimal record.
MIN_RECORD_BYTES = 8 * 1024

TEXT_FIELDS = ("prompt", "completion")
# The minimal record keeps these when they are short (they always are: the gateway sets them).
KEPT_WHEN_OVERSIZED = ("time", "request_id", "environment", "method", "status", "outcome")
_KEPT_VALUE_CHARS = 200
WHOLE_RECORD = "record"  # the key under "cut" that describes the whole line a minimal record replaces

Path = tuple[str | int, ...]


def capped_line(record: Mapping[str, Any], limit: int, texts: Sequence[str] = TEXT_FIELDS) -> str:
    """The record as the one JSON line the sink writes, at most `limit` characters (all ASCII: bytes too).

    Sets `truncated`, and `cut` when something was cut (any `truncated`/`cut` in `record` is replaced).
    Values JSON has no type for are written as strings, as the sink would; NaN and infinities too.
    """
    plain: dict[str, Any] = {key: _plain(value) for key, value in record.items() if key not in ("truncated", "cut")}
    strings = dict(_strings(plain))
    # A string's JSON form is at least as long as the string: only a record that may fit is written whole
    # to find out (a megabyte prompt is not serialized just to learn it is too long).
    if sum(map(len, strings.values())) <= limit:
        line = json_line({**plain, "truncated": False})
        if len(line) <= limit:
            return line
    layout = _Layout(plain, {path: _escaped(text) for path, text in strings.items()})
    text_paths = [path for path in strings if len(path) == 1 and path[0] in texts]
    return layout.fit(text_paths, limit) or layout.fit(list(strings), limit) or _minimal(plain, limit)


def describe(text: str) -> dict[str, Any]:
    """The full text's length in UTF-8 bytes and its sha256 (lone surrogates, which JSON escapes can carry
    in, are encoded as they are rather than refused)."""
    data = text.encode("utf-8", "surrogatepass")
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def field_name(path: Path) -> str:
    """`policy.prompt.action`, `items[2]`: how `cut` names a field."""
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else part)
    return name


class _Layout:
    """The record with its strings set aside: its size with any of them cut is known without writing it."""

    def __init__(self, plain: dict[str, Any], escaped: dict[Path, str]) -> None:
        self.plain = plain
        self.escaped = escaped
        skeleton = _with(plain, dict.fromkeys(escaped, ""))  # every string empty
        self.empty_size = len(json_line({**skeleton, "truncated": True, "cut": {}})) - len("{}")
        self.strings_size = sum(map(len, escaped.values()))
        self.described: dict[Path, dict[str, Any]] = {}

    def size(self, cut: Mapping[str, Any], emptied: Sequence[Path]) -> int:
        """Exact: putting a string back where "" is adds its escaped length, and `cut` is written as alone."""
        emptied_size = sum(len(self.escaped[path]) for path in emptied)
        return self.empty_size + len(json_line(cut)) + self.strings_size - emptied_size

    def fit(self, paths: Sequence[Path], limit: int) -> str | None:
        """Cut the fewest of these strings (the longest first) so the record fits, sharing the room left
        fairly between them; None if it does not fit even with all of them empty."""
        longest = sorted(paths, key=lambda path: len(self.escaped[path]), reverse=True)
        for count in range(1, len(longest) + 1):
            chosen = longest[:count]
            if chosen[-1] not in self.described:
                self.described[chosen[-1]] = describe(_get(self.plain, chosen[-1]))
            cut = {field_name(path): self.described[path] for path in chosen}
            size = self.size(cut, chosen)
            if size > limit:
                continue
            values: dict[Path, str] = {}
            for path, share in zip(
                chosen, _fair_shares([len(self.escaped[p]) for p in chosen], limit - size), strict=True
            ):
                values[path] = _prefix(_get(self.plain, path), self.escaped[path], share)
                if len(self.escaped[path]) <= share:
                    cut.pop(field_name(path), None)  # it fitted whole after all: not cut, not said to be
            line = json_line({**_with(self.plain, values), "truncated": True, "cut": cut})
            if len(line) <= limit:
                return line
        return None


def _minimal(plain: dict[str, Any], limit: int) -> str:
    """What is left when the record cannot fit: who and what, and the fingerprint of the whole line."""
    line = json_line({**plain, "truncated": False})
    kept = {
        key: plain[key]
        for key in KEPT_WHEN_OVERSIZED
        if key in plain and len(json_line(plain[key])) <= _KEPT_VALUE_CHARS
    }
    minimal = json_line({**kept, "truncated": True, "cut": {WHOLE_RECORD: describe(line)}})
    if len(minimal) > limit:  # cannot happen for a limit the settings accept (MIN_RECORD_BYTES)
        raise ValueError(f"an audit record cap of {limit} bytes leaves no room for the minimal record")
    return minimal


def _fair_shares(sizes: Sequence[int], room: int) -> list[int]:
    """Max-min fair: each gets what it needs or an equal part of what is left, whichever is less."""
    shares = [0] * len(sizes)
    order = sorted(range(len(sizes)), key=lambda index: sizes[index])
    for position, index in enumerate(order):
        shares[index] = min(sizes[index], room // (len(sizes) - position))
        room -= shares[index]
    return shares


def _prefix(text: str, escaped: str, room: int) -> str:
    """The longest prefix of `text` whose JSON form (without quotes) fits in `room` characters, never
    ending inside an escape or between the two halves of a surrogate pair."""
    if len(escaped) <= room:
        return text
    end = room
    while end > 0:
        try:
            prefix: str = json.loads(f'"{escaped[:end]}"')
        except ValueError:  # cut inside an escape (\n, \\, \u00e9): step back to its start
            end -= 1
            continue
        if prefix and "\ud800" <= prefix[-1] <= "\udbff":
            end -= 6  # the first half of a pair (\ud83d) without its second
            continue
        return prefix
    return ""


def _escaped(text: str) -> str:
    return json.dumps(text)[1:-1]  # ensure_ascii, as the sink writes it


def _plain(value: Any) -> Any:
    """The value as the sink's JSON would show it: strings for what JSON has no type for."""
    if isinstance(value, Mapping):
        return {key if isinstance(key, str) else str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # json would write NaN / Infinity, which is not JSON
    if value is None or isinstance(value, str | int | float):
        return value
    return str(value)


def _strings(node: Any, path: Path = ()) -> Iterator[tuple[Path, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, (*path, index))


def _get(node: Any, path: Path) -> Any:
    for part in path:
        node = node[part]
    return node


def _with(node: Any, values: Mapping[Path, Any]) -> Any:
    """A copy of `node` with the values at these paths replaced (only the containers on the way are copied)."""
    on_the_way = {target[:length] for target in values for length in range(len(target))}

    def copy(node: Any, path: Path) -> Any:
        if path in values:
            return values[path]
        if path not in on_the_way:
            return node
        if isinstance(node, dict):
            return {key: copy(value, (*path, key)) for key, value in node.items()}
        if isinstance(node, list):
            return [copy(value, (*path, index)) for index, value in enumerate(node)]
        return node

    return copy(node, ())
