"""The one shape of every refusal: Bedrock's (`x-amzn-errortype`, `{"message": …}`) and Anthropic's error envelope
(`error.type`), chosen for what real clients do with it.

boto3, the anthropic SDKs and Claude Code retry throttling and unavailability (after Retry-After) and stop at
once on a validation error, so a refusal that cannot pass later is never re-sent and billed again. Claude Code
reads a content policy's refusal from `error.details.error_code` and then neither retries nor falls back to a
non-streaming call.
"""

from __future__ import annotations

from typing import Any

ERROR_TYPES = {
    400: "ValidationException",
    401: "UnrecognizedClientException",
    402: "ServiceQuotaExceededException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    405: "ValidationException",
    408: "RequestTimeoutException",
    413: "ValidationException",
    429: "ThrottlingException",
    500: "InternalServerException",
    502: "ServiceUnavailableException",
    503: "ServiceUnavailableException",
    504: "ModelTimeoutException",
}
RETRYABLE = frozenset({408, 429, 502, 503, 504})
DLP_DENIED = "dlp_request_denied"
POLICY_DENIALS = frozenset({"policy_blocked", "completion_blocked", "repository_blocked"})


def error_headers(status: int) -> dict[str, str]:
    return {
        "x-amzn-errortype": ERROR_TYPES.get(status, "ValidationException"),
        # Read by the anthropic SDKs (and so Claude Code) before their own status rules: only a refusal that can
        # pass later (throttled, busy, the vendor down or slow) is worth retrying.
        "x-should-retry": "true" if status in RETRYABLE else "false",
    }


def error_body(error_type: str, message: str, *, policy_denial: bool | None = None) -> dict[str, Any]:
    """`{"message", "type": "error", "error": {"type", "message"[, "details"]}}`; a content policy's refusal (by
    default, the error types in POLICY_DENIALS) carries its code in `error.details`."""
    error: dict[str, Any] = {"type": error_type, "message": message}
    if policy_denial if policy_denial is not None else error_type in POLICY_DENIALS:
        error["details"] = {"error_code": DLP_DENIED}
    return {"message": message, "type": "error", "error": error}
