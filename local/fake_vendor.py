"""A fake AI vendor for tests and `make gateway-local`: the four Bedrock runtime paths (with the binary
event stream for the streaming two), CountTokens, and an Anthropic-style `/v1/messages` for vendor endpoint
services. Like Bedrock, it refuses an InvokeModel body in the Anthropic Messages format that still names
`model` or `stream` or lacks `anthropic_version`, and counts tokens only for a bare model id.

It recomputes every request's SigV4 signature with the dummy credentials and refuses a wrong one, checks
a vendor key on `/v1/messages`, and can be told to be slow or to fail (`POST /_control`). Like Bedrock, it
takes a model by system inference-profile id or ARN, application inference-profile ARN, or (only where the
model card allows on-demand use) model id or ARN, per aigw's table of models (config/bedrock-models.yaml);
anything else gets Bedrock's 400 ValidationException. `GET /_last`
shows the last request it accepted, so tests can see exactly what the gateway sent on.

Its answers have Bedrock's complete shapes in all four formats: text (with citations), signed thinking,
redacted thinking and tool calls (streamed as `input_json_delta`, Converse `toolUse.input`). A test scripts
the next answers with `POST /_control {"script": [{"content": [blocks…]}, …]}`, one per request, in the
Anthropic Messages block format (see `scripted_reply` for `when` and `{{tool_result}}`); a scripted
`error` ({status, type, message}) is answered as Bedrock errors are, `raw` (with `status`) is sent as plain
text, and `garbage_after: N` breaks a stream's framing after N events.

    python -m local.fake_vendor --port PORT
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hmac
import json
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

import uvicorn
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from config.models import shipped_catalog
from gateway import eventstream

ACCESS_KEY = "AKIDFAKEVENDORTEST01"
SECRET_KEY = "fake-vendor-secret-key-for-tests-only"
REGION = "eu-west-1"
VENDOR_API_KEY = "vendor-key-for-tests"
AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[^,]+), Signature=(?P<signature>[0-9a-f]{64})$"
)
BEDROCK_PATH = re.compile(
    r"^/model/(?P<model>[^/]+)/(?P<action>invoke|invoke-with-response-stream|converse|converse-stream|count-tokens)$"
)
# Bedrock's own dialect (bedrock-2023-05-31, what Claude Code sends) or an Anthropic API version (the anthropic SDK's
# Bedrock client sends its own).
ANTHROPIC_VERSION = re.compile(r"(?:bedrock-)?\d{4}-\d{2}-\d{2}")
MODEL_ARN = re.compile(
    r"^arn:aws:bedrock:(?P<region>[a-z0-9-]{1,20}):(?P<account>\d{12})?:"
    r"(?P<kind>foundation-model|inference-profile|application-inference-profile)/(?P<id>[A-Za-z0-9.:-]+)$"
)

DEFAULTS: dict[str, Any] = {
    "delay_seconds": 0.0,  # before the response headers (what the gateway's first-byte timeout sees)
    "chunk_delay_seconds": 0.0,  # between streamed chunks
    "fail_status": None,  # answer every request with this status
    "completion": "Hello from the fake vendor.",
    "chunk_chars": 8,  # streamed completions are cut into pieces of this size
}
state: dict[str, Any] = {**DEFAULTS, "last": None, "requests": 0, "script": []}


def signature_error(method: str, url: str, headers: dict[str, str], body: bytes) -> str | None:
    """Recompute the SigV4 signature the way AWS does; None when it matches."""
    match = AUTHORIZATION.match(headers.get("authorization", ""))
    if match is None:
        return "missing or malformed SigV4 Authorization header"
    if match["key"] != ACCESS_KEY or match["region"] != REGION or match["service"] != "bedrock":
        return f"credential scope {match['key']}/{match['region']}/{match['service']} is not the expected one"
    signed = match["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return "host and x-amz-date must be signed"
    request = AWSRequest(method=method, url=url, data=body, headers={name: headers[name] for name in signed})
    request.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "bedrock", REGION)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    return None if hmac.compare_digest(expected, match["signature"]) else "signature does not match"


def model_error(model: str) -> str | None:
    """Bedrock's refusal of a model identifier, or None when it would invoke it."""
    catalog = shipped_catalog()
    arn = MODEL_ARN.match(model)
    if arn is not None:
        if arn["region"] != REGION:
            return f"The model ARN {model} is not in this Region ({REGION})."
        kind, model = arn["kind"], arn["id"]
        if (kind == "foundation-model") == bool(arn["account"]):
            return "The provided model identifier is invalid."
        if kind == "application-inference-profile":
            return None if re.fullmatch(r"[a-z0-9]{12}", model) else "The provided model identifier is invalid."
        if kind == "inference-profile" and model not in catalog.inference_profiles:
            return "The provided model identifier is invalid."
    profile = catalog.inference_profiles.get(model)
    if profile is not None:
        return None if REGION in profile.sources else "The provided model identifier is invalid."
    foundation = catalog.foundation_models.get(model)
    if foundation is None:
        return "The provided model identifier is invalid."
    if REGION not in foundation.on_demand_regions:
        return (
            f"Invocation of model ID {model} with on-demand throughput isn't supported. Retry your request with "
            "the ID or ARN of an inference profile that contains this model."
        )
    return None


