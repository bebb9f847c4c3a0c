"""One request as it moves along the path, and the one way any stage refuses it."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse

from gateway.limits import Reservation
from gateway.messages import Usage
from gateway.models import Invocation
from gateway.policy import DLP_DENIED, Scan
from gateway.pricing import Pricing


@dataclass
class Exchange:
    """One request as the audit trail will remember it."""

    method: str
    path: str
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))
    started: float = field(default_factory=time.perf_counter)
    user: str | None = None
    team: str | None = None
    repository: str | None = None
    model: str | None = None
    invocation: Invocation | None = None
    pricing: Pricing | None = None
    dropped_headers: list[str] = field(default_factory=list)
    status: int = 0
    outcome: str = "ok"
    reason: str | None = None
    policy: dict[str, Any] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    usage_estimated: bool = False
    request_bytes: int = 0
    prompt: list[str] = field(default_factory=list)
    # A blocked body is recorded redacted; its hash lets an investigator match it to a copy they hold.
    blocked_sha256: str | None = None
    completion: list[str] = field(default_factory=list)
    stream: bool = False
    first_byte_ms: float | None = None
    upstream_ms: float | None = None
    limits: dict[str, Any] | None = None
    reservation: Reservation | None = None
    recorded: bool = False
    # False for a client start-up probe without a token: counted in the metrics, kept out of the audit trail.
    audited: bool = True

    def note_policy(self, where: str, scan: Scan) -> None:
        if scan.matches:
            self.policy[where] = {"action": scan.action, "matches": dict(scan.matches)}


# Each refusal in Bedrock's shape (`x-amzn-errortype` and `{"message": …}`), chosen for what clients do with it:
# boto3, the anthropic SDK and Claude Code retry throttling and unavailability (after Retry-After) and stop
# at once on a validation error, so a policy refusal is never re-sent and billed again.
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
# The body has Bedrock's `message` and Anthropic's error envelope (`error.type`). Claude Code reads a content
# policy's refusal from `error.details.error_code` and then neither retries nor falls back to a
# non-streaming call: each retry would be forwarded and billed again.
POLICY_DENIALS = frozenset({"policy_blocked", "completion_blocked", "repository_blocked"})


def refuse(
    exchange: Exchange,
    status: int,
    outcome: str,
    reason: str | None,
    message: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """The answer to a request the gateway will not (or cannot) serve, noted on the exchange for its record."""
    exchange.status, exchange.outcome, exchange.reason = status, outcome, reason
    headers = {
        "x-amzn-errortype": ERROR_TYPES.get(status, "ValidationException"),
        # Read by the anthropic SDKs (and so Claude Code) before their own status rules: only a refusal that
        # can pass later (throttled, busy, the vendor down or slow) is worth retrying.
        "x-should-retry": "true" if status in RETRYABLE else "false",
        **(headers or {}),
    }
    error: dict[str, Any] = {"type": outcome, "message": message}
    if outcome in POLICY_DENIALS:
        error["details"] = {"error_code": DLP_DENIED}
    body = {
        "message": message,
        "type": "error",
        "error": error,
        "reason": reason,
        "request_id": exchange.request_id,
        **(extra or {}),
    }
    return JSONResponse(body, status_code=status, headers=headers)
