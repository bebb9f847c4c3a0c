"""Who may call, what the audit trail keeps, and that every answer leaves a record: running processes."""

from __future__ import annotations

import base64
import hashlib
import json

import httpx
import pytest

from local.harness import MODEL, prompt
from tests.gateway.conftest import AWS_KEY, GatewayFactory, RunningGateway

pytestmark = pytest.mark.usefixtures("reset_vendor")
FULL_WIDTH = "".join(chr(ord(c) + 0xFEE0) for c in "payments")


@pytest.fixture(scope="module")
def stack(make_stack: GatewayFactory) -> RunningGateway:
    return make_stack(policy__require_repository=["platform"])


def test_a_blocked_prompt_is_recorded_redacted_with_the_hash_of_what_was_sent(stack: RunningGateway) -> None:
    body = json.dumps(prompt(f"deploy with {AWS_KEY} now")).encode()
    response = stack.call(body=body)
    assert response.status_code == 400
    record = stack.audit(response.headers["x-request-id"])
    assert AWS_KEY not in json.dumps(record)
    assert record["prompt"] == "deploy with [REDACTED:aws-access-key-id] now"
    assert record["blocked_body_sha256"] == hashlib.sha256(body).hexdigest()
    assert record["policy"]["prompt"]["matches"] == {"aws-access-key-id": 1}


@pytest.mark.parametrize(
    ("method", "path", "with_token", "status"),
    [
        ("OPTIONS", f"/model/{MODEL}/invoke", False, 401),
        ("PROPFIND", "/anything", True, 404),
        ("POST", "/healthz", True, 404),
        ("GET", f"/model/{MODEL}/invoke", True, 404),
    ],
)
def test_every_answer_leaves_one_audit_record(
    stack: RunningGateway, method: str, path: str, with_token: bool, status: int
) -> None:
    headers = {"authorization": f"Bearer {stack.token()}"} if with_token else {}
    response = httpx.request(method, stack.gateway.url + path, headers=headers)
    assert response.status_code == status
    record = stack.audit(response.headers["x-request-id"])
    assert (record["method"], record["path"], record["status"]) == (method, path, status)


@pytest.mark.parametrize("claim", ["payments", " Payments ", "PAYMENTS", FULL_WIDTH])
def test_a_team_claim_is_its_configured_team_however_written(stack: RunningGateway, claim: str) -> None:
    response = stack.call(token=stack.keys.token("k1", team=claim))
    assert response.status_code == 200, response.text
    assert stack.audit(response.headers["x-request-id"])["team"] == "payments"


@pytest.mark.parametrize("claim", ["finance", "p\u0430yments"])  # the second with a Cyrillic a
def test_a_team_that_is_not_configured_is_refused_by_name(stack: RunningGateway, claim: str) -> None:
    before = stack.vendor_last()["requests"]
    response = stack.call(token=stack.keys.token("k1", team=claim))
    assert (response.status_code, response.json()["error"]["type"]) == (403, "unknown_team")
    assert response.headers["x-amzn-errortype"] == "AccessDeniedException"
    assert repr(claim) in response.json()["message"]
    assert stack.vendor_last()["requests"] == before


def test_a_token_that_lives_too_long_is_refused(stack: RunningGateway) -> None:
    response = stack.call(token=stack.keys.token("k1", lifetime=30 * 86_400))
    assert (response.status_code, response.json()["reason"]) == (401, "token_lifetime_too_long")


def _unsigned(header: object) -> str:
    encoded = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    return f"{encoded}.eyJzdWIiOiJ4In0.c2ln"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("eyJ" + "A" * 20_000, "token_too_large"),
        (_unsigned({"alg": "RS256", "kid": ["k1"]}), "malformed_token"),
        (_unsigned(["not", "an", "object"]), "malformed_token"),
        ("%%%.%%%.%%%", "malformed_token"),
    ],
)
def test_malformed_tokens_get_401_with_a_reason(stack: RunningGateway, token: str, reason: str) -> None:
    response = stack.call(token=token)
    assert (response.status_code, response.json()["reason"]) == (401, reason), response.text


@pytest.mark.parametrize(
    "named",
    [
        "payments-core",
        "Fenwick/Payments-Core",
        "git@github.com:fenwick/payments-core.git",
        "https://github.com/FENWICK/card-vault/",
        "ssh://git@gitlab.example.io:2222/grp/sub/pan-tokenizer.git",
    ],
)
def test_a_repository_in_scope_is_refused_however_it_is_named(stack: RunningGateway, named: str) -> None:
    response = stack.call(headers={"x-aigw-repository": named})
    assert (response.status_code, response.json()["reason"]) == (400, "pci-scope"), response.text


def test_the_repository_is_recorded_in_one_form(stack: RunningGateway) -> None:
    response = stack.call(headers={"x-aigw-repository": "https://github.com/Fenwick/Mobile-App.git"})
    assert response.status_code == 200
    assert stack.audit(response.headers["x-request-id"])["repository"] == "fenwick/mobile-app"


def test_teams_that_must_name_their_repository(stack: RunningGateway) -> None:
    unnamed = stack.call(token=stack.keys.token("k1", team="platform"))
    assert (unnamed.status_code, unnamed.json()["error"]["type"]) == (400, "repository_required")
    named = stack.call(token=stack.keys.token("k1", team="platform"), headers={"x-aigw-repository": "org/tools"})
    assert named.status_code == 200
    assert stack.call(token=stack.keys.token("k1", team="mobile")).status_code == 200
