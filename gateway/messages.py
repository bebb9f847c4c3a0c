"""What the gateway reads in request and response bodies: text to check, and token usage.

Bodies are walked generically (every string except identifiers and binary payloads), so the
Bedrock InvokeModel (Anthropic Messages), Converse and vendor API shapes are all covered, including
system prompts, tool results and documents pasted as text.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from gateway import eventstream
from gateway.policy import Policy, Scan, StreamScanner, Where

# Keys whose string values are identifiers, enums or binary (base64) payloads, not text people wrote.
NOT_TEXT = frozenset(
    {
        "anthropic_version", "type", "role", "id", "tool_use_id", "toolUseId", "name", "model", "media_type",
        "data", "bytes", "format", "signature", "stop_reason", "stopReason", "stop_sequence", "cache_control",
    }
)  # fmt: skip


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def update(self, input_tokens: Any = None, output_tokens: Any = None) -> None:
        if isinstance(input_tokens, int):
            self.input_tokens = input_tokens
        if isinstance(output_tokens, int):
            self.output_tokens = output_tokens


def texts(node: Any) -> list[str]:
    found: list[str] = []

    def keep(text: str) -> str:
        found.append(text)
        return text

    _walk(node, keep)
    return found


def replace_texts(node: Any, replacements: list[str]) -> Any:
    remaining: Iterator[str] = iter(replacements)
    return _walk(node, lambda _text: next(remaining))


def _walk(node: Any, visit: Callable[[str], str], key: str | None = None) -> Any:
    if isinstance(node, str):
        return node if key in NOT_TEXT else visit(node)
    if isinstance(node, list):
        return [_walk(item, visit, key) for item in node]
    if isinstance(node, dict):
        return {k: _walk(v, visit, k) for k, v in node.items()}
    return node


def check_body(policy: Policy, body: Any, where: Where) -> tuple[Any, Scan, list[str]]:
    """The body as it may be passed on (redacted), what was found, and its text after redaction."""
    passed, scan = policy.scan_strings(texts(body), where)
    return (replace_texts(body, passed) if scan.action == "redact" else body), scan, passed


def usage_from_body(body: Any) -> Usage:
    usage = Usage()
    if isinstance(body, dict) and isinstance(body.get("usage"), dict):
        u = body["usage"]
        usage.update(u.get("input_tokens", u.get("inputTokens")), u.get("output_tokens", u.get("outputTokens")))
    return usage


class CompletionStream:
    """A streamed completion passing through: text checked as it goes, usage collected.

    Subclasses know one wire format; all share the scanner, which holds back only the last few
    hundred characters so a match split across chunks is still caught before it leaves.
    """

    def __init__(self, policy: Policy) -> None:
        self.scanner = StreamScanner(policy)
        self.usage = Usage()
        self.text: list[str] = []
        self.index: int | None = None  # the content block whose text is being held

    @property
    def blocked(self) -> bool:
        return self.scanner.blocked

    @property
    def scan(self) -> Scan:
        return self.scanner.total

    def feed(self, data: bytes) -> bytes:
        raise NotImplementedError

    def finish(self) -> bytes:
        """Whatever is still held at the end of the stream."""
        return self._flush()

    def block_message(self) -> str:
        rules = ", ".join(self.scan.blocking_rules)
        return f"aigw content policy blocked the completion (rule {rules})."

    def _release(self, text: str) -> str:
        released = self.scanner.feed(text)
        self.text.append(released)
        return released

    def _flush(self) -> bytes:
        rest = self.scanner.finish()
        self.text.append(rest)
        if not rest or self.blocked:
            return b""
        return self._delta(rest, self.index or 0)

    def _delta(self, text: str, index: int) -> bytes:
        """A text delta in this stream's format, for text released at the end of a block."""
        return self._wrap(
            {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}
        )

    def _wrap(self, inner: dict[str, Any]) -> bytes:
        """An Anthropic Messages streaming event, framed as this stream frames it."""
        raise NotImplementedError

    def _messages_event(self, inner: dict[str, Any], original: bytes) -> bytes:
        """One Anthropic Messages streaming event (Bedrock InvokeModel streams and vendor SSE share
        them): note usage, pass text through the scanner; returns what to send on."""
        kind = inner.get("type")
        if kind == "message_start":
            usage = inner.get("message", {}).get("usage", {})
            self.usage.update(usage.get("input_tokens"), usage.get("output_tokens"))
        elif kind == "message_delta":
            self.usage.update(output_tokens=inner.get("usage", {}).get("output_tokens"))
        elif kind == "content_block_delta" and inner.get("delta", {}).get("type") == "text_delta":
            self.index = inner.get("index", 0)
            released = self._release(inner["delta"]["text"])
            if not released:
                return b""
            inner["delta"]["text"] = released
            return self._wrap(inner)
        elif kind in ("content_block_stop", "message_stop"):
            return self._flush() + original
        return original


