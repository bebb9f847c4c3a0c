"""The upstream request as Bedrock sees it: aigw's own SigV4 signer against botocore's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.session import Session

from gateway.upstream import Signer

NOW = datetime(2026, 11, 30, 23, 59, 58, tzinfo=UTC)
BODY = b'{"anthropic_version":"bedrock-2023-05-31","max_tokens":8,"messages":[]}'


def botocore_authorization(url: str, headers: dict[str, str], credentials: Credentials, stamp: str) -> str:
    request = AWSRequest(method="POST", url=url, data=BODY, headers={**headers, "x-amz-date": stamp})
    if credentials.token:
        request.headers["x-amz-security-token"] = credentials.token
    auth = SigV4Auth(credentials, "bedrock", "eu-west-1")
    request.context["timestamp"] = stamp
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    signed = auth.signed_headers(auth.headers_to_sign(request))
    scope = f"{stamp[:8]}/eu-west-1/bedrock/aws4_request"
    return (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )


class FixedSession(Session):  # type: ignore[misc]
    def __init__(self, credentials: Credentials) -> None:
        super().__init__()
        self._fixed = credentials

    def get_credentials(self) -> Credentials:
        return self._fixed


@pytest.mark.parametrize("token", [None, "session-token/with+odd=chars"])
@pytest.mark.parametrize(
    "url",
    [
        "https://bedrock-runtime.eu-west-1.amazonaws.com/model/eu.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke",
        "https://vpce-1.bedrock-runtime.eu-west-1.vpce.amazonaws.com/model/arn%3Aaws%3Abedrock%3Aeu-west-1%3A"
        "123456789012%3Aapplication-inference-profile%2Fab12/converse-stream",
        "http://127.0.0.1:8081/model/x/invoke?b=2&a=1%202&c",
    ],
)
def test_signature_is_the_one_botocore_computes(url: str, token: str | None) -> None:
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    headers = {
        "content-type": "application/json",
        "accept": "application/vnd.amazon.eventstream",
        "anthropic-beta": "a,  b",  # inner spaces collapse in the canonical form
        "x-amzn-bedrock-service-tier": "priority",
        "host": url.split("/")[2],
    }
    signed = Signer("eu-west-1", FixedSession(credentials)).headers("POST", url, BODY, headers, now=NOW)
    stamp = "20261130T235958Z"
    assert signed["x-amz-date"] == stamp
    assert signed.get("x-amz-security-token") == token
    assert signed["authorization"] == botocore_authorization(url, headers, credentials, stamp)


def test_the_day_changes_the_key() -> None:
    credentials = Credentials("AKIDEXAMPLE", "secret")
    signer = Signer("eu-west-1", FixedSession(credentials))
    url = "https://bedrock-runtime.eu-west-1.amazonaws.com/model/m/invoke"
    late = signer.headers("POST", url, BODY, {"host": "h"}, now=NOW)["authorization"]
    early = signer.headers("POST", url, BODY, {"host": "h"}, now=NOW.replace(day=29))["authorization"]
    assert "20261130/eu-west-1" in late and "20261129/eu-west-1" in early
    assert late.rsplit("=", 1)[1] != early.rsplit("=", 1)[1]
