"""The Anthropic Messages API (`/v1/messages`, `/v1/messages/count_tokens`, `/v1/models`) on Bedrock: what Claude
Code speaks to a gateway at ANTHROPIC_BASE_URL, and always after a gateway sign-in.

A request is translated as Anthropic's own Bedrock client translates it: the model leaves the body for the path
(as the team's inference profile), `stream` chooses the action, `anthropic_version` becomes Bedrock's, and the
`anthropic-beta` header's values join the body's `anthropic_beta` (Bedrock reads betas only there). Everything
else in the body passes as the client wrote it: new fields arrive with each client release.

Answers come back in Anthropic's shapes. Bedrock's errors keep their wording (clients recover from a rejected
thinking block or a prompt that is too long by it) inside Anthropic's error envelope, with account ids and ARNs
taken out.
"""

from __future__ import annotations

import json
import re
from typing import Any

from gateway.errors import error_body

MESSAGES, COUNT_TOKENS, MODELS = "/v1/messages", "/v1/messages/count_tokens", "/v1/models"
PATHS = frozenset({MESSAGES, COUNT_TOKENS, MODELS})
# Probes Claude Code makes at start on an Anthropic base URL (best-effort: any answer will do).
PROBES = frozenset({"/", "/api/hello"})
BEDROCK_VERSION = "bedrock-2023-05-31"
# Claude Code's name for a model's 1M-token context variant; the beta header asks for the context itself.
LONG_CONTEXT_SUFFIX = "[1m]"

# Anthropic's error types by status (its API's errors page).
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    501: "not_supported",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
# Bedrock's in-stream exceptions, as Anthropic's streams name the same failures.
STREAM_ERROR_TYPES = {
    "throttlingException": "rate_limit_error",
    "serviceUnavailableException": "overloaded_error",
    "modelTimeoutException": "timeout_error",
    "validationException": "invalid_request_error",
    "internalServerException": "api_error",
    "modelStreamErrorException": "api_error",
}
# Claude Code compacts the conversation on this token (and on Bedrock's and Anthropic's own wordings).
PROMPT_TOO_LONG = re.compile(r"(?i)input is too long|prompt is too long")
PROMPT_TOO_LONG_TOKEN = "capability_rejected: prompt_too_long"
ARN = re.compile(r"\barn:aws[a-z-]*:[^\s\"',;]+")
ACCOUNT_ID = re.compile(r"(?<!\d)\d{12}(?!\d)")


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def model_name(payload: dict[str, Any]) -> str:
    """The model the request names, or ValueError saying what is wrong with it (as the Claude apps gateway words it)."""
    name = payload.get("model")
    if name is None or name == "":
        raise ValueError("model is required")
    if not isinstance(name, str):
        raise ValueError("model must be a string")
    return name.removesuffix(LONG_CONTEXT_SUFFIX)


def invoke_body(payload: dict[str, Any], beta_header: str | None) -> dict[str, Any]:
    """An InvokeModel body for a Messages API request."""
    body = {key: value for key, value in payload.items() if key not in ("model", "stream")}
    body.setdefault("anthropic_version", BEDROCK_VERSION)
    betas = [*(body.get("anthropic_beta") or []), *(beta_header or "").split(",")]
    betas = list(dict.fromkeys(beta.strip() for beta in betas if isinstance(beta, str) and beta.strip()))
    if betas:
        body["anthropic_beta"] = betas
    return body


def count_tokens_body(payload: dict[str, Any], beta_header: str | None) -> dict[str, Any]:
    """A CountTokens body: the InvokeModel body it counts (which, unlike a count_tokens request, needs
    max_tokens), as a string."""
    invoke = invoke_body(payload, beta_header)
    invoke.setdefault("max_tokens", 1)
    return {"input": {"invokeModel": {"body": json.dumps(invoke)}}}


def count_tokens_answer(raw: Any) -> dict[str, Any] | None:
    """CountTokens' answer as count_tokens answers, or None when it is not CountTokens' shape."""
    if isinstance(raw, dict) and isinstance(raw.get("inputTokens"), int) and not isinstance(raw["inputTokens"], bool):
        return {"input_tokens": raw["inputTokens"]}
    return None


def vendor_error(status: int, raw: bytes) -> dict[str, Any]:
    """A Bedrock error body in Anthropic's envelope: its wording kept, account ids and ARNs taken out."""
    try:
        parsed = json.loads(raw)
        message = parsed.get("message") or parsed.get("Message") if isinstance(parsed, dict) else None
    except ValueError:
        message = None
    text = message if isinstance(message, str) else raw.decode(errors="replace")
    return error_body(error_type(status), prompt_too_long(without_account(text)))


def stream_error(exception_type: str | None, payload: Any) -> dict[str, Any]:
    """A Bedrock in-stream exception as Anthropic's `error` event carries it."""
    message = payload.get("message") if isinstance(payload, dict) else None
    text = message if isinstance(message, str) else f"The AI vendor's stream ended with {exception_type}."
    return error_body(STREAM_ERROR_TYPES.get(exception_type or "", "api_error"), prompt_too_long(without_account(text)))


def prompt_too_long(message: str) -> str:
    """The message, marked so that Claude Code compacts the conversation when it says the prompt is too long."""
    if PROMPT_TOO_LONG.search(message) and PROMPT_TOO_LONG_TOKEN not in message:
        return f"{message} ({PROMPT_TOO_LONG_TOKEN})"
    return message


def without_account(message: str) -> str:
    return ACCOUNT_ID.sub("<account>", ARN.sub("<arn>", message))


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


PING = sse("ping", {"type": "ping"})