def pieces(text: str) -> list[str]:
    size = max(1, int(state["chunk_chars"]))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def input_tokens(body: bytes) -> int:
    return max(1, len(body) // 4)


async def bedrock(request: Request) -> Response:
    raw_path = request.scope.get("raw_path", request.url.path.encode()).decode()
    url = f"http://{request.headers['host']}{raw_path}"
    body = await request.body()
    error = signature_error(request.method, url, dict(request.headers), body)
    if error:
        return JSONResponse(
            {"message": f"InvalidSignatureException: {error}"},
            status_code=403,
            headers={"x-amzn-errortype": "InvalidSignatureException"},
        )
    route = BEDROCK_PATH.match(raw_path)  # the model id is one %-encoded segment, even an ARN with '/'
    if route is None:
        return JSONResponse({"message": "UnknownOperationException"}, status_code=404)
    model, action = unquote(route["model"]), route["action"]
    if action == "count-tokens":
        return count_tokens(model, body)
    refused = model_error(model) or (invoke_body_error(body) if action.startswith("invoke") else None)
    if refused is not None:
        return validation_error(refused)
    return await answer(request, body, action, model)


def validation_error(message: str) -> Response:
    return JSONResponse({"message": message}, status_code=400, headers={"x-amzn-errortype": "ValidationException"})


def invoke_body_error(body: bytes) -> str | None:
    """Bedrock's refusal of an InvokeModel body in the Anthropic Messages format, as Claude models word it."""
    try:
        request = json.loads(body)
    except ValueError:
        return "Malformed input request, please reformat your input and try again."
    if not isinstance(request, dict) or "messages" not in request:
        return None
    for key in ("model", "stream"):
        if key in request:
            return f"Malformed input request: #: extraneous key [{key}] is not permitted, please reformat your input."
    version = request.get("anthropic_version")
    if not isinstance(version, str) or not ANTHROPIC_VERSION.fullmatch(version):
        return "Malformed input request: #: required key [anthropic_version] not found, please reformat your input."
    return None


def count_tokens(model: str, body: bytes) -> Response:
    """CountTokens: by a foundation model's bare id only (profiles are refused, as Bedrock refuses them)."""
    state["last"] = {"path": f"/model/{model}/count-tokens", "headers": {}, "body": body.decode(), "model": model}
    if model not in shipped_catalog().foundation_models:
        return validation_error("The provided model doesn't support counting tokens.")
    try:
        inner = json.loads(json.loads(body)["input"]["invokeModel"]["body"])
    except (ValueError, KeyError, TypeError):
        return validation_error("input.invokeModel.body must be a JSON string.")
    refused = invoke_body_error(json.dumps(inner).encode())
    if refused is None and not isinstance(inner.get("max_tokens"), int):
        refused = "Malformed input request: #: required key [max_tokens] not found."
    if refused:
        return validation_error(refused)
    return JSONResponse({"inputTokens": input_tokens(json.dumps(inner).encode())})


async def messages(request: Request) -> Response:
    body = await request.body()
    if request.headers.get("x-api-key") != VENDOR_API_KEY:
        return JSONResponse(
            {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}},
            status_code=401,
        )
    action = "sse" if json.loads(body or b"{}").get("stream") else "messages"
    return await answer(request, body, action, "vendor-model")


