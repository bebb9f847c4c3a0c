"""One request as it moves along the path, the one way any stage reads its body, and the one way it refuses it."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway import messages_api
from gateway.errors import POLICY_DENIALS, error_body, error_headers
from gateway.limits import Reservation
from gateway.messages import Usage
from gateway.models import Invocation
from gateway.policy import Scan
from gateway.pricing import Pricing


@dataclass
class Exchange:
    """One request as the audit trail will remember it."""

    method: str
    path: str
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))
    started: float = field(default_factory=time.perf_counter)
    # Which API the client speaks: "bedrock" (the runtime's paths), "anthropic" (the Messages API on Bedrock), or
    # "vendor" (a vendor endpoint service's own); refusals take its error shape.
    api: str = "bedrock"
    # What the client says about itself: Claude Code's session and agent ids, its user agent.
    client: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    team: str | None = None
    # The availability canary's request (gateway.auth.CANARY): audited as such, billed to no team.
    canary: bool = False
    groups: tuple[str, ...] = ()
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


async def read_body(request: Request, limit: int, idle_seconds: float) -> bytes | None:
    """A request's body, or None as soon as it passes `limit` bytes (before anything reads it). Raises TimeoutError
    when it pauses longer than `idle_seconds`, ClientDisconnect when the client leaves."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    chunks = request.stream()
    while True:
        try:
            async with asyncio.timeout(idle_seconds):  # not wait_for: no task per chunk
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return bytes(body)
        body += chunk
        if len(body) > limit:
            return None


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
    # Anthropic's clients read error types they know (a content policy's refusal keeps its own: Claude Code knows it).
    anthropic = exchange.api == "anthropic" and outcome not in POLICY_DENIALS
    error_type = messages_api.error_type(status) if anthropic else outcome
    body = {
        **error_body(error_type, message, policy_denial=outcome in POLICY_DENIALS),
        "outcome": outcome,
        "reason": reason,
        "request_id": exchange.request_id,
        **(extra or {}),
    }
    return JSONResponse(body, status_code=status, headers={**error_headers(status), **(headers or {})})
