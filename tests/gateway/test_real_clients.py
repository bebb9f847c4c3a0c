"""The real clients against a running gateway and the faithful fake vendor: the Claude Code CLI (pinned in
package.json; its native binary), boto3's bedrock-runtime client, and the anthropic SDK's AnthropicBedrock.
They read shapes, status codes and error types exactly as they do against Bedrock."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import pytest

from local.fake_vendor import REGION
from local.harness import MODEL, ROOT, prompt
from tests.gateway.conftest import AWS_KEY, GatewayFactory, RunningGateway, bash, read_jsonl

pytestmark = pytest.mark.usefixtures("reset_vendor")
CLAUDE = ROOT / "node_modules" / ".bin" / "claude"


@pytest.fixture(scope="module")
def stack(make_stack: GatewayFactory) -> RunningGateway:
    return make_stack()


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    records: list[dict[str, Any]]  # the audit records of the requests this run made


def claude(
    stack: RunningGateway, home: Path, prompt: str, *args: str, token: str | None = None, api: str = "bedrock"
) -> Run:
    """Claude Code in print mode, set up as aigw's README tells developers to, nothing else from this machine's
    environment: Bedrock through the gateway with the IdP token as a header, or (`api="anthropic"`) the Anthropic
    Messages API at the gateway's base URL with the token as its auth token."""
    home.mkdir(exist_ok=True)
    bearer = token or stack.token()
    env = {
        "PATH": os.defpath,
        "HOME": str(home),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    if api == "bedrock":
        env |= {
            "CLAUDE_CODE_USE_BEDROCK": "1",
            "AWS_REGION": REGION,
            "ANTHROPIC_BEDROCK_BASE_URL": stack.gateway.url,
            "CLAUDE_CODE_SKIP_BEDROCK_AUTH": "1",
            "ANTHROPIC_CUSTOM_HEADERS": f"Authorization: Bearer {bearer}",
        }
    else:
        env |= {"ANTHROPIC_BASE_URL": stack.gateway.url, "ANTHROPIC_AUTH_TOKEN": bearer}
    seen = len(read_jsonl(stack.settings.audit.path))
    started = time.monotonic()
    done = subprocess.run(
        [str(CLAUDE), "-p", prompt, *args], env=env, cwd=home, capture_output=True, text=True, timeout=240
    )
    seconds = time.monotonic() - started
    time.sleep(0.3)  # the audit writer is asynchronous
    records = read_jsonl(stack.settings.audit.path)[seen:]
    return Run(done.returncode, done.stdout, done.stderr, seconds, records)


def invocations(run: Run) -> list[tuple[int, str]]:
    """Status and outcome of each model invocation the run made (control-plane probes aside)."""
    return [(r["status"], r["outcome"]) for r in run.records if r["path"].startswith("/model/")]


def test_claude_code_answers_a_prompt(stack: RunningGateway, tmp_path: Path) -> None:
    stack.vendor_control(completion="Hello from behind aigw.")
    run = claude(stack, tmp_path / "home", "Say hello.")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "Hello from behind aigw."
    assert invocations(run) == [(200, "ok")]


def test_claude_code_runs_a_tool_loop(stack: RunningGateway, tmp_path: Path) -> None:
    stack.vendor_control(
        script=[
            {"when": "tools", "content": [bash("echo aigw-tool-ran")]},
            {"when": "tools", "content": [{"type": "text", "text": "The tool said: {{tool_result}}"}]},
        ]
    )
    run = claude(stack, tmp_path / "home", "Run echo.", "--allowedTools", "Bash(echo:*)")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "The tool said: aigw-tool-ran"  # the CLI ran the tool and sent its result back
    assert invocations(run) == [(200, "ok"), (200, "ok")]


def test_claude_code_stops_at_once_when_a_streamed_tool_call_carries_a_secret(
    stack: RunningGateway, tmp_path: Path
) -> None:
    stack.vendor_control(script=[{"when": "tools", "content": [bash(f"export AWS_ACCESS_KEY_ID={AWS_KEY}")]}])
    run = claude(stack, tmp_path / "home", "Set up my credentials.", "--allowedTools", "Bash(echo:*)")
    assert run.returncode != 0
    assert "Output blocked by content filtering policy (aigw rule aws-access-key-id)" in run.stdout + run.stderr
    assert AWS_KEY not in run.stdout + run.stderr
    # No retry and no fallback to a non-streaming call: each would be forwarded and billed again.
    assert invocations(run) == [(200, "completion_blocked")]


def test_claude_code_stops_at_once_on_a_blocked_prompt(stack: RunningGateway, tmp_path: Path) -> None:
    run = claude(stack, tmp_path / "home", f"Deploy with the key {AWS_KEY}.")
    assert run.returncode != 0
    assert "aws-access-key-id" in run.stdout + run.stderr
    assert invocations(run) == [(400, "policy_blocked")]


def test_claude_code_stops_at_once_when_its_token_has_expired(stack: RunningGateway, tmp_path: Path) -> None:
    expired = stack.keys.token("k1", issued_ago=9 * 3600, lifetime=8 * 3600)
    run = claude(stack, tmp_path / "home", "Say hello.", token=expired)
    assert run.returncode != 0
    assert stack.settings.auth.refresh_hint in run.stdout + run.stderr  # it tells the user how to get a new one
    assert invocations(run) == [(401, "unauthorized")]  # and is not retried


# -- the anthropic SDK -----------------------------------------------------------------------------


def sdk(stack: RunningGateway, token: str | None = None) -> anthropic.AnthropicBedrock:
    """AnthropicBedrock with the IdP token as its bearer API key, pointed at the gateway."""
    return anthropic.AnthropicBedrock(
        api_key=token or stack.token(), aws_region=REGION, base_url=stack.gateway.url, max_retries=2
    )


def test_the_anthropic_sdk_streams_text_and_tool_calls(stack: RunningGateway) -> None:
    stack.vendor_control(completion="Streamed through aigw.", script=[{"content": [bash("ls -la")]}])
    client = sdk(stack)
    messages = [{"role": "user", "content": "hi"}]
    with client.messages.stream(model=MODEL, max_tokens=64, messages=messages) as stream:  # type: ignore[arg-type]
        tool = stream.get_final_message()
    assert tool.stop_reason == "tool_use"
    assert [(b.type, getattr(b, "input", None)) for b in tool.content] == [("tool_use", {"command": "ls -la"})]
    with client.messages.stream(model=MODEL, max_tokens=64, messages=messages) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Streamed through aigw." and final.usage.output_tokens > 0


def test_the_anthropic_sdk_reads_refusals_and_does_not_retry_them(stack: RunningGateway) -> None:
    before = len(read_jsonl(stack.settings.audit.path))
    with pytest.raises(anthropic.BadRequestError) as blocked:
        sdk(stack).messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": f"use {AWS_KEY}"}])
    assert blocked.value.status_code == 400 and "aws-access-key-id" in str(blocked.value)
    stack.vendor_control(script=[{"content": [bash(f"export KEY={AWS_KEY}")]}])
    messages = [{"role": "user", "content": "hi"}]
    with (
        pytest.raises(anthropic.APIError, match="Output blocked by content filtering policy"),
        sdk(stack).messages.stream(model=MODEL, max_tokens=64, messages=messages) as stream,  # type: ignore[arg-type]
    ):
        stream.get_final_message()
    time.sleep(0.3)
    outcomes = [r["outcome"] for r in read_jsonl(stack.settings.audit.path)[before:]]
    assert outcomes == ["policy_blocked", "completion_blocked"]  # one request each: no retries


# -- boto3 ------------------------------------------------------------------------------------------


def test_boto3_streams_an_invocation(stack: RunningGateway) -> None:
    stack.vendor_control(completion="Streamed to boto3.")
    client = stack.boto3_client("bedrock-runtime")
    answer = client.invoke_model_with_response_stream(modelId=MODEL, body=json.dumps(prompt("hi")))
    assert answer["contentType"] == "application/json"  # Bedrock's X-Amzn-Bedrock-Content-Type
    events = [json.loads(part["chunk"]["bytes"]) for part in answer["body"]]
    assert events[0]["type"] == "message_start" and events[0]["message"]["content"] == []
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert text == "Streamed to boto3."
    assert events[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] > 0
    client.close()