async def answer(request: Request, body: bytes, action: str, model: str) -> Response:
    state["requests"] += 1
    state["last"] = {
        "path": request.url.path,
        "headers": dict(request.headers),
        "body": body.decode(errors="replace"),
        "model": model,
    }
    reply = scripted_reply(body)
    if "raw" in reply:  # a body that is not Bedrock's shape at all
        return Response(reply["raw"], status_code=int(reply.get("status", 200)), media_type="text/plain")
    if state["delay_seconds"]:
        await asyncio.sleep(float(state["delay_seconds"]))
    error = reply.get("error") or (
        {"status": int(state["fail_status"]), "type": "ServiceUnavailableException", "message": "fake vendor failure"}
        if state["fail_status"]
        else None
    )
    if error:
        return JSONResponse(
            {"message": error["message"]}, status_code=int(error["status"]), headers={"x-amzn-errortype": error["type"]}
        )
    blocks: list[dict[str, Any]] = reply["content"]
    usage = {"input_tokens": input_tokens(body), "output_tokens": output_tokens(blocks)}
    stop_reason = reply.get("stop_reason") or (
        "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
    )
    headers = {"x-amzn-requestid": "fake-request", "x-amzn-bedrock-content-type": "application/json"}
    if action in ("invoke", "messages"):
        return JSONResponse(message(model, blocks, stop_reason, usage), headers=headers)
    if action == "converse":
        return JSONResponse(converse(blocks, stop_reason, usage), headers=headers)
    frames = {"invoke-with-response-stream": invoke_stream, "converse-stream": converse_stream, "sse": sse_stream}[
        action
    ](model, blocks, stop_reason, usage)
    if reply.get("garbage_after") is not None:  # a vendor that breaks its own framing mid-stream
        frames = [*frames[: int(reply["garbage_after"])], b"\x00\x01garbage that is not an event\n\n"]
    media_type = "text/event-stream" if action == "sse" else eventstream.CONTENT_TYPE
    return StreamingResponse(paced(frames), media_type=media_type, headers=headers)


def scripted_reply(body: bytes) -> dict[str, Any]:
    """The first scripted answer meant for this request, else the default one. `when: "tools"` holds an
    answer for a request that offers tools (a coding assistant's own turn, not its side requests); the text
    `{{tool_result}}` becomes the text of the request's last tool result."""
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        request = {}
    offers_tools = isinstance(request, dict) and bool(request.get("tools") or request.get("toolConfig"))
    for position, reply in enumerate(state["script"]):
        if reply.get("when") in (None, "tools" if offers_tools else None):
            state["script"].pop(position)
            result = last_tool_result(request)
            filled: dict[str, Any] = json.loads(json.dumps(reply).replace("{{tool_result}}", json.dumps(result)[1:-1]))
            return filled
    return default_reply()


def last_tool_result(request: Any) -> str:
    found = ""

    def visit(node: Any) -> None:
        nonlocal found
        if isinstance(node, dict):
            if node.get("type") == "tool_result" or "toolResult" in node:
                result = node.get("toolResult", node)
                content = result.get("content")
                found = (
                    content
                    if isinstance(content, str)
                    else "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))
                )
                return
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(request.get("messages") if isinstance(request, dict) else None)
    return found.strip()


def default_reply() -> dict[str, Any]:
    return {"content": [{"type": "text", "text": str(state["completion"])}]}


def output_tokens(blocks: list[dict[str, Any]]) -> int:
    return sum(len(pieces(block_text(block))) for block in blocks)


def block_text(block: dict[str, Any]) -> str:
    """What a block streams as deltas: its text, its thinking, or its tool input as JSON."""
    kind = block["type"]
    if kind == "tool_use":
        return json.dumps(block["input"])
    return str(block.get("thinking" if kind == "thinking" else "text", ""))


def message(model: str, blocks: list[dict[str, Any]], stop_reason: str, usage: dict[str, int]) -> dict[str, Any]:
    return {
        "id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": blocks,
        "stop_reason": stop_reason, "stop_sequence": None, "usage": usage,
    }  # fmt: skip


def converse(blocks: list[dict[str, Any]], stop_reason: str, usage: dict[str, int]) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [converse_block(b) for b in blocks]}},
        "stopReason": stop_reason,
        "usage": converse_usage(usage),
        "metrics": {"latencyMs": 1},
    }


def converse_block(block: dict[str, Any]) -> dict[str, Any]:
    kind = block["type"]
    if kind == "tool_use":
        return {"toolUse": {"toolUseId": block["id"], "name": block["name"], "input": block["input"]}}
    if kind == "thinking":
        return {"reasoningContent": {"reasoningText": {"text": block["thinking"], "signature": block["signature"]}}}
    if kind == "redacted_thinking":
        return {"reasoningContent": {"redactedContent": block["data"]}}
    return {"text": block["text"]}


def converse_usage(usage: dict[str, int]) -> dict[str, int]:
    return {
        "inputTokens": usage["input_tokens"],
        "outputTokens": usage["output_tokens"],
        "totalTokens": usage["input_tokens"] + usage["output_tokens"],
    }


async def paced(frames: list[bytes]) -> AsyncIterator[bytes]:
    for frame in frames:
        if state["chunk_delay_seconds"]:
            await asyncio.sleep(float(state["chunk_delay_seconds"]))
        yield frame


