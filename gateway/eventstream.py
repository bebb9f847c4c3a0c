"""AWS event-stream framing (`application/vnd.amazon.eventstream`), as Bedrock's streaming APIs use it.

Decoding is botocore's (it checks both CRCs); botocore has no encoder, so `encode` writes the same
frame: total length, headers length, prelude CRC, headers, payload, message CRC (all big-endian).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from botocore.eventstream import EventStreamBuffer, ParserError

DecodeError = ParserError  # a frame whose lengths or CRCs are wrong

CONTENT_TYPE = "application/vnd.amazon.eventstream"
_STRING_HEADER = 7


@dataclass(frozen=True)
class Event:
    headers: dict[str, str]
    payload: bytes

    @property
    def event_type(self) -> str | None:
        return self.headers.get(":event-type")

    @property
    def message_type(self) -> str | None:
        return self.headers.get(":message-type")


def encode(headers: Mapping[str, str], payload: bytes) -> bytes:
    encoded_headers = b"".join(
        struct.pack(">B", len(name.encode()))
        + name.encode()
        + struct.pack(">BH", _STRING_HEADER, len(value.encode()))
        + value.encode()
        for name, value in headers.items()
    )
    total = 12 + len(encoded_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + encoded_headers + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(event_type: str, payload: bytes, content_type: str = "application/json") -> bytes:
    return encode({":event-type": event_type, ":content-type": content_type, ":message-type": "event"}, payload)


def exception(exception_type: str, payload: bytes) -> bytes:
    """An in-stream error, as Bedrock sends one (clients raise it as that exception)."""
    return encode(
        {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}, payload
    )


class Decoder:
    """Feed bytes as they arrive; get whole events out."""

    def __init__(self) -> None:
        self._buffer = EventStreamBuffer()

    def feed(self, data: bytes) -> Iterator[Event]:
        self._buffer.add_data(data)
        for message in self._buffer:
            headers = {name: value if isinstance(value, str) else str(value) for name, value in message.headers.items()}
            yield Event(headers=headers, payload=message.payload)
