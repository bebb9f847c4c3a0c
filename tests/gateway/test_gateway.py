"""The gateway as running processes: a real uvicorn gateway, the fake vendor checking SigV4, the issuer."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import time
from pathlib import Path

import httpx
import pytest

from gateway import eventstream
from local.harness import MODEL, prompt, wait_until
from local.token_issuer import KeyFolder
from tests.gateway.conftest import GatewayFactory, RunningGateway, read_jsonl

CARD = "4000 0012 3456 7899"
pytestmark = pytest.mark.usefixtures("reset_vendor")


@pytest.fixture(scope="module")
def stack(make_stack: GatewayFactory) -> RunningGateway:
    return make_stack(auth__jwks_min_refresh_seconds=1)


def streamed_text(response: httpx.Response) -> tuple[str, list[eventstream.Event]]:
    """The completion text a client would assemble from a Bedrock event stream, and all its events."""
    events = list(eventstream.Decoder().feed(response.content))
    text = []
    for event in events:
        if event.event_type == "chunk":
            inner = json.loads(base64.b64decode(json.loads(event.payload)["bytes"]))
            if inner.get("type") == "content_block_delta":
                text.append(inner["delta"]["text"])
        elif event.event_type == "contentBlockDelta":
            text.append(json.loads(event.payload)["delta"]["text"])
    return "".join(text), events


def test_healthz_needs_no_token(stack: RunningGateway) -> None:
    response = httpx.get(stack.gateway.url + "/healthz")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["breaker"], body["audit"]["ok"]) == ("ok", "closed", True)


# -- authentication ------------------------------------------------------------------------------


def auth_cases(keys: KeyFolder) -> dict[str, str | None]:
    stranger = KeyFolder(keys.folder.parent / "stranger-keys")
    stranger.add("k1")  # same kid, different key: the signature cannot verify
    return {
        "missing_token": None,
        "malformed_token": "not-a-jwt",
        "token_expired": keys.token("k1", issued_ago=9 * 3600, lifetime=8 * 3600),
        "wrong_issuer": keys.token("k1", issuer="https://evil.example/"),
        "wrong_audience": keys.token("k1", audience="another-app"),
        "bad_signature": stranger.token("k1"),
        "unknown_signing_key": keys.token("k1").replace(keys.token("k1").split(".")[0], _header("nope")),
        "missing_claim": keys.token("k1", team=None),
    }


def _header(kid: str) -> str:
    return (
        base64.urlsafe_b64encode(json.dumps({"alg": "RS256", "typ": "JWT", "kid": kid}).encode()).rstrip(b"=").decode()
    )


def test_each_auth_failure_has_its_own_reason(stack: RunningGateway) -> None:
    before = stack.vendor_last()["requests"]
    seen = {}
    for expected, token in auth_cases(stack.keys).items():
        response = stack.call(token=token)
        assert response.status_code == 401, (expected, response.text)
        body = response.json()
        assert body["error"]["type"] == "unauthorized" and body["reason"] == expected, body
        assert f'error_description="{expected}"' in response.headers["www-authenticate"]
        record = stack.audit(response.headers["x-request-id"])
        assert (record["status"], record["outcome"], record["reason"]) == (401, "unauthorized", expected)
        seen[expected] = body["message"]
    assert len(set(seen.values())) == len(seen)  # distinct messages too
    assert stack.vendor_last()["requests"] == before  # nothing reached the vendor


def test_expired_token_says_when_and_how_to_refresh(stack: RunningGateway) -> None:
    response = stack.call(token=stack.keys.token("k1", issued_ago=9 * 3600, lifetime=8 * 3600))
    message = response.json()["message"]
    assert message.startswith("Your token expired at ")
    assert stack.settings.auth.refresh_hint in message


def test_leeway_accepts_a_token_just_past_expiry(stack: RunningGateway) -> None:
    token = stack.keys.token("k1", issued_ago=3600 + 30, lifetime=3600)  # expired 30 s ago; leeway is 60 s
    assert stack.call(token=token).status_code == 200


def test_a_new_signing_key_is_picked_up_on_first_sight(stack: RunningGateway) -> None:
    stack.keys.add("k2")
    # The JWKS is fetched again at most once per jwks_min_refresh_seconds (1 s here): let the last
    # fetch (an earlier test's unknown kid) age past it.
    time.sleep(stack.settings.auth.jwks_min_refresh_seconds)
    response = stack.call(token=stack.keys.token("k2", user="rotated@example.com"))
    assert response.status_code == 200, response.text
    assert stack.audit(response.headers["x-request-id"])["user"] == "rotated@example.com"


# -- forwarding ----------------------------------------------------------------------------------


def test_invoke_is_signed_forwarded_and_audited(stack: RunningGateway) -> None:
    response = stack.call("invoke", prompt("Say hello."), headers={"x-aigw-repository": "mobile-app"})
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == "Hello from the fake vendor."
    last = stack.vendor_last()["last"]
    # The vendor verified the SigV4 signature; the client's JWT and repository header stayed behind.
    assert last["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
    assert "x-aigw-repository" not in last["headers"]
    record = stack.audit(response.headers["x-request-id"])
    assert record["user"] == "dev@example.com" and record["team"] == "payments"
    assert record["repository"] == "mobile-app" and record["model"] == MODEL
    assert record["status"] == 200 and record["outcome"] == "ok"
    assert record["input_tokens"] > 0 and record["output_tokens"] == 4
    expected_cost = record["input_tokens"] / 1000 * 0.0033 + record["output_tokens"] / 1000 * 0.0165
    assert record["estimated_cost_usd"] == pytest.approx(expected_cost, abs=1e-6)  # rounded to 6 places
    assert record["prompt"] == "Say hello." and record["completion"] == "Hello from the fake vendor."


def test_converse(stack: RunningGateway) -> None:
    body = {"messages": [{"role": "user", "content": [{"text": "Say hello."}]}], "system": [{"text": "Be brief."}]}
    response = stack.call("converse", body)
    assert response.status_code == 200
    assert response.json()["output"]["message"]["content"][0]["text"] == "Hello from the fake vendor."
    record = stack.audit(response.headers["x-request-id"])
    assert record["prompt"] == "Say hello.\nBe brief." and record["output_tokens"] == 4


@pytest.mark.parametrize("action", ["invoke-with-response-stream", "converse-stream"])
def test_streams_pass_through(stack: RunningGateway, action: str) -> None:
    response = stack.call(action, prompt("Say hello."))
    assert response.status_code == 200
    assert response.headers["content-type"] == eventstream.CONTENT_TYPE
    text, _ = streamed_text(response)
    assert text == "Hello from the fake vendor."
    record = stack.audit(response.headers["x-request-id"])
    assert record["stream"] is True and record["completion"] == text
    assert record["input_tokens"] > 0 and record["output_tokens"] == 4


def test_unknown_path_is_404_and_audited(stack: RunningGateway) -> None:
    response = stack.call("/v1/complete")
    assert response.status_code == 404
    assert stack.audit(response.headers["x-request-id"])["outcome"] == "not_found"


def test_vendor_errors_pass_through(stack: RunningGateway) -> None:
    stack.vendor_control(fail_status=429)
    response = stack.call()
    assert response.status_code == 429
    record = stack.audit(response.headers["x-request-id"])
    assert (record["status"], record["outcome"]) == (429, "vendor_error")


def test_a_wrong_signature_is_refused_by_the_vendor(make_stack: GatewayFactory) -> None:
    wrong = make_stack(env={"AWS_SECRET_ACCESS_KEY": "not-the-right-secret"})
    response = wrong.call()
    assert response.status_code == 403
    assert "signature does not match" in response.json()["message"]


# -- content policy ------------------------------------------------------------------------------


def test_prompt_block_never_reaches_the_vendor(stack: RunningGateway) -> None:
    before = stack.vendor_last()["requests"]
    response = stack.call(body=prompt("deploy with AKIAZ7QXMP3VBN2LKW4R please"))
    assert response.status_code == 400
    body = response.json()
    assert (body["error"]["type"], body["reason"]) == ("policy_blocked", "aws-access-key-id")
    assert stack.vendor_last()["requests"] == before
    record = stack.audit(response.headers["x-request-id"])
    assert record["policy"] == {"prompt": {"action": "block", "matches": {"aws-access-key-id": 1}}}


def test_prompt_redaction_is_what_the_vendor_sees(stack: RunningGateway) -> None:
    response = stack.call(body=prompt(f"refund card {CARD} for alice@bank.co.uk", system="You are helpful."))
    assert response.status_code == 200
    sent = json.loads(stack.vendor_last()["last"]["body"])
    assert sent["messages"][0]["content"] == "refund card [REDACTED:card-number] for alice@bank.co.uk"
    assert sent["system"] == "You are helpful." and sent["anthropic_version"] == "bedrock-2023-05-31"
    record = stack.audit(response.headers["x-request-id"])
    assert CARD not in json.dumps(record)
    assert record["policy"]["prompt"] == {"action": "redact", "matches": {"card-number": 1, "email-address": 1}}


def test_log_rules_count_and_change_nothing(stack: RunningGateway) -> None:
    response = stack.call(body=prompt("mail alice@bank.co.uk"))
    assert response.status_code == 200
    assert json.loads(stack.vendor_last()["last"]["body"])["messages"][0]["content"] == "mail alice@bank.co.uk"
    assert stack.audit(response.headers["x-request-id"])["policy"]["prompt"]["action"] == "log"


@pytest.mark.parametrize("action", ["invoke-with-response-stream", "converse-stream"])
def test_streamed_completion_is_redacted_across_chunks(stack: RunningGateway, action: str) -> None:
    completion = f"The card on file is {CARD}, ending 7899. " + "More words follow here. " * 40
    stack.vendor_control(completion=completion, chunk_chars=3)
    response = stack.call(action)
    text, _ = streamed_text(response)
    assert text == completion.replace(CARD, "[REDACTED:card-number]")
    record = stack.audit(response.headers["x-request-id"])
    assert record["completion"] == text
    assert record["policy"]["completion"] == {"action": "redact", "matches": {"card-number": 1}}


def test_streamed_completion_block_ends_the_stream_with_an_exception(stack: RunningGateway) -> None:
    completion = (
        "Here is the deploy key you asked for. " * 30 + "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n"
    )
    stack.vendor_control(completion=completion, chunk_chars=10)
    response = stack.call("invoke-with-response-stream")
    text, events = streamed_text(response)
    assert "PRIVATE KEY" not in text and text.startswith("Here is the deploy key")
    assert events[-1].message_type == "exception"
    assert events[-1].headers[":exception-type"] == "validationException"
    assert "private-key" in json.loads(events[-1].payload)["message"]
    record = stack.audit(response.headers["x-request-id"])
    assert (record["status"], record["outcome"], record["reason"]) == (200, "completion_blocked", "private-key")


def test_buffered_completion_block_is_refused(stack: RunningGateway) -> None:
    stack.vendor_control(completion="token: ghp_" + "A1b2C3d4E5" * 3 + "F6g7H8")
    response = stack.call("converse", {"messages": [{"role": "user", "content": [{"text": "hi"}]}]})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "completion_blocked"
    assert stack.audit(response.headers["x-request-id"])["completion"] == ""


def test_repository_scope(stack: RunningGateway) -> None:
    before = stack.vendor_last()["requests"]
    response = stack.call(headers={"x-aigw-repository": "payments-core"})
    assert response.status_code == 400
    body = response.json()
    assert (body["error"]["type"], body["reason"]) == ("repository_blocked", "pci-scope")
    assert "pci-scope" in body["message"]
    assert stack.vendor_last()["requests"] == before


def test_size_limit_is_checked_before_any_rule(stack: RunningGateway) -> None:
    before = stack.vendor_last()["requests"]
    too_big = json.dumps(prompt("x" * (stack.settings.policy.max_request_bytes + 1))).encode()
    response = stack.call(body=too_big)
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "too_large"
    assert stack.vendor_last()["requests"] == before
    assert stack.audit(response.headers["x-request-id"])["policy"] == {}


def test_malformed_json_is_400(stack: RunningGateway) -> None:
    response = stack.call(body=b"{not json")
    assert response.status_code == 400 and response.json()["error"]["type"] == "malformed_body"


def test_metrics_line_is_embedded_metric_format(stack: RunningGateway) -> None:
    response = stack.call()
    line = stack.metrics(response.headers["x-request-id"])
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "aigw"
    assert ["Environment", "Team"] in directive["Dimensions"]
    assert ["Environment", "Model"] in directive["Dimensions"] and line["Model"] == MODEL
    names = {m["Name"] for m in directive["Metrics"]}
    assert {
        "Requests",
        "Rejections",
        "InputTokens",
        "OutputTokens",
        "EstimatedCostUsd",
        "Latency",
        "BreakerOpen",
    } <= names
    assert all(name in line for name in names)  # every declared metric has its value
    assert (line["Team"], line["Outcome"], line["Requests"], line["Rejections"]) == ("payments", "ok", 1, 0)
    assert line["OutputTokens"] == 4 and line["EstimatedCostUsd"] > 0


# -- timeouts, breaker, concurrency --------------------------------------------------------------


def test_slow_vendor_times_out_opens_the_breaker_and_recovers(make_stack: GatewayFactory) -> None:
    stack = make_stack(
        upstream__first_byte_timeout_seconds=1,
        upstream__breaker__failures=2,
        upstream__breaker__cooldown_seconds=2,
    )
    stack.vendor_control(delay_seconds=3)
    sent = stack.vendor_last()["requests"]
    for _ in range(2):
        response = stack.call()
        assert response.status_code == 504
        body = response.json()
        assert body["error"]["type"] == "upstream_timeout" and "within 1 s" in body["message"]
        latency = stack.audit(response.headers["x-request-id"])["latency_ms"]
        assert 1000 <= latency < 1500  # the configured timeout, measured inside the gateway
    # Both timed-out requests reached the vendor (a busy machine may take a moment to show it): count from there.
    wait_until(lambda: stack.vendor_last()["requests"] >= sent + 2, "the vendor seeing both requests", 10)
    before = stack.vendor_last()["requests"]
    refused = [stack.call() for _ in range(5)]
    # Still within the cooldown: the audit records are read only after this, as they may take a moment on a busy
    # machine.
    assert httpx.get(stack.gateway.url + "/healthz").json()["breaker"] == "open"
    assert stack.vendor_last()["requests"] == before  # an open breaker sends nothing on
    for response in refused:
        assert response.status_code == 503
        assert response.json()["error"]["type"] == "vendor_degraded"
        assert int(response.headers["retry-after"]) >= 1
        assert stack.audit(response.headers["x-request-id"])["latency_ms"] < 50  # fails fast

    stack.vendor_control(delay_seconds=0)

    def half_open() -> bool:
        return bool(httpx.get(stack.gateway.url + "/healthz").json()["breaker"] == "half_open")

    wait_until(half_open, "the breaker's cooldown", stack.settings.upstream.breaker.cooldown_seconds + 5)
    probe = stack.call()
    assert probe.status_code == 200
    assert stack.call().status_code == 200
    assert httpx.get(stack.gateway.url + "/healthz").json()["breaker"] == "closed"


def test_excess_requests_get_503_at_once_instead_of_queueing(make_stack: GatewayFactory) -> None:
    stack = make_stack(upstream__max_concurrency=2)
    stack.vendor_control(delay_seconds=1)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            headers = {"authorization": f"Bearer {stack.token()}", "content-type": "application/json"}
            url = f"{stack.gateway.url}/model/{MODEL}/invoke"
            return await asyncio.gather(*(client.post(url, json=prompt("hi"), headers=headers) for _ in range(6)))

    responses = asyncio.run(burst())
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 503, 503, 503, 503]
    busy = [r for r in responses if r.status_code == 503]
    assert all(r.json()["error"]["type"] == "busy" for r in busy)
    assert all(stack.audit(r.headers["x-request-id"])["latency_ms"] < 500 for r in busy)


def test_unwritable_audit_file_shows_on_healthz_and_loses_nothing(make_stack: GatewayFactory, tmp_path: Path) -> None:
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the audit folder should be")
    broken = make_stack(audit__path=str(blocker / "audit.jsonl"))
    response = broken.call()
    assert response.status_code == 200  # requests are still served
    deadline = time.monotonic() + 10
    while (health := httpx.get(broken.gateway.url + "/healthz")).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert health.status_code == 503
    assert health.json()["audit"]["ok"] is False and "blocked/audit.jsonl" in health.json()["audit"]["error"]

    blocker.unlink()  # the disk recovers: the queued record is written, nothing was dropped
    assert broken.audit(response.headers["x-request-id"])["status"] == 200
    assert httpx.get(broken.gateway.url + "/healthz").status_code == 200
    assert len(read_jsonl(broken.settings.audit.path)) == 1


def test_a_client_leaving_mid_stream_frees_its_slot_and_is_recorded(stack: RunningGateway) -> None:
    stack.vendor_control(completion="word " * 200, chunk_chars=5, chunk_delay_seconds=0.05)
    headers = {"authorization": f"Bearer {stack.token()}", "content-type": "application/json"}
    url = f"{stack.gateway.url}/model/{MODEL}/invoke-with-response-stream"
    with httpx.stream("POST", url, json=prompt("long answer please"), headers=headers, timeout=30) as response:
        request_id = response.headers["x-request-id"]
        seen = b""
        for piece in response.iter_raw():  # a few words arrive, then the client goes away
            seen += piece
            if seen.count(b":event-type") >= 8:
                break
    record = stack.audit(request_id)
    assert (record["status"], record["outcome"]) == (200, "client_disconnected")
    assert len(record["completion"]) < len("word " * 200)  # what was released before it left
    # Billed on what the vendor produced until then (the usage it sends at the end never came), not 1 token.
    assert record["usage_estimated"] is True
    assert record["output_tokens"] >= math.ceil(len(record["completion"]) / 4) > 1
    health = httpx.get(stack.gateway.url + "/healthz").json()
    assert health["in_flight"] == 0