def messages_events(
    model: str, blocks: list[dict[str, Any]], stop_reason: str, usage: dict[str, int]
) -> list[dict[str, Any]]:
    """Anthropic Messages streaming events, as Bedrock's InvokeModelWithResponseStream and the vendor API send them."""
    start = message(model, [], None, {**usage, "output_tokens": 1})  # type: ignore[arg-type]
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(blocks):
        kind = block["type"]
        opening = {
            "text": {"type": "text", "text": ""},
            "thinking": {"type": "thinking", "thinking": ""},
            "tool_use": {"type": "tool_use", "id": block.get("id"), "name": block.get("name"), "input": {}},
        }.get(kind, block)
        events.append({"type": "content_block_start", "index": index, "content_block": opening})
        delta_type, field = {
            "text": ("text_delta", "text"), "thinking": ("thinking_delta", "thinking"),
            "tool_use": ("input_json_delta", "partial_json"),
        }.get(kind, (None, None))  # fmt: skip
        if delta_type:
            for piece in pieces(block_text(block)):
                events.append(
                    {"type": "content_block_delta", "index": index, "delta": {"type": delta_type, field: piece}}
                )
        for citation in block.get("citations") or []:
            events.append(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "citations_delta", "citation": citation},
                }
            )
        if kind == "thinking":
            events.append(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "signature_delta", "signature": block["signature"]},
                }
            )
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        }
    )
    events.append({"type": "message_stop"})
    return events


def chunk(inner: dict[str, Any]) -> bytes:
    return eventstream.event(
        "chunk", json.dumps({"bytes": base64.b64encode(json.dumps(inner).encode()).decode()}).encode()
    )


def invoke_stream(model: str, blocks: list[dict[str, Any]], stop_reason: str, usage: dict[str, int]) -> list[bytes]:
    events = messages_events(model, blocks, stop_reason, usage)
    events[-1]["amazon-bedrock-invocationMetrics"] = {
        "inputTokenCount": usage["input_tokens"], "outputTokenCount": usage["output_tokens"],
        "invocationLatency": 1, "firstByteLatency": 1,
    }  # fmt: skip
    return [chunk(event) for event in events]


def converse_stream(model: str, blocks: list[dict[str, Any]], stop_reason: str, usage: dict[str, int]) -> list[bytes]:
    def event(kind: str, body: dict[str, Any]) -> bytes:
        return eventstream.event(kind, json.dumps(body).encode())

    frames = [event("messageStart", {"role": "assistant"})]
    for index, block in enumerate(blocks):
        kind = block["type"]
        if kind == "tool_use":
            start = {"toolUse": {"toolUseId": block["id"], "name": block["name"]}}
            frames.append(event("contentBlockStart", {"contentBlockIndex": index, "start": start}))
        if kind == "redacted_thinking":
            deltas: list[dict[str, Any]] = [{"reasoningContent": {"redactedContent": block["data"]}}]
        else:
            deltas = [converse_delta(kind, p) for p in pieces(block_text(block))]
            if kind == "thinking":
                deltas.append({"reasoningContent": {"signature": block["signature"]}})
        frames += [event("contentBlockDelta", {"contentBlockIndex": index, "delta": d}) for d in deltas]
        frames.append(event("contentBlockStop", {"contentBlockIndex": index}))
    frames.append(event("messageStop", {"stopReason": stop_reason}))
    frames.append(event("metadata", {"usage": converse_usage(usage), "metrics": {"latencyMs": 1}}))
    return frames


def converse_delta(kind: str, piece: str) -> dict[str, Any]:
    if kind == "tool_use":
        return {"toolUse": {"input": piece}}
    if kind == "thinking":
        return {"reasoningContent": {"text": piece}}
    return {"text": piece}


def sse_stream(model: str, blocks: list[dict[str, Any]], stop_reason: str, usage: dict[str, int]) -> list[bytes]:
    return [
        f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode()
        for e in messages_events(model, blocks, stop_reason, usage)
    ]


async def control(request: Request) -> Response:
    changes = await request.json()
    unknown = set(changes) - set(DEFAULTS) - {"reset", "script"}
    if unknown:
        return JSONResponse({"unknown": sorted(unknown)}, status_code=400)
    if changes.pop("reset", False):
        state.update(DEFAULTS, script=[])
    script = changes.pop("script", None)
    if script is not None:
        state["script"].extend(script)
    state.update(changes)
    return JSONResponse({k: state[k] for k in DEFAULTS})


async def last(_request: Request) -> Response:
    return JSONResponse({"last": state["last"], "requests": state["requests"]})


async def ready(_request: Request) -> Response:
    return JSONResponse({"ok": True})


app = Starlette(
    routes=[
        Route("/_control", control, methods=["POST"]),
        Route("/_last", last, methods=["GET"]),
        Route("/_ready", ready, methods=["GET"]),
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/{path:path}", bedrock, methods=["POST"]),
    ]
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
