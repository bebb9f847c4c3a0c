"""The availability canary (CloudWatch Synthetics, Python runtime): each run, `GET /healthz` and one tiny
authenticated request through the internal load balancer, as a client in the workload subnets sees them. Any
connection or TLS error, non-200 answer or malformed body fails the run, and a failed run counts against the SLI.

The load balancer's certificate names the gateway's domain, not the balancer's own DNS name, so the canary
connects to the balancer and speaks TLS and HTTP as that domain (SNI, the name verified, Host). Standard library
only: nothing is installed with a canary.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

# One output token: the request proves the whole path (auth, limits, policy, the vendor) for a fraction of a cent.
INVOKE_BODY = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 1,
    "messages": [{"role": "user", "content": "Reply with OK."}],
}


@dataclass(frozen=True)
class Target:
    host: str  # where to connect: the load balancer's DNS name
    server_name: str  # the name its certificate covers: sent as SNI and Host, and the name verified
    port: int = 443
    ca_file: str | None = None  # None: the system's trust store (an ACM public certificate)
    timeout_seconds: float = 20.0


class CheckFailedError(Exception):
    pass


def call(
    target: Target, method: str, path: str, body: bytes | None = None, token: str | None = None
) -> tuple[int, bytes]:
    """One HTTPS request to `target`; its status and body."""
    context = ssl.create_default_context(cafile=target.ca_file)
    raw = socket.create_connection((target.host, target.port), timeout=target.timeout_seconds)
    try:
        secure = context.wrap_socket(raw, server_hostname=target.server_name)
    except BaseException:
        raw.close()
        raise
    connection = http.client.HTTPConnection(target.server_name, target.port, timeout=target.timeout_seconds)
    connection.sock = secure  # HTTP over the socket opened above (HTTPConnection would connect by name)
    try:
        headers = {"content-type": "application/json", "user-agent": "aigw-availability-canary"}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def check_health(target: Target) -> None:
    status, body = call(target, "GET", "/healthz")
    if status != 200 or _json(body).get("status") != "ok":
        raise CheckFailedError(f"/healthz answered {status}: {body[:300]!r}")


def check_invoke(target: Target, token: str, model: str) -> None:
    path = f"/model/{quote(model, safe='')}/invoke"
    status, body = call(target, "POST", path, json.dumps(INVOKE_BODY).encode(), token)
    if status != 200:
        raise CheckFailedError(f"{path} answered {status}: {body[:300]!r}")
    answer = _json(body)
    if answer.get("type") != "message" or not isinstance(answer.get("content"), list):
        raise CheckFailedError(f"{path} answered 200 without a message: {body[:300]!r}")


def run(target: Target, token: str, model: str | None) -> None:
    """Both checks; without a model (a vendor endpoint service, not Bedrock), /healthz alone."""
    check_health(target)
    if model:
        check_invoke(target, token, model)


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError as error:
        raise CheckFailedError(f"not JSON: {body[:300]!r}") from error
    if not isinstance(value, dict):
        raise CheckFailedError(f"not a JSON object: {body[:300]!r}")
    return value


def handler(event: object, context: object) -> str:
    """The Synthetics entry point (`aigw_canary.handler`): settings from the environment, the token from Secrets
    Manager on every run (a replaced secret is used at once)."""
    import boto3  # in the runtime; imported here so the checks above import without it

    secret = boto3.client("secretsmanager").get_secret_value(SecretId=os.environ["AIGW_CANARY_TOKEN_SECRET_ID"])
    target = Target(host=os.environ["AIGW_LOAD_BALANCER"], server_name=os.environ["AIGW_DOMAIN"])
    run(target, secret["SecretString"], os.environ.get("AIGW_MODEL"))
    return "ok"
