"""IdP-keys function: mirrors the company IdP's public signing keys into an SSM parameter from outside the VPC, so
the gateway's instances, which have no route to the internet, read them through the VPC's SSM endpoint.

Runs every few minutes (EventBridge) and on demand: a gateway that sees a token signed with a kid it does not know
invokes it asynchronously with {"source": "aigw.gateway", "kid": "<kid>"}. Each run that fetches reads the IdP's
discovery document, then the key set it names, and writes the trimmed set only if it changed.

It is also the gateway's one way out to the IdP's token endpoint for a sign-in: invoked synchronously with
{"action": "exchange_code", "form": {...}}, it posts the form to CODE_EXCHANGE_URL (never to a URL the caller names)
and answers {"status", "body"}. The form holds a one-time code and, for a confidential client, its secret: it is
passed on, never logged or kept.

Environment variables (read once per cold start; a bad value fails the start with the variable's name):

    ISSUER                required  the IdP's issuer, exactly as in its tokens' `iss` and its discovery document
    PARAMETER_NAME        required  the String parameter the keys are written to (see idp_keys.py for its value)
    DISCOVERY_URL         ISSUER + /.well-known/openid-configuration
    CODE_EXCHANGE_URL     (none)    the IdP's token endpoint, for sign-in's code exchange (off without it)
    MIN_REFRESH_SECONDS   60        on-demand runs fetch at most this often
    HTTP_TIMEOUT_SECONDS  5         each request to the IdP

AWS calls (for the function's role): ssm:GetParameter and ssm:PutParameter on the parameter.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from idp_keys import changed, decide, jwks_uri_from, parse_stored, public_signing_keys, render, tier_for
from idp_keys_io import fetch_json, post_form, read_parameter, write_parameter
from idp_keys_settings import Settings

MAX_LOGGED_KID = 128  # the kid comes from a client's token: logged, but not at any length


def post_form_elsewhere(url: str, form: dict[str, str]) -> tuple[int, str]:
    raise RuntimeError(f"no way to post to {url} here")


@dataclass(frozen=True)
class Clients:
    ssm: Any
    fetch_json: Callable[[str], Any]
    post_form: Callable[[str, dict[str, str]], tuple[int, str]] = post_form_elsewhere

    @classmethod
    def default(cls, settings: Settings) -> Clients:
        import boto3

        return cls(
            ssm=boto3.client("ssm"),
            fetch_json=functools.partial(fetch_json, timeout=settings.http_timeout_seconds),
            post_form=functools.partial(post_form, timeout=settings.http_timeout_seconds),
        )


@dataclass
class Memory:
    """What a warm container remembers between runs: its last fetch from the IdP, so that on-demand runs stay
    rate-limited while the keys (and so the parameter) do not change."""

    last_fetch: datetime | None = None


@functools.cache
def _runtime() -> tuple[Settings, Clients, Memory]:
    settings = Settings.from_env()
    return settings, Clients.default(settings), Memory()


def handler(event: Mapping[str, Any] | None, context: object) -> dict[str, object]:
    settings, clients, memory = _runtime()
    event = event if isinstance(event, Mapping) else {}
    if event.get("action") == "exchange_code":
        return exchange_code(settings, clients, event.get("form"))
    return run(settings, clients, event, datetime.now(UTC), memory)


def exchange_code(settings: Settings, clients: Clients, form: object) -> dict[str, object]:
    """Sign-in's code exchange at the configured token endpoint; logged without the form (a code, maybe a secret)."""
    if settings.token_endpoint is None:
        return _refused(501, "unsupported", "no CODE_EXCHANGE_URL is configured")
    if not isinstance(form, Mapping) or form.get("grant_type") != "authorization_code":
        return _refused(400, "invalid_request", "only an authorization-code grant is passed on")
    fields = {str(k): str(v) for k, v in form.items()}
    try:
        status, body = clients.post_form(settings.token_endpoint, fields)
    except Exception as error:
        log("code_exchange_failed", level="error", error=type(error).__name__)
        return _refused(502, "temporarily_unavailable", "the IdP could not be reached")
    log("code_exchanged", level="info", status=status)
    return {"status": status, "body": body}


def _refused(status: int, error: str, description: str) -> dict[str, object]:
    return {"status": status, "body": json.dumps({"error": error, "error_description": description})}


def run(
    settings: Settings, clients: Clients, event: Mapping[str, Any], now: datetime, memory: Memory
) -> dict[str, object]:
    stored = parse_stored(read_parameter(clients.ssm, settings.parameter_name))
    decision = decide(event, stored, now, settings.min_refresh, memory.last_fetch)
    kid = event.get("kid")
    summary: dict[str, object] = {
        "reason": decision.reason,
        "asked_kid": kid[:MAX_LOGGED_KID] if isinstance(kid, str) else None,
    }
    if not decision.fetch:
        return _finish("skipped", summary)
    memory.last_fetch = now  # a failed fetch counts too: an unreachable IdP is not asked again at once
    try:
        jwks_uri = jwks_uri_from(clients.fetch_json(settings.discovery_url), settings.issuer)
        keys = public_signing_keys(clients.fetch_json(jwks_uri))
    except Exception as error:
        log("refresh_failed", level="error", error=f"{type(error).__name__}: {error}", **summary)
        raise
    summary["kids"] = [key.get("kid") for key in keys]
    if not changed(stored, keys):
        return _finish("unchanged", summary)
    value = render(keys, issuer=settings.issuer, jwks_uri=jwks_uri, fetched_at=now)
    write_parameter(clients.ssm, settings.parameter_name, value)
    return _finish("written", {**summary, "bytes": len(value.encode()), "tier": tier_for(value)})


def _finish(outcome: str, summary: dict[str, object]) -> dict[str, object]:
    result = {"outcome": outcome, **summary}
    log("run_finished", level="info", **result)
    return result


def log(event: str, /, *, level: str = "info", **fields: object) -> None:
    """One JSON object per line on stdout: Lambda sends each line to CloudWatch Logs as one event."""
    record = {"time": datetime.now(UTC).isoformat(), "level": level, "event": event, **fields}
    print(json.dumps(record, default=str), flush=True)
