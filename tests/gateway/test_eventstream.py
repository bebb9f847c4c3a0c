"""Our event-stream encoder against botocore's decoder (which checks both CRCs)."""

from __future__ import annotations

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from gateway import eventstream


def test_botocore_decodes_what_we_encode() -> None:
    frames = eventstream.event("chunk", b'{"bytes":"e30="}') + eventstream.exception(
        "validationException", b'{"message":"no"}'
    )
    buffer = EventStreamBuffer()
    buffer.add_data(frames)
    first, second = list(buffer)
    assert first.headers == {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    assert first.payload == b'{"bytes":"e30="}'
    assert second.headers[":exception-type"] == "validationException"


def test_decoder_handles_frames_split_anywhere() -> None:
    frames = b"".join(eventstream.event("contentBlockDelta", f'{{"n":{i}}}'.encode()) for i in range(5))
    decoder = eventstream.Decoder()
    events = [event for i in range(len(frames)) for event in decoder.feed(frames[i : i + 1])]
    assert [e.payload for e in events] == [f'{{"n":{i}}}'.encode() for i in range(5)]
    assert {e.event_type for e in events} == {"contentBlockDelta"}


def test_a_corrupted_frame_is_refused() -> None:
    frame = bytearray(eventstream.event("chunk", b"{}"))
    frame[-6] ^= 0xFF
    with pytest.raises(ChecksumMismatch):
        list(eventstream.Decoder().feed(bytes(frame)))
