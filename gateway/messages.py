"""Answers as they stream back: every event that carries model output checked, token usage collected.

Bodies, buffered answers and events checked whole are read by `gateway.bodies`, so the Bedrock
InvokeModel (Anthropic Messages), Converse and vendor API shapes are all covered.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from typing import Any

from gateway import eventstream, messages_api
from gateway.bodies import check_body
from gateway.errors import error_body
from gateway.policy import Policy, Scan, StreamScanner


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def update(self, input_tokens: Any = None, output_tokens: Any = None) -> None:
        if isinstance(input_tokens, int):
            self.input_tokens = input_tokens
        if isinstance(output_tokens, int):
            self.output_tokens = output_tokens


def usage_from_body(body: Any) -> Usage:
    usage = Usage()
    if isinstance(body, dict) and isinstance(body.get("usage"), dict):
        u = body["usage"]
        usage.update(u.get("input_tokens", u.get("inputTokens")), u.get("output_tokens", u.get("outputTokens")))
    return usage


# The deltas that stream model output piece by piece, by wire format: (delta type, field with the text).
MESSAGES_STREAMED = {"text_delta": "text", "input_json_delta": "partial_json", "thinking_delta": "thinking"}
SIGNED_DELTAS = frozenset({"thinking_delta", "reasoning"})


class VendorStreamError(ValueError):
    """The vendor's stream broke its own format: the vendor's fault, not the client's."""


@dataclass(frozen=True)
class Segment:
    """One run of streamed text: a content block's text, tool input or thinking."""

    index: int
    kind: str

    @property
    def signed(self) -> bool:
        return self.kind in SIGNED_DELTAS


class CompletionStream:
    """A streamed completion passing through: every event that carries model output is checked, usage collected.

    Pieces of text, tool input and thinking go through one `StreamScanner` per stream, which holds back
    only what could still become a match; any other event's strings are checked whole. Before any other
    event leaves, the segment being held is released, so events keep their order.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.scanner = StreamScanner(policy)
        self.usage = Usage()
        self.text: list[str] = []
        self.segment: Segment | None = None
        self.whole = Scan(text="")  # what the rules found in events checked whole
        self.output_chars = 0  # of model output seen, for an estimate when the stream ends before its usage
        self.usage_final = False

    @property
    def blocked(self) -> bool:
        return self.scanner.blocked or self.whole.action == "block"

    @property
    def scan(self) -> Scan:
        total = Scan(text="")
        total.merge(self.scanner.total)
        total.merge(self.whole)
        return total

    def feed(self, data: bytes) -> bytes:
        raise NotImplementedError

    def ping(self) -> bytes:
        """What tells the client the stream is alive during a silence (nothing, where the format has no ping)."""
        return b""

    def finish(self) -> bytes:
        """Whatever is still held at the end of the stream."""
        return self._flush()

    def settled_usage(self, request_bytes: int) -> tuple[Usage, bool]:
        """The usage to bill, and whether it is an estimate: a stream that ended before the vendor's usage
        arrived (the client left, a timeout) is billed on what was seen, about four characters a token."""
        if self.usage_final:
            return self.usage, False
        return Usage(
            input_tokens=self.usage.input_tokens or math.ceil(request_bytes / 4),
            output_tokens=max(self.usage.output_tokens, math.ceil(self.output_chars / 4)),
        ), True

    def block_message(self) -> str:
        # Claude Code recognises these words as a content filter's verdict: it stops instead of retrying the
        # request without streaming (which would be forwarded and billed again).
        rules = ", ".join(self.scan.blocking_rules)
        return f"Output blocked by content filtering policy (aigw rule {rules})."

    def vendor_error(self, message: str) -> bytes:
        """The in-stream error that ends a stream the vendor broke, in this stream's format."""
        raise NotImplementedError

    def _piece(self, segment: Segment, text: str) -> bytes:
        """A piece of a segment: what of it may leave now (after the previous segment, if this is a new one)."""
        out = b"" if segment == self.segment else self._flush()
        if self.blocked:
            return b""
        self.segment = segment
        self.output_chars += len(text)
        released = self.scanner.feed(text, signed=segment.signed)
        self.text.append(released)
        return out + (self._delta(segment, released) if released and not self.blocked else b"")

    def _flush(self) -> bytes:
        segment, self.segment = self.segment, None
        if segment is None:
            return b""
        rest = self.scanner.finish()
        self.text.append(rest)
        return self._delta(segment, rest) if rest and not self.blocked else b""

    def _whole(self, event: Any) -> Any:
        """An event's strings checked whole (after any held segment): the event to send on, redacted if need be."""
        checked, scan, passed = check_body(self.policy, event, "completion")
        self.whole.merge(scan)
        self.text.extend(passed)
        return checked

    def _delta(self, segment: Segment, text: str) -> bytes:
        """A piece of a segment in this stream's format."""
        raise NotImplementedError

    def _messages_event(self, inner: dict[str, Any], original: bytes) -> bytes:
        """One Anthropic Messages streaming event (Bedrock InvokeModel streams and vendor SSE share
        them): note usage, check its output; returns what to send on."""
        kind = inner.get("type")
        delta = inner.get("delta")
        if kind == "content_block_delta" and isinstance(delta, dict) and delta.get("type") in MESSAGES_STREAMED:
            text = delta.get(MESSAGES_STREAMED[delta["type"]])
            if isinstance(text, str):
                return self._piece(Segment(_index(inner.get("index")), delta["type"]), text)
        out = self._flush()
        if self.blocked:
            return out
        if kind == "message_start":
            usage = (inner.get("message") or {}).get("usage") or {}
            self.usage.update(usage.get("input_tokens"), usage.get("output_tokens"))
        elif kind == "message_delta":
            self.usage.update(output_tokens=(inner.get("usage") or {}).get("output_tokens"))
            self.usage_final = True
        checked = self._whole(inner)
        if self.blocked:
            return out
        return out + (original if checked is inner else self._wrap(checked))

    def _wrap(self, inner: dict[str, Any]) -> bytes:
        """An Anthropic Messages streaming event, framed as this stream frames it."""
        raise NotImplementedError

    def _messages_delta(self, segment: Segment, text: str) -> bytes:
        field = MESSAGES_STREAMED[segment.kind]
        return self._wrap(
            {"type": "content_block_delta", "index": segment.index, "delta": {"type": segment.kind, field: text}}
        )


