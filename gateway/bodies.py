"""What the policy reads in a JSON body: every string, object key and number, wherever it is.

Only a structural field is exempt, and only when its value has that field's format (a role is a role, a
media type a media type), so nothing passes unread because of the name it sits under. Base64 payloads are
exempt only when they are what their block declares (an image's or PDF's magic bytes); a text document sent
as base64 is decoded and read like any text. Text in a signed block (thinking, reasoning) cannot be edited:
a redact rule there blocks. A secret split across two text blocks is found where they meet.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import re
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from gateway.policy import Policy, Scan, Where, blocks

# A structural field's value, when it has this format, is an identifier or enum, not text anyone wrote.
STRUCTURAL = {
    name: re.compile(pattern)
    for names, pattern in (
        (("type", "stop_reason", "stopReason"), r"[a-z_]{1,64}"),
        (("role",), r"user|assistant|system|developer"),
        (("anthropic_version",), r"[a-z]+-\d{4}-\d{2}-\d{2}"),
        (("media_type",), r"[a-z]{1,20}/[a-z0-9.+-]{1,100}"),
        (("format",), r"[a-z0-9]{1,10}"),
        (
            ("model", "modelId"),
            r"(?:[a-z]{2,6}\.)?[a-z0-9-]{1,40}\.[a-z0-9.-]{1,120}(?::\d{1,4})?"
            r"|arn:aws[a-z-]{0,10}:bedrock:[a-z0-9-]{0,30}:\d{0,12}:[a-z-]{1,40}/[A-Za-z0-9.:-]{1,200}",
        ),
    )
    for name in names
}
# Declared binary payloads and how they begin once decoded.
MAGIC = {
    "image/png": (b"\x89PNG",), "png": (b"\x89PNG",),
    "image/jpeg": (b"\xff\xd8\xff",), "jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF8",), "gif": (b"GIF8",),
    "image/webp": (b"RIFF",), "webp": (b"RIFF",),
    "application/pdf": (b"%PDF",), "pdf": (b"%PDF",),
    "docx": (b"PK\x03\x04",), "xlsx": (b"PK\x03\x04",),
    "doc": (b"\xd0\xcf\x11\xe0",), "xls": (b"\xd0\xcf\x11\xe0",),
}  # fmt: skip
TEXT_DOCUMENTS = frozenset({"txt", "md", "csv", "html"})  # Converse document formats that are text
PAYLOAD_KEYS = frozenset({"data", "bytes"})
IDENTIFIERS = frozenset({"id", "tool_use_id", "toolUseId", "name", "signature"})  # read, but not text to record
BOUNDARY_WINDOW = 1024  # characters either side of where two text blocks meet
MAX_DEPTH = 128  # real bodies nest a dozen levels; tool input a few more


class TooDeepError(ValueError):
    """A body nested deeper than any real request: refused (400), not walked into a stack overflow."""


@dataclass
class Found:
    """One string of a body as the policy reads it."""

    text: str
    signed: bool
    kind: str = "string"  # "string", "text" (a text content block, checked also where it meets the next),
    # "document" (decoded base64), "identifier", "key" or "number": only the first three go into the audit record
    encode: Callable[[str], Any] = field(default=lambda text: text)

    @property
    def written(self) -> bool:
        return self.kind in ("string", "text", "document")


class BodyReader:
    """Collects what to check in a body; then rebuilds the body with the checked replacements."""

    def __init__(self) -> None:
        self.found: list[Found] = []

    def read(self, node: Any) -> None:
        self._walk(node, None, False, None, lambda found: found.text)

    def rebuild(self, node: Any, replacements: list[str]) -> Any:
        remaining = iter(zip(self.found, replacements, strict=True))

        def replace(_found: Found) -> Any:
            found, text = next(remaining)
            return found.encode(text) if text != found.text else _UNCHANGED

        return self._walk(node, None, False, None, replace, rebuild=True)

    def _walk(
        self,
        node: Any,
        key: str | None,
        signed: bool,
        declared: str | None,
        visit: Callable[[Found], Any],
        rebuild: bool = False,
        depth: int = 0,
    ) -> Any:
        if depth > MAX_DEPTH:
            raise TooDeepError(f"the body nests deeper than {MAX_DEPTH} levels")

        def see(found: Found, original: Any) -> Any:
            if not rebuild:
                self.found.append(found)
                return original
            replaced = visit(found)
            return original if replaced is _UNCHANGED else replaced

        if isinstance(node, str):
            if key in STRUCTURAL and STRUCTURAL[key].fullmatch(node):
                return node
            if key in PAYLOAD_KEYS and declared is not None:
                document = _text_document(node, declared)
                if document is not None:
                    return see(Found(document, signed, "document", _encode_base64), node)
                if _is_declared_binary(node, declared):
                    return node
            kind = "text" if key == "text" else "identifier" if key in IDENTIFIERS else "string"
            return see(Found(node, signed, kind), node)
        if isinstance(node, bool) or node is None:
            return node
        if isinstance(node, int | float):
            return see(Found(repr(node), signed, "number"), node)
        if isinstance(node, list):
            return [self._walk(item, key, signed, declared, visit, rebuild, depth + 1) for item in node]
        if isinstance(node, dict):
            signed = signed or "signature" in node
            for name in ("media_type", "format"):
                if isinstance(node.get(name), str):
                    declared = node[name]
            rebuilt = {}
            for name, value in node.items():
                new_name = see(Found(name, signed, "key"), name) if name not in STRUCTURAL_KEYS else name
                rebuilt[new_name] = self._walk(value, name, signed, declared, visit, rebuild, depth + 1)
            return rebuilt
        return node


_UNCHANGED = object()
# Keys every body has (field names of the Messages and Converse shapes): cannot be a secret, not read.
STRUCTURAL_KEYS = frozenset(
    {
        "anthropic_version", "anthropic_beta", "max_tokens", "messages", "role", "content", "type", "text", "system",
        "tools", "tool_choice", "tool_use_id", "toolUseId", "name", "input", "input_schema", "description", "id",
        "source", "media_type", "data", "bytes", "format", "image", "document", "toolUse", "toolResult", "toolSpec",
        "toolConfig", "inputSchema", "json", "properties", "required", "items", "enum", "cache_control", "citations",
        "thinking", "signature", "budget_tokens", "temperature", "top_p", "top_k", "stop_sequences", "metadata",
        "user_id", "inferenceConfig", "maxTokens", "topP", "stopSequences", "additionalModelRequestFields",
        "reasoningContent", "reasoningText", "redactedContent", "status", "is_error", "stop_reason", "stopReason",
        "stop_sequence", "usage", "input_tokens", "output_tokens", "inputTokens", "outputTokens", "totalTokens",
        "model", "modelId", "output", "message", "metrics", "latencyMs", "guardrailConfig", "performanceConfig",
        "promptVariables", "cachePoint", "title", "context", "ephemeral", "ttl",
    }
)  # fmt: skip


def _text_document(value: str, declared: str) -> str | None:
    """A base64 text document's text (text/* media types, Converse's text formats), else None."""
    if not (declared.startswith("text/") or declared in TEXT_DOCUMENTS):
        return None
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None  # not what it says it is: read as it was sent


def _is_declared_binary(value: str, declared: str) -> bool:
    """Whether a base64 payload is the binary its block declares (its first bytes say so)."""
    magic = MAGIC.get(declared)
    if magic is None:
        return False
    try:
        head = base64.b64decode(value[:16], validate=True)
    except binascii.Error:
        return False
    return head.startswith(magic)


def _encode_base64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class BodyChecker:
    """`check_body` inline for small bodies, on the policy's worker threads for large ones, within the budget.

    RE2 holds the GIL while it matches, but each call is one rule over one string; between calls, and in
    all the per-match work, the event loop gets its turn, so other requests keep being served.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        settings = policy.settings
        self.offload_bytes = settings.offload_bytes
        self.budget_seconds = settings.scan_budget_ms / 1000
        self.pool = ThreadPoolExecutor(max_workers=settings.scan_threads, thread_name_prefix="policy")

    async def check(self, body: Any, where: Where, size: int) -> tuple[Any, Scan, list[str]]:
        """As `check_body`; raises `ScanBudgetError` when the check takes longer than the budget."""
        deadline = time.perf_counter() + self.budget_seconds
        if size < self.offload_bytes:
            return check_body(self.policy, body, where, deadline)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, check_body, self.policy, body, where, deadline)

    async def recorded(self, body: Any, where: Where, size: int) -> tuple[Any, Scan]:
        """As `recorded_body`, inline or on the worker threads as `check` would."""
        deadline = time.perf_counter() + self.budget_seconds
        if size < self.offload_bytes:
            return recorded_body(self.policy, body, where, deadline)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, recorded_body, self.policy, body, where, deadline)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def recorded_body(policy: Policy, body: Any, where: Where, deadline: float | None = None) -> tuple[Any, Scan]:
    """The body as a record may keep it: every string with its block and redact matches replaced by their rules'
    markers (for what is kept, not passed on: telemetry events)."""
    reader = BodyReader()
    reader.read(body)
    total, kept = Scan(text=""), []
    processed: Counter[str] = Counter()  # matches checked per rule in this body, against the caps
    for found in reader.found:
        text = found.text
        if len(text) >= policy.shortest_match or not text.isascii():
            scan = policy.scan(text, where, deadline=deadline, processed=processed)
            total.merge(scan)
            text = scan.recorded
        kept.append(text)
    return (reader.rebuild(body, kept) if total.matches else body), total


