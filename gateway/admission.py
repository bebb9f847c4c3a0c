"""Everything decided before the vendor is involved: who, which path, scope, size, prompt policy, limits."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from gateway import managed_settings, messages_api, telemetry
from gateway.auth import Authenticator, AuthError, Teams
from gateway.bodies import BodyChecker, TooDeepError
from gateway.exchange import Exchange, read_body, refuse
from gateway.limits import Limits, RateDecision
from gateway.models import ModelDirectory, ProbeError, UnknownModelError
from gateway.policy import ScanBudgetError, normalise_repository
from gateway.pricing import CostOptionError, pricing_for
from gateway.settings import GatewaySettings
from gateway.signin_store import SigninStore, StoreUnavailableError
from gateway.telemetry import Telemetry
from gateway.upstream import dropped_headers

BEDROCK_PATH = re.compile(
    r"^/model/(?P<model>[^/]+(?:/[^/]+)*?)/(?P<action>invoke|invoke-with-response-stream|converse|converse-stream)$"
)
# Bedrock control-plane reads that Claude Code makes at start (ListInferenceProfiles, GetInferenceProfile).
PROFILES_PATH = re.compile(r"^/inference-profiles(?:/(?P<identifier>.+))?$")
log = logging.getLogger("aigw.gateway")
STREAMED_ACTIONS = frozenset({"invoke-with-response-stream", "converse-stream"})


@dataclass(frozen=True)
class Admitted:
    """A request cleared to go to the vendor: its Bedrock action (None on a vendor API path) and the body to send."""

    action: str | None
    body: bytes


class Admission:
    def __init__(
        self,
        settings: GatewaySettings,
        auth: Authenticator,
        models: ModelDirectory,
        checker: BodyChecker,
        limits: Limits,
        telemetry: Telemetry,
        signin_store: SigninStore | None = None,
    ) -> None:
        self.settings = settings
        self.auth = auth
        self.models = models
        self.checker = checker
        self.policy = checker.policy
        self.limits = limits
        self.telemetry = telemetry
        self.signin_store = signin_store
        self.teams = Teams(settings.teams)
        public_url = settings.signin.public_url if settings.signin else None
        self.managed = managed_settings.ManagedSettings(settings.managed_settings, public_url)

    async def admit(self, request: Request, exchange: Exchange) -> Response | Admitted:
        """The refusal, or what to send the vendor."""
        settings = self.settings
        path, method = request.scope["path"], request.method
        bedrock = settings.vendor.kind == "bedrock"
        anthropic = bedrock and path in messages_api.PATHS
        exchange.api = "anthropic" if anthropic else "bedrock" if bedrock else "vendor"
        exchange.client = client_ids(request.headers)
        probe = PROFILES_PATH.match(path) if bedrock and method == "GET" else None
        hello = method == "HEAD" and path in messages_api.PROBES
        try:
            identity = await self.auth.identify(request.headers.get("authorization"))
        except AuthError as error:
            # Each client start probes the control plane or the base URL before it sends its token: one per start
            # is noise, not an audit event.
            exchange.audited = probe is None and not hello
            return refuse(
                exchange, 401, "unauthorized", error.reason, error.message,
                headers={"www-authenticate": f'Bearer error="invalid_token", error_description="{error.reason}"'},
            )  # fmt: skip
        exchange.user, exchange.canary = identity.user, identity.canary
        exchange.team = identity.team if identity.canary else self.teams.canonical(identity.team)
        if exchange.team is None:
            exchange.team = identity.team[:64]
            return refuse(
                exchange, 403, "unknown_team", exchange.team,
                f"The token's team {identity.team[:64]!r} is not one of this gateway's teams; ask the platform team "
                "to add it, or check the team your IdP account is in.",
            )  # fmt: skip

        exchange.groups = identity.groups
        if path == managed_settings.PATH:
            return await self._managed_settings(request, exchange)
        if path in telemetry.PATHS:  # not counted against the rate limits: they are for inference
            return await self.telemetry.accept(request, exchange)
        action = None
        if probe is not None:
            return self._probe(probe["identifier"], request, exchange)
        if hello:
            return Response(status_code=200)
        if anthropic:
            allowed = "GET" if path == messages_api.MODELS else "POST"
            if method != allowed:
                return refuse(
                    exchange, 405, "method_not_allowed", method, f"{path} takes {allowed}, not {method}.",
                    headers={"allow": allowed},
                )  # fmt: skip
            if path == messages_api.MODELS:
                listed = self.managed.allowed_models(exchange.team or "", exchange.groups)
                return JSONResponse(self.models.model_list(listed))
        elif bedrock:
            route = BEDROCK_PATH.match(path)
            if route is None or method != "POST":
                return refuse(
                    exchange,
                    404,
                    "not_found",
                    "unknown_path",
                    f"{request.method} {request.url.path} is not a Bedrock runtime path.",
                )
            action = route["action"]
            exchange.model = unquote(route["model"])
            try:
                exchange.invocation = self.models.invocation(exchange.model, exchange.team)
            except UnknownModelError as error:  # Bedrock's answer to a model it does not know: clients stop at once
                return refuse(exchange, 400, "model_not_allowed", exchange.model, str(error))
            refused = self._team_allows(exchange)
            if refused is not None:
                return refused
        # Every request that names a served path counts against its caller's rate limits before the content
        # policy runs, refused ones included: with its budget reservation in one script when it gets that far,
        # else on its own (and a caller over a limit is told so, whatever else was wrong).
        admitted = await self._served(request, exchange, action, anthropic)
        if exchange.limits is None:
            refused = await self._check_rate(exchange)
            if refused is not None:
                return refused
        return admitted

    async def _served(
        self, request: Request, exchange: Exchange, action: str | None, anthropic: bool
    ) -> Response | Admitted:
        """A request on a served path, from its scope to the body the vendor gets."""
        settings = self.settings
        path = request.scope["path"]
        named = request.headers.get(settings.policy.repository_header)
        exchange.repository = normalise_repository(named) if named else None
        required = settings.policy.require_repository
        if not exchange.repository and (required is True or (required and exchange.team in required)):
            header = settings.policy.repository_header
            return refuse(
                exchange, 400, "repository_required", header,
                f"Say which repository this request is for in the {header} header (your IDE plugin sets it).",
            )  # fmt: skip
        blocked_by = self.policy.repository_policy(exchange.repository)
        if blocked_by:
            return refuse(  # a validation error: the same request will never pass, so clients must not retry it
                exchange,
                400,
                "repository_blocked",
                blocked_by,
                f"Repository {exchange.repository!r} is out of scope for AI assistance (policy {blocked_by}).",
            )

        try:
            body = await read_body(
                request, settings.policy.max_request_bytes, settings.server.body_idle_timeout_seconds
            )
        except TimeoutError:
            seconds = settings.server.body_idle_timeout_seconds
            return refuse(exchange, 408, "body_timeout", f"{seconds:g}s", f"The body paused for over {seconds:g} s.")
        except ClientDisconnect:  # nobody will read this answer; the record says what happened
            return refuse(exchange, 400, "client_disconnected", "body", "The client left before its body arrived.")
        if body is None:
            limit = settings.policy.max_request_bytes
            return refuse(exchange, 413, "too_large", str(limit), f"The request body is larger than {limit} bytes.")
        exchange.request_bytes = len(body)
        try:
            payload = json.loads(body, object_pairs_hook=_unique_keys) if body else {}
        except (ValueError, RecursionError) as error:  # not JSON, not UTF-8, a number too long, nested too deep
            reason = str(error) if isinstance(error, ValueError) else "nested too deeply"
            return refuse(exchange, 400, "malformed_body", "json", f"The request body is not usable JSON ({reason}).")

        if anthropic:
            refused = self._anthropic_model(payload, path, exchange)
            if refused is not None:
                return refused
            action = "count-tokens" if path == messages_api.COUNT_TOKENS else None
        max_tokens = self._max_tokens(payload, exchange)
        if isinstance(max_tokens, str):
            return refuse(exchange, 400, "invalid_max_tokens", "max_tokens", max_tokens)
        if exchange.invocation is not None and action != "count-tokens":  # counting tokens costs nothing
            try:
                exchange.pricing = pricing_for(
                    exchange.invocation.route.price, settings.cost_options, request.headers, payload
                )
            except CostOptionError as error:
                return refuse(exchange, 400, "option_not_allowed", "cost_options", str(error))
        exchange.dropped_headers = dropped_headers(request.headers)
        refused = await self._limits(exchange, max_tokens, body)
        if refused is not None:
            return refused

        try:
            payload, scan, exchange.prompt = await self.checker.check(payload, "prompt", len(body))
        except TooDeepError as error:
            return refuse(exchange, 400, "malformed_body", "depth", f"The request body is not usable ({error}).")
        except ScanBudgetError:
            seconds = self.checker.budget_seconds
            return refuse(
                exchange, 400, "policy_budget", "scan_budget_ms",
                f"The prompt could not be checked within {seconds:g} s; send less of it at once.",
            )  # fmt: skip
        exchange.note_policy("prompt", scan)
        if scan.action == "block":
            rules = ", ".join(scan.blocking_rules)
            exchange.blocked_sha256 = hashlib.sha256(body).hexdigest()
            return refuse(
                exchange, 400, "policy_blocked", rules, f"The prompt contains content the policy blocks (rule {rules})."
            )
        if anthropic:  # translated from what the policy passed
            beta = request.headers.get("anthropic-beta")
            if action == "count-tokens":
                body = json.dumps(messages_api.count_tokens_body(payload, beta)).encode()
            else:
                action = "invoke-with-response-stream" if payload.get("stream") else "invoke"
                body = json.dumps(messages_api.invoke_body(payload, beta)).encode()
        elif scan.action == "redact":
            body = json.dumps(payload).encode()
        exchange.stream = (
            action in STREAMED_ACTIONS if action else isinstance(payload, dict) and bool(payload.get("stream"))
        )
        return Admitted(action, body)

    def _anthropic_model(self, payload: Any, path: str, exchange: Exchange) -> Response | None:
        """The model a Messages API request names, as the team invokes it; or the refusal."""
        try:
            if not isinstance(payload, dict):
                raise ValueError("The request body must be a JSON object.")
            exchange.model = messages_api.model_name(payload)
        except ValueError as error:
            return refuse(exchange, 400, "malformed_body", "model", str(error))
        try:
            exchange.invocation = self.models.invocation(exchange.model, exchange.team, anthropic=True)
        except UnknownModelError as error:
            return refuse(exchange, 400, "model_not_allowed", exchange.model[:200], str(error))
        refused = self._team_allows(exchange)
        if refused is not None:
            return refused
        if path == messages_api.COUNT_TOKENS and not exchange.invocation.route.count_tokens:
            return refuse(
                exchange, 501, "not_supported", "count_tokens",
                f"Bedrock cannot count tokens for {exchange.model} in {self.settings.vendor.region}; "
                "estimate them instead.",
            )  # fmt: skip
        return None

    def _team_allows(self, exchange: Exchange) -> Response | None:
        """The model allowlist of the caller's managed settings, enforced here too (a client may ignore it)."""
        invocation = exchange.invocation
        if invocation is None:
            return None
        route = invocation.route
        allowed = self.managed.allowed_models(exchange.team or "", exchange.groups)
        if allowed is None or any(name in allowed for name in (exchange.model, route.id, *route.aliases)):
            return None
        return refuse(
            exchange, 400, "model_not_allowed", exchange.model,
            f"{exchange.model} is not among the models your team's settings allow ({', '.join(allowed)}).",
        )  # fmt: skip

    async def _managed_settings(self, request: Request, exchange: Exchange) -> Response:
        """`GET /managed/settings`: the caller's Claude Code settings, by team and IdP groups, with an ETag."""
        if request.method != "GET":
            return refuse(exchange, 405, "method_not_allowed", request.method, "GET only.", headers={"allow": "GET"})
        if not self.managed.configured:
            return refuse(exchange, 404, "not_found", "managed_settings", "This gateway pushes no managed settings.")
        settings, checksum = self.managed.document(exchange.team or "", exchange.groups)
        etag = f'"{checksum}"'
        exchange.reason = checksum
        headers = {"etag": etag, "cache-control": "private, no-cache", "vary": "Authorization"}
        if self.signin_store is not None and exchange.user:
            try:
                await self.signin_store.note_settings(exchange.user, checksum)
            except StoreUnavailableError as error:  # the settings still go out: the note is for reporting
                log.warning("could not note the settings %s delivered to a person: %s", checksum, error)
        if request.headers.get("if-none-match") == etag:
            exchange.outcome = "not_modified"
            return Response(status_code=304, headers=headers)
        return JSONResponse({"uuid": checksum, "checksum": checksum, "settings": settings}, headers=headers)

    async def _check_rate(self, exchange: Exchange) -> Response | None:
        """The fleet-wide rate limits."""
        started = time.perf_counter()
        decision = await self.limits.check_rate(exchange.user or "", exchange.team or "", exchange.request_id)
        exchange.limits = {**decision.audit(), "check_ms": round((time.perf_counter() - started) * 1000, 3)}
        return None if decision.allowed else self._rate_refusal(exchange, decision)

    def _max_tokens(self, payload: Any, exchange: Exchange) -> int | str | None:
        """The output the request asks for at most (None: not said), or why it is refused."""
        if not isinstance(payload, dict):
            return "The request body must be a JSON object."
        config = payload.get("inferenceConfig")
        if isinstance(config, dict) and "maxTokens" in config:
            name, value = "inferenceConfig.maxTokens", config["maxTokens"]
        elif "max_tokens" in payload:
            name, value = "max_tokens", payload["max_tokens"]
        else:
            return None
        invocation = exchange.invocation
        ceiling = invocation.route.max_output_tokens if invocation else self.settings.limits.max_output_tokens
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= ceiling:
            return f"{name} must be an integer from 1 to {ceiling}, not {json.dumps(value)[:40]}."
        return value

    async def _limits(self, exchange: Exchange, max_tokens: int | None, body: bytes) -> Response | None:
        """The rate limits and the team's monthly budget in one check: the request's worst case is reserved (and
        settled at the end) when its team has a cap."""
        team = exchange.team or ""
        started = time.perf_counter()
        # The canary is billed to no team: nothing is held for it, whatever a budget table names.
        worst_case = None if exchange.canary else self._worst_case_usd(exchange, max_tokens, body)
        decision, exchange.reservation = await self.limits.admit(
            exchange.user or "", team, exchange.request_id, worst_case
        )
        exchange.limits = {**decision.audit(), "check_ms": round((time.perf_counter() - started) * 1000, 3)}
        if not decision.allowed:
            return self._rate_refusal(exchange, decision)
        reservation = exchange.reservation
        if reservation is not None and not reservation.allowed:
            if reservation.mode == "fail_closed":
                return refuse(
                    exchange,
                    503,
                    "limits_unavailable",
                    "redis",
                    "Budgets cannot be checked right now; retry shortly.",
                    headers={"retry-after": "1"},
                )
            return refuse(
                exchange, 402, "budget_exceeded", team,
                f"Team {team} has used ${reservation.spent_usd:,.2f} of its ${reservation.cap_usd:,.2f} budget "
                f"for {reservation.month}.",
                extra={
                    "team": team, "spent_usd": reservation.spent_usd, "cap_usd": reservation.cap_usd,
                    "month": reservation.month,
                },
            )  # fmt: skip
        return None

    def _rate_refusal(self, exchange: Exchange, decision: RateDecision) -> Response:
        if decision.mode == "fail_closed":
            return refuse(
                exchange, 503, "limits_unavailable", "redis",
                "The shared rate-limit counters are out of reach and this gateway fails closed; retry shortly.",
                headers={"retry-after": "1"},
            )  # fmt: skip
        limits = self.settings.limits
        allowed = {"user": limits.user_per_hour, "team": limits.team_per_hour, "org": limits.org_per_hour}[
            decision.limit or "user"
        ]
        frees_at = datetime.fromtimestamp(self.limits.clock() + decision.retry_after_seconds, UTC).isoformat(
            timespec="seconds"
        )
        who = {"user": exchange.user, "team": exchange.team, "org": "the organisation"}[decision.limit or "user"]
        return refuse(
            exchange, 429, "rate_limited", decision.limit,
            f"The {decision.limit} limit ({allowed} requests per rolling hour, {who}) is used up; "
            f"it frees up in {decision.retry_after_seconds} s, at {frees_at}.",
            headers={"retry-after": str(decision.retry_after_seconds)},
            extra={
                "limit": decision.limit, "retry_after_seconds": decision.retry_after_seconds,
                "frees_at": frees_at, "mode": decision.mode,
            },
        )  # fmt: skip

    def _worst_case_usd(self, exchange: Exchange, max_tokens: int | None, body: bytes) -> float:
        """What the request can cost at most (fewer than one token per 3 bytes of JSON, all of max_tokens)."""
        if exchange.pricing is None:
            return 0.0
        return exchange.pricing.worst_case(len(body), max_tokens or self.settings.limits.default_max_tokens)

    def _probe(self, identifier: str | None, request: Request, exchange: Exchange) -> Response:
        """Answer Claude Code's control-plane probes in Bedrock's shapes, listing only what this gateway serves."""
        try:
            if identifier is None:
                body = self.models.list_profiles(dict(request.query_params), exchange.team)
            else:
                body = self.models.get_profile(identifier, exchange.team)
        except ProbeError as error:
            return refuse(
                exchange, error.status, "probe_refused", error.error_type, error.message,
                headers={"x-amzn-errortype": error.error_type},
            )  # fmt: skip
        return JSONResponse(body)


# What a client says about itself (Claude Code: its session, and the agent a request comes from).
CLIENT_HEADERS = {
    "x-claude-code-session-id": "session_id",
    "x-claude-code-agent-id": "agent_id",
    "x-claude-code-parent-agent-id": "parent_agent_id",
    "user-agent": "user_agent",
}
CLIENT_VALUE_CHARS = 200


def client_ids(headers: Mapping[str, str]) -> dict[str, str]:
    """The client's own ids for the audit record, as printable text of bounded length (they are the client's word)."""
    return {
        name: "".join(c if c.isprintable() else "?" for c in headers[header][:CLIENT_VALUE_CHARS])
        for header, name in CLIENT_HEADERS.items()
        if headers.get(header)
    }


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused when a key repeats: parsers differ on which one wins, and what was checked must
    be what the vendor reads."""
    unique = dict(pairs)  # in C; only an object with a repeat looks for which key it is
    if len(unique) == len(pairs):
        return unique
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"the key {key!r} appears twice in one object")
        seen.add(key)
    raise AssertionError("unreachable: a repeated key is always found")