class _EventStreamCompletion(CompletionStream):
    """Bedrock's binary event stream; a block ends it with an exception event clients raise."""

    def __init__(self, policy: Policy) -> None:
        super().__init__(policy)
        self.decoder = eventstream.Decoder()

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        for event in self.decoder.feed(data):
            if self.blocked:
                break
            out += self._event(event)
        if self.blocked:
            out += eventstream.exception("validationException", json.dumps({"message": self.block_message()}).encode())
        return bytes(out)

    def _event(self, event: eventstream.Event) -> bytes:
        raise NotImplementedError


class InvokeStream(_EventStreamCompletion):
    """InvokeModelWithResponseStream: `chunk` events carry base64 JSON in the model's own format
    (Anthropic Messages streaming events)."""

    def _event(self, event: eventstream.Event) -> bytes:
        original = eventstream.encode(event.headers, event.payload)
        if event.event_type != "chunk":
            return original
        inner = json.loads(base64.b64decode(json.loads(event.payload)["bytes"]))
        metrics = inner.get("amazon-bedrock-invocationMetrics")
        if isinstance(metrics, dict):
            self.usage.update(metrics.get("inputTokenCount"), metrics.get("outputTokenCount"))
        return self._messages_event(inner, original)

    def _wrap(self, inner: dict[str, Any]) -> bytes:
        payload = json.dumps({"bytes": base64.b64encode(json.dumps(inner).encode()).decode()}).encode()
        return eventstream.event("chunk", payload)


class ConverseStream(_EventStreamCompletion):
    """ConverseStream: `contentBlockDelta` text events and a `metadata` usage event."""

    def _event(self, event: eventstream.Event) -> bytes:
        kind = event.event_type
        if kind == "contentBlockDelta":
            body = json.loads(event.payload)
            text = body.get("delta", {}).get("text")
            if isinstance(text, str):
                self.index = body.get("contentBlockIndex", 0)
                released = self._release(text)
                if not released:
                    return b""
                body["delta"]["text"] = released
                return eventstream.event(kind, json.dumps(body).encode())
        elif kind in ("contentBlockStop", "messageStop"):
            return self._flush() + eventstream.encode(event.headers, event.payload)
        elif kind == "metadata":
            usage = json.loads(event.payload).get("usage", {})
            self.usage.update(usage.get("inputTokens"), usage.get("outputTokens"))
        return eventstream.encode(event.headers, event.payload)

    def _delta(self, text: str, index: int) -> bytes:
        body = {"contentBlockIndex": index, "delta": {"text": text}}
        return eventstream.event("contentBlockDelta", json.dumps(body).encode())


class ServerSentEventStream(CompletionStream):
    """A vendor API's `text/event-stream` (Anthropic Messages streaming events as SSE)."""

    def __init__(self, policy: Policy) -> None:
        super().__init__(policy)
        self.buffer = b""

    def feed(self, data: bytes) -> bytes:
        self.buffer += data
        out = bytearray()
        while b"\n\n" in self.buffer and not self.blocked:
            raw, self.buffer = self.buffer.split(b"\n\n", 1)
            out += self._event(raw + b"\n\n")
        if self.blocked:
            error = {"type": "error", "error": {"type": "invalid_request_error", "message": self.block_message()}}
            out += f"event: error\ndata: {json.dumps(error)}\n\n".encode()
        return bytes(out)

    def _event(self, raw: bytes) -> bytes:
        data = b"".join(line[5:].strip() for line in raw.split(b"\n") if line.startswith(b"data:"))
        try:
            inner = json.loads(data) if data else None
        except json.JSONDecodeError:
            return raw
        return self._messages_event(inner, raw) if isinstance(inner, dict) else raw

    def _wrap(self, inner: dict[str, Any]) -> bytes:
        return f"event: {inner['type']}\ndata: {json.dumps(inner)}\n\n".encode()
