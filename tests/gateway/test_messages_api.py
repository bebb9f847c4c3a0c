"""The Anthropic Messages API on Bedrock, against a running gateway and the fake vendor (which refuses an
InvokeModel body that still carries `model` or `stream`, or lacks Bedrock's `anthropic_version`): the anthropic
SDK's own `Anthropic` client and Claude Code at ANTHROPIC_BASE_URL read what the gateway answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import MessageParam

from gateway import messages_api
from local.harness import MODEL, prompt
from tests.gateway.conftest import AWS_KEY, GatewayFactory, RunningGateway, bash, read_jsonl
from tests.gateway.test_real_clients import claude

pytestmark = pytest.mark.usefixtures("reset_vendor")
OPUS = "claude-opus-5-5"
OPUS_PROFILE = "eu.anthropic.claude-opus-5-5"
FOUNDATION_MODEL = "anthropic.claude-opus-5-5"
TOO_LONG = "Input is too long for requested model."
HELLO: list[MessageParam] = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def stack(make_stack: GatewayFactory) -> RunningGateway:
    return make_stack(upstream__stream_ping_seconds=0.3)


def sdk(stack: RunningGateway, token: str | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(auth_token=token or stack.token(), base_url=stack.gateway.url, max_retries=0)


def sent(stack: RunningGateway) -> dict[str, Any]:
    """What the vendor received last: its path and the body as JSON."""
    last = stack.vendor_last()["last"]
    return {"path": last["path"], "body": json.loads(last["body"])}


def post(stack: RunningGateway, path: str, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(
        stack.gateway.url + path,
        json=body,
        headers={"authorization": f"Bearer {stack.token()}", **headers},
        timeout=30,
    )


def events(raw: str) -> list[tuple[str, dict[str, Any]]]:
    """Server-sent events as (event, data)."""
    found = []
    for block in raw.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        found.append((lines["event"], json.loads(lines["data"])))
    return found


# -- translation ------------------------------------------------------------------------------------------


def test_a_message_is_invoked_on_bedrock_as_anthropics_bedrock_client_would(stack: RunningGateway) -> None:
    stack.vendor_control(completion="Hello through the Messages API.")
    answer = sdk(stack).messages.create(model=OPUS, max_tokens=64, messages=HELLO)
    assert [block.type for block in answer.content] == ["text"]
    assert answer.content[0].text == "Hello through the Messages API."  # type: ignore[union-attr]
    assert answer.model == OPUS  # not the team's profile ARN (it names the account)
    vendor = sent(stack)
    assert vendor["path"].endswith("/invoke")
    assert vendor["body"] == {"max_tokens": 64, "messages": HELLO, "anthropic_version": "bedrock-2023-05-31"}


def test_the_team_s_inference_profile_is_invoked_for_a_model_alias(stack: RunningGateway) -> None:
    response = post(stack, "/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": HELLO})
    assert response.status_code == 200, response.text
    record = stack.audit(response.headers["x-request-id"])
    assert record["api"] == "anthropic" and record["model"] == "claude-sonnet-4-5"
    profiles = stack.settings.vendor.team_profiles.get(record["team"], {})
    assert record["invoked"] == profiles.get(MODEL, MODEL)  # MODEL: Sonnet 4.5's EU profile
    assert record["profile_fallback"] is (MODEL not in profiles)


def test_beta_headers_move_into_the_body_and_the_beta_query_is_served(stack: RunningGateway) -> None:
    client = sdk(stack)
    client.beta.messages.create(
        model=OPUS,
        max_tokens=16,
        messages=[{"role": "user", "content": "Say hello."}],
        betas=["interleaved-thinking-2025-05-14", "context-management-2025-06-27"],
        extra_body={"anthropic_beta": ["interleaved-thinking-2025-05-14", "token-efficient-tools-2025-02-19"]},
    )
    vendor = sent(stack)
    assert vendor["body"]["anthropic_beta"] == [
        "interleaved-thinking-2025-05-14",
        "token-efficient-tools-2025-02-19",
        "context-management-2025-06-27",
    ]
    assert "model" not in vendor["body"] and "stream" not in vendor["body"]


def test_a_long_context_name_is_the_model_it_extends(stack: RunningGateway) -> None:
    response = post(stack, "/v1/messages", {"model": f"{OPUS}[1m]", "max_tokens": 8, "messages": HELLO})
    assert response.status_code == 200, response.text
    assert stack.audit(response.headers["x-request-id"])["model"] == OPUS


# -- streams ---------------------------------------------------------------------------------------------


def test_the_binary_event_stream_is_re_emitted_as_server_sent_events(stack: RunningGateway) -> None:
    stack.vendor_control(completion="Streamed as SSE.", script=[{"content": [bash("ls -la")]}])
    client = sdk(stack)
    with client.messages.stream(model=OPUS, max_tokens=64, messages=HELLO) as stream:
        tool = stream.get_final_message()
    assert tool.stop_reason == "tool_use" and tool.model == OPUS
    assert [(b.type, getattr(b, "input", None)) for b in tool.content] == [("tool_use", {"command": "ls -la"})]
    with client.messages.stream(model=OPUS, max_tokens=64, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Streamed as SSE." and final.usage.output_tokens > 0
    assert sent(stack)["path"].endswith("/invoke-with-response-stream")

    response = post(
        stack, "/v1/messages?beta=true", {"model": OPUS, "max_tokens": 8, "messages": HELLO, "stream": True}
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    kinds = [kind for kind, _ in events(response.text)]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert all(kind == data["type"] for kind, data in events(response.text))
    assert not any("amazon-bedrock-invocationMetrics" in data for _, data in events(response.text))
    record = stack.audit(response.headers["x-request-id"])
    assert record["stream"] is True and record["output_tokens"] > 0 and record["usage_estimated"] is False


def test_a_silent_stream_gets_pings_and_still_parses(stack: RunningGateway) -> None:
    stack.vendor_control(completion="Slow words", chunk_chars=5, chunk_delay_seconds=0.8)
    body = {"model": OPUS, "max_tokens": 8, "messages": HELLO, "stream": True}
    response = post(stack, "/v1/messages", body)
    kinds = [kind for kind, _ in events(response.text)]
    assert "ping" in kinds
    assert kinds.index("ping") < kinds.index("message_stop")
    with sdk(stack).messages.stream(model=OPUS, max_tokens=8, messages=HELLO) as stream:
        assert "".join(stream.text_stream) == "Slow words"


def test_a_secret_in_a_streamed_answer_ends_the_stream_with_a_policy_error(stack: RunningGateway) -> None:
    stack.vendor_control(script=[{"content": [bash(f"export AWS_ACCESS_KEY_ID={AWS_KEY}")]}])
    response = post(stack, "/v1/messages", {"model": OPUS, "max_tokens": 64, "messages": HELLO, "stream": True})
    assert AWS_KEY not in response.text
    kind, error = events(response.text)[-1]
    assert kind == "error" and error["error"]["details"] == {"error_code": "dlp_request_denied"}
    assert "Output blocked by content filtering policy (aigw rule aws-access-key-id)" in error["error"]["message"]
    assert stack.audit(response.headers["x-request-id"])["outcome"] == "completion_blocked"


def test_a_vendor_stream_that_breaks_off_ends_with_an_api_error(stack: RunningGateway) -> None:
    stack.vendor_control(script=[{"content": [{"type": "text", "text": "cut short"}], "garbage_after": 2}])
    response = post(stack, "/v1/messages", {"model": OPUS, "max_tokens": 64, "messages": HELLO, "stream": True})
    kind, error = events(response.text)[-1]
    assert kind == "error" and error["error"]["type"] == "api_error"
    assert stack.audit(response.headers["x-request-id"])["outcome"] == "upstream_malformed"


# -- errors ------------------------------------------------------------------------------------------------


def test_bedrock_errors_keep_their_wording_in_anthropics_envelope(stack: RunningGateway) -> None:
    stack.vendor_control(
        script=[
            {
                "error": {
                    "status": 400,
                    "type": "ValidationException",
                    "message": "Input is too long for requested model.",
                }
            },
            {
                "error": {
                    "status": 403,
                    "type": "AccessDeniedException",
                    "message": "User: arn:aws:sts::123456789012:assumed-role/ProxyFleet/i-0abc is not authorized",
                }
            },
            {"error": {"status": 429, "type": "ThrottlingException", "message": "Too many tokens, please wait."}},
        ]
    )
    client = sdk(stack)
    with pytest.raises(anthropic.BadRequestError) as too_long:
        client.messages.create(model=OPUS, max_tokens=8, messages=HELLO)
    assert too_long.value.body["error"] == {  # type: ignore[index]
        "type": "invalid_request_error",
        "message": f"{TOO_LONG} (capability_rejected: prompt_too_long)",
    }
    with pytest.raises(anthropic.PermissionDeniedError) as denied:
        client.messages.create(model=OPUS, max_tokens=8, messages=HELLO)
    message = denied.value.body["error"]["message"]  # type: ignore[index]
    assert message == "User: <arn> is not authorized" and "123456789012" not in str(denied.value.body)
    with pytest.raises(anthropic.RateLimitError) as throttled:
        client.messages.create(model=OPUS, max_tokens=8, messages=HELLO)
    assert throttled.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert throttled.value.response.headers["x-should-retry"] == "true"


def test_the_gateway_s_refusals_carry_anthropic_error_types(stack: RunningGateway) -> None:
    with pytest.raises(anthropic.AuthenticationError) as unauthenticated:
        sdk(stack, token="not-a-token").messages.create(model=OPUS, max_tokens=8, messages=HELLO)
    assert unauthenticated.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as blocked:
        sdk(stack).messages.create(model=OPUS, max_tokens=8, messages=[{"role": "user", "content": f"use {AWS_KEY}"}])
    error = blocked.value.body["error"]  # type: ignore[index]
    assert error["type"] == "policy_blocked" and error["details"] == {"error_code": "dlp_request_denied"}
    with pytest.raises(anthropic.BadRequestError, match="is not served by this gateway") as unknown:
        sdk(stack).messages.create(model="claude-opus-4-1", max_tokens=8, messages=HELLO)
    assert unknown.value.body["outcome"] == "model_not_allowed"  # type: ignore[index]
    for body, said in (
        ({"max_tokens": 8, "messages": HELLO}, "model is required"),
        ({"model": 7, "max_tokens": 8, "messages": HELLO}, "model must be a string"),
        ({"model": OPUS, "max_tokens": 128001, "messages": HELLO}, "max_tokens must be an integer from 1 to 128000"),
    ):
        response = post(stack, "/v1/messages", body)
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "invalid_request_error" and said in response.json()["message"]
    wrong_method = httpx.get(stack.gateway.url + "/v1/messages", headers={"authorization": f"Bearer {stack.token()}"})
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"


# -- count_tokens, models, probes ----------------------------------------------------------------------


def test_count_tokens_is_not_supported_where_bedrock_cannot_count(stack: RunningGateway) -> None:
    with pytest.raises(anthropic.APIStatusError) as refused:
        sdk(stack).messages.count_tokens(model=OPUS, messages=HELLO)
    assert refused.value.status_code == 501
    assert refused.value.body["error"]["type"] == "not_supported"  # type: ignore[index]


def test_count_tokens_asks_bedrock_for_the_bare_model(stack: RunningGateway, make_stack: GatewayFactory) -> None:
    counting = make_stack(
        vendor__models=[
            {**route.model_dump(mode="json"), "count_tokens": True} for route in stack.settings.vendor.models
        ]
    )
    raw = sdk(counting).messages.with_raw_response.count_tokens(
        model=OPUS,
        messages=HELLO,
        system="Be brief.",
    )
    assert raw.parse().input_tokens > 0
    vendor = sent(counting)
    assert vendor["path"] == f"/model/{FOUNDATION_MODEL}/count-tokens"
    invoke = json.loads(vendor["body"]["input"]["invokeModel"]["body"])
    assert invoke == {
        "messages": HELLO, "system": "Be brief.", "anthropic_version": "bedrock-2023-05-31", "max_tokens": 1,
    }  # fmt: skip
    record = counting.audit(raw.headers["x-request-id"])
    assert record["outcome"] == "ok" and record["estimated_cost_usd"] == 0


def test_models_lists_what_this_gateway_serves(stack: RunningGateway) -> None:
    listed = sdk(stack).models.list()
    assert [(m.id, m.display_name) for m in listed.data] == [
        ("claude-opus-5-5", "Claude Opus 5.5"),
        ("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5"),
        ("claude-haiku-4-5-20251001", "Claude Haiku 4.5"),
    ]
    assert {route.aliases[0] for route in stack.settings.vendor.models} == {m.id for m in listed.data}
    # A team's managed settings narrow it to the models they allow.
    mobile = sdk(stack, token=stack.token(team="mobile")).models.list()
    assert [m.id for m in mobile.data] == ["claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"]


def test_client_start_probes_are_answered_and_not_audited_without_a_token(stack: RunningGateway) -> None:
    before = len(read_jsonl(stack.settings.audit.path))
    assert httpx.head(stack.gateway.url + "/api/hello").status_code == 401
    head = httpx.head(stack.gateway.url + "/api/hello", headers={"authorization": f"Bearer {stack.token()}"})
    assert head.status_code == 200
    stack.audit(head.headers["x-request-id"])
    assert [r["path"] for r in read_jsonl(stack.settings.audit.path)[before:]] == ["/api/hello"]


def test_claude_code_s_session_and_agent_ids_are_in_the_audit_record(stack: RunningGateway) -> None:
    ids = {
        "x-claude-code-session-id": "4f1c2b9e-session",
        "x-claude-code-agent-id": "agent-7",
        "x-claude-code-parent-agent-id": "agent-1",
    }
    for path, body in (("/v1/messages", {"model": OPUS, "max_tokens": 8, "messages": HELLO}),):
        response = post(stack, path, body, **ids, **{"user-agent": "claude-cli/2.1.328 (external, cli)"})
        record = stack.audit(response.headers["x-request-id"])
        assert record["client"] == {
            "session_id": "4f1c2b9e-session",
            "agent_id": "agent-7",
            "parent_agent_id": "agent-1",
            "user_agent": "claude-cli/2.1.328 (external, cli)",
        }
    # On the Bedrock paths too; the client's word is kept printable and short.
    response = httpx.post(
        f"{stack.gateway.url}/model/{MODEL}/invoke",
        json=prompt("Say hello."),
        headers={
            b"authorization": f"Bearer {stack.token()}".encode(),
            b"x-claude-code-session-id": b"bedrock\x85session" + b"x" * 300,
        },
    )
    session = stack.audit(response.headers["x-request-id"])["client"]["session_id"]
    assert session == ("bedrock?session" + "x" * 300)[:200]


# -- Claude Code at ANTHROPIC_BASE_URL -------------------------------------------------------------------


def test_claude_code_speaks_the_messages_api_to_the_gateway(stack: RunningGateway, tmp_path: Path) -> None:
    stack.vendor_control(
        script=[
            {"when": "tools", "content": [bash("echo aigw-messages-api")]},
            {"when": "tools", "content": [{"type": "text", "text": "The tool said: {{tool_result}}"}]},
        ]
    )
    run = claude(
        stack, tmp_path / "home", "Run echo.", "--allowedTools", "Bash(echo:*)", "--model", OPUS, api="anthropic"
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "The tool said: aigw-messages-api"
    inference = [r for r in run.records if r["path"] == messages_api.MESSAGES]
    assert [(r["status"], r["outcome"], r["stream"]) for r in inference] == [(200, "ok", True), (200, "ok", True)]
    assert {r["client"].get("session_id") for r in inference} != {None}  # the CLI's session id, recorded
    assert len({r["client"]["session_id"] for r in inference}) == 1