class _EventStreamCompletion(CompletionStream):
    """Bedrock's binary event stream; a block ends it with an exception event clients raise."""

    def __init__(self, policy: Policy) -> None:
        super().__init__(policy)
        self.decoder = eventstream.Decoder()

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        try:
            for event in self.decoder.feed(data):
                if self.blocked:
                    break
                out += self._event(event)
        except (ValueError, KeyError, TypeError, eventstream.DecodeError) as error:
            raise VendorStreamError(f"the vendor's event stream is malformed ({type(error).__name__})") from error
        if self.blocked:
            out += self._blocked_end()
        return bytes(out)

    def _blocked_end(self) -> bytes:
        """What ends a stream the policy blocked."""
        error = error_body("completion_blocked", self.block_message())
        return eventstream.exception("validationException", json.dumps(error).encode())

    def _event(self, event: eventstream.Event) -> bytes:
        raise NotImplementedError

    def vendor_error(self, message: str) -> bytes:
        return eventstream.exception("modelStreamErrorException", json.dumps({"message": message}).encode())

    def _other(self, event: eventstream.Event) -> bytes:
        """An event this format does not stream text in (exceptions, unknown kinds): its strings checked whole."""
        out = self._flush()
        try:
            body = json.loads(event.payload) if event.payload else None
        except (ValueError, UnicodeDecodeError):
            body = event.payload.decode(errors="replace")
        checked = self._whole(body)
        if self.blocked:
            return out
        payload = event.payload if checked is body else json.dumps(checked).encode()
        return out + eventstream.encode(event.headers, payload)


class InvokeStream(_EventStreamCompletion):
    """InvokeModelWithResponseStream: `chunk` events carry base64 JSON in the model's own format
    (Anthropic Messages streaming events)."""

    def _event(self, event: eventstream.Event) -> bytes:
        if event.event_type != "chunk" or event.message_type != "event":
            return self._other(event)
        inner = json.loads(base64.b64decode(json.loads(event.payload)["bytes"], validate=True))
        if not isinstance(inner, dict):
            raise VendorStreamError("a chunk is not a JSON object")
        metrics = inner.get("amazon-bedrock-invocationMetrics")
        if isinstance(metrics, dict):
            self.usage.update(metrics.get("inputTokenCount"), metrics.get("outputTokenCount"))
            self.usage_final = True
        return self._messages_event(inner, self._unchanged(event, inner))

    def _unchanged(self, event: eventstream.Event, _inner: dict[str, Any]) -> bytes:
        """A chunk the policy left as it was, as it leaves."""
        return eventstream.encode(event.headers, event.payload)

    def _wrap(self, inner: dict[str, Any]) -> bytes:
        payload = json.dumps({"bytes": base64.b64encode(json.dumps(inner).encode()).decode()}).encode()
        return eventstream.event("chunk", payload)

    def _delta(self, segment: Segment, text: str) -> bytes:
        return self._messages_delta(segment, text)


