"""Prompts as an attacker writes them: every string, key and number read, disguises taken off, documents
decoded, and nothing exempt because of the name it sits under. Each case runs against a running gateway."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from local.harness import prompt
from tests.gateway.conftest import AWS_KEY, GatewayFactory, RunningGateway

pytestmark = pytest.mark.usefixtures("reset_vendor")
CARD = "4000001234567899"  # passes the Luhn check, not a published test number


@pytest.fixture(scope="module")
def stack(make_stack: GatewayFactory) -> RunningGateway:
    return make_stack()


def content(*blocks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64,
            "messages": [{"role": "user", "content": list(blocks)}], **extra}  # fmt: skip


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def document(data: str, media_type: str = "text/plain") -> dict[str, Any]:
    return {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}}


def spaced(card: str, separator: str) -> str:
    return separator.join(card[i : i + 4] for i in range(0, len(card), 4))


FULL_WIDTH = {ord("0") + d: 0xFF10 + d for d in range(10)}
ARABIC_INDIC = {ord("0") + d: 0x0660 + d for d in range(10)}
CARDS = {
    "nbsp": spaced(CARD, "\u00a0"),
    "thin space": spaced(CARD, "\u2009"),
    "tabs": spaced(CARD, "\t"),
    "dots": spaced(CARD, "."),
    "full-width digits": CARD.translate(FULL_WIDTH),
    "arabic-indic digits": spaced(CARD, " ").translate(ARABIC_INDIC),
}


@pytest.mark.parametrize("disguise", sorted(CARDS))
def test_a_disguised_card_number_is_redacted(stack: RunningGateway, disguise: str) -> None:
    card = CARDS[disguise]
    response = stack.call(body=prompt(f"refund the card {card} today"))
    assert response.status_code == 200, response.text
    sent = json.loads(stack.vendor_last()["last"]["body"])["messages"][0]["content"]
    assert sent == "refund the card [REDACTED:card-number] today"
    assert stack.audit(response.headers["x-request-id"])["policy"]["prompt"]["matches"]["card-number"] == 1


BLOCKED = {
    "key with zero-width characters": prompt("deploy with AKIA\u200bZ7QX\u200dMP3V\ufeffBN2LKW4R"),
    "key behind an underscore": prompt(f"export AWS_KEY_{AWS_KEY}"),
    "lower-case PEM header": prompt("-----begin rsa private key-----\nMIIEow"),
    "key as an object key": content(text("see the map"), **{"metadata": {AWS_KEY: "prod"}}),
    "key in a text document": content(document(base64.b64encode(f"creds: {AWS_KEY}\n".encode()).decode())),
    "key split across two text blocks": content(text("the key is AKIAZ7QXMP"), text("3VBN2LKW4R, keep it")),
    "key as a role": {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 8,
        "messages": [{"role": AWS_KEY, "content": "hi"}],
    },
    "key as an image's data": content(
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": AWS_KEY}}
    ),
}


@pytest.mark.parametrize("attack", sorted(BLOCKED))
def test_a_hidden_key_is_blocked_before_the_vendor(stack: RunningGateway, attack: str) -> None:
    before = stack.vendor_last()["requests"]
    response = stack.call(body=BLOCKED[attack])
    assert (response.status_code, response.json()["error"]["type"]) == (400, "policy_blocked"), response.text
    assert response.json()["reason"] in ("aws-access-key-id", "private-key")
    assert stack.vendor_last()["requests"] == before


def test_a_card_as_a_json_number_is_redacted(stack: RunningGateway) -> None:
    body = content(text("charge it"))
    body["messages"].insert(
        0,
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "charge", "input": {"pan": int(CARD)}}],
        },
    )
    response = stack.call(body=body)
    assert response.status_code == 200, response.text
    sent = json.loads(stack.vendor_last()["last"]["body"])
    assert sent["messages"][0]["content"][0]["input"] == {"pan": "[REDACTED:card-number]"}


def test_a_text_document_is_redacted_inside_its_base64(stack: RunningGateway) -> None:
    response = stack.call(body=content(document(base64.b64encode(b"ssn: 536-22-8765\n").decode())))
    assert response.status_code == 200, response.text
    data = json.loads(stack.vendor_last()["last"]["body"])["messages"][0]["content"][0]["source"]["data"]
    assert base64.b64decode(data) == b"ssn: [REDACTED:us-ssn]\n"


def test_a_real_image_is_passed_unread(stack: RunningGateway) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8).decode()
    response = stack.call(
        body=content({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}})
    )
    assert response.status_code == 200, response.text
    assert json.loads(stack.vendor_last()["last"]["body"])["messages"][0]["content"][0]["source"]["data"] == png


def test_a_repeated_key_is_refused(stack: RunningGateway) -> None:
    """Parsers differ on which value wins: what was checked must be what the vendor reads."""
    body = b'{"anthropic_version": "bedrock-2023-05-31", "max_tokens": 8, "messages": [{"role": "user",' \
           b' "content": "hello", "content": "' + AWS_KEY.encode() + b'"}]}'  # fmt: skip
    response = stack.call(body=body)
    assert (response.status_code, response.json()["error"]["type"]) == (400, "malformed_body")
    assert "'content' appears twice" in response.json()["message"]


def test_signed_thinking_sent_back_is_never_edited(stack: RunningGateway) -> None:
    """The vendor checks a thinking block's signature: a match that would be redacted blocks instead."""
    thinking = {"type": "thinking", "thinking": "the SSN was 536-22-8765", "signature": "c2lnbmF0dXJl"}
    body = content(text("go on"))
    body["messages"].insert(0, {"role": "assistant", "content": [thinking, text("ok")]})
    response = stack.call(body=body)
    assert (response.status_code, response.json()["reason"]) == (400, "us-ssn")