def check_body(policy: Policy, body: Any, where: Where, deadline: float | None = None) -> tuple[Any, Scan, list[str]]:
    """The body as it may be passed on (redacted), what was found, and its text as the audit trail keeps it
    (every redact and block match replaced by its rule's marker)."""
    reader = BodyReader()
    reader.read(body)
    total, passed, recorded = Scan(text=""), [], []
    processed: Counter[str] = Counter()  # matches checked per rule in this body, against the caps
    for found in reader.found:
        text = kept = found.text
        if len(text) >= policy.shortest_match or not text.isascii():
            scan = policy.scan(text, where, signed=found.signed, deadline=deadline, processed=processed)
            total.merge(scan)
            text, kept = scan.text, scan.recorded
        passed.append(text)
        if found.written:
            recorded.append(kept)
    _check_where_blocks_meet(policy, [f.text for f in reader.found if f.kind == "text"], where, total, deadline)
    rebuilt = reader.rebuild(body, passed) if total.action == "redact" else body
    return rebuilt, total, recorded


def _check_where_blocks_meet(
    policy: Policy, texts: list[str], where: Where, total: Scan, deadline: float | None
) -> None:
    """A match that spans two consecutive text blocks cannot be redacted in either: it blocks."""
    for before, after in itertools.pairwise(texts):
        left, right = before[-BOUNDARY_WINDOW:], after[:BOUNDARY_WINDOW]
        for match in policy.find(left + right, where, deadline):
            if match.start < len(left) < match.end and blocks(match, signed=True):
                total.matches[match.rule.id] += 1
                total.action = "block"
                if match.rule.id not in total.blocking_rules:
                    total.blocking_rules.append(match.rule.id)