class ConverseStream(_EventStreamCompletion):
    """ConverseStream: text, tool input and reasoning arrive as `contentBlockDelta` pieces; usage in `metadata`."""

    def _event(self, event: eventstream.Event) -> bytes:
        kind = event.event_type
        if event.message_type != "event":
            return self._other(event)
        body = json.loads(event.payload)
        if not isinstance(body, dict):
            raise VendorStreamError("an event is not a JSON object")
        if kind == "contentBlockDelta":
            index, delta = _index(body.get("contentBlockIndex")), body.get("delta") or {}
            for segment_kind, text in (
                ("text", delta.get("text")),
                ("toolUse", (delta.get("toolUse") or {}).get("input")),
                ("reasoning", (delta.get("reasoningContent") or {}).get("text")),
            ):
                if isinstance(text, str):
                    return self._piece(Segment(index, segment_kind), text)
        if kind == "metadata":
            usage = body.get("usage") or {}
            self.usage.update(usage.get("inputTokens"), usage.get("outputTokens"))
            self.usage_final = True
        return self._other(event)

    def _delta(self, segment: Segment, text: str) -> bytes:
        delta: dict[str, Any] = {"text": text}
        if segment.kind == "toolUse":
            delta = {"toolUse": {"input": text}}
        elif segment.kind == "reasoning":
            delta = {"reasoningContent": {"text": text}}
        body = {"contentBlockIndex": segment.index, "delta": delta}
        return eventstream.event("contentBlockDelta", json.dumps(body).encode())


class MessagesEventStream(InvokeStream):
    """InvokeModelWithResponseStream re-emitted as the Anthropic Messages API streams: server-sent events, the
    requested model's name in `message_start` (not the team's profile ARN), Bedrock's exceptions as `error`
    events, and a `ping` for every silence the forwarder sees."""

    def __init__(self, policy: Policy, model: str | None) -> None:
        super().__init__(policy)
        self.model = model

    def ping(self) -> bytes:
        return messages_api.PING

    def vendor_error(self, message: str) -> bytes:
        return messages_api.sse("error", error_body("api_error", message))

    def _blocked_end(self) -> bytes:
        return messages_api.sse("error", error_body("invalid_request_error", self.block_message(), policy_denial=True))

    def _unchanged(self, _event: eventstream.Event, inner: dict[str, Any]) -> bytes:
        return self._wrap(inner)

    def _wrap(self, inner: dict[str, Any]) -> bytes:
        event = {key: value for key, value in inner.items() if key != "amazon-bedrock-invocationMetrics"}
        message = event.get("message")
        if event.get("type") == "message_start" and isinstance(message, dict) and self.model:
            event["message"] = {**message, "model": self.model}
        return messages_api.sse(str(event.get("type")), event)

    def _other(self, event: eventstream.Event) -> bytes:
        """An exception becomes an `error` event (its strings checked first); an event type the Messages API
        has no counterpart for cannot be said in it, and is left out."""
        out = self._flush()
        if event.message_type != "exception":
            return out
        try:
            body = json.loads(event.payload) if event.payload else None
        except (ValueError, UnicodeDecodeError):
            body = {"message": event.payload.decode(errors="replace")}
        checked = self._whole(body)
        if self.blocked:
            return out
        return out + messages_api.sse("error", messages_api.stream_error(event.headers.get(":exception-type"), checked))


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
            out += messages_api.sse(
                "error", error_body("invalid_request_error", self.block_message(), policy_denial=True)
            )
        return bytes(out)

    def vendor_error(self, message: str) -> bytes:
        return messages_api.sse("error", error_body("api_error", message))

    def _event(self, raw: bytes) -> bytes:
        data = b"".join(line[5:].strip() for line in raw.split(b"\n") if line.startswith(b"data:"))
        try:
            inner = json.loads(data) if data else None
        except (ValueError, UnicodeDecodeError) as error:
            raise VendorStreamError("an event's data is not JSON") from error
        if isinstance(inner, dict):
            return self._messages_event(inner, raw)
        out = self._flush()
        checked = self._whole(inner)
        return out if self.blocked or checked is not inner else out + raw

    def _wrap(self, inner: dict[str, Any]) -> bytes:
        return messages_api.sse(str(inner.get("type")), inner)

    def _delta(self, segment: Segment, text: str) -> bytes:
        return self._messages_delta(segment, text)


def _index(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
