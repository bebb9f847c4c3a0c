"""Invoking exactly the configured Bedrock models: what the proxies' role and the vendor endpoint's policy allow.

A cross-Region inference profile is authorised twice: against the profile, and against the model in whichever
Region the request lands in, where Bedrock sets `bedrock:InferenceProfileArn` (Bedrock user guide, "Prerequisites
for inference profiles"). So each model gets two statements: its profiles (the shared one and every team's), and
the model in every Region they route to, only through those profiles. A model still invocable on demand by its
own id is named as such. Where Bedrock counts tokens for a model, CountTokens names the model in this Region.
Never '*'.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from aws_cdk import aws_iam as iam

from gateway.settings import ModelRoute

# Converse and ConverseStream are authorised as InvokeModel and InvokeModelWithResponseStream.
BEDROCK_INVOKE_ACTIONS = ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream")
# IAM's limits on a customer-managed policy and on a VPC endpoint's policy (characters, whitespace aside).
MANAGED_POLICY_CHARS = 6_144
ENDPOINT_POLICY_CHARS = 20_480
# A team profile's ARN is a token at synth: this many characters once deployed (the id is 12).
PROFILE_ARN_CHARS = 100
UNRESOLVED = re.compile(r"\$\{Token\[[^\]]+\]\}")  # how CDK writes a deploy-time value into a string


def statement_id(route: ModelRoute, suffix: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", route.name.title()) + suffix


def invoke_statements(
    route: ModelRoute, team_profile_arns: Sequence[str], *, endpoint_account: str | None = None
) -> list[iam.PolicyStatement]:
    """Invoke `route`'s model through its shared profile and the teams' own, and nothing else. With
    `endpoint_account`, as a VPC endpoint's policy: any principal of that account."""
    principals = [iam.AnyPrincipal()] if endpoint_account else None
    account = {"aws:PrincipalAccount": endpoint_account} if endpoint_account else {}
    profiles = [route.arn, *team_profile_arns]
    statements = [
        iam.PolicyStatement(
            sid=statement_id(route, "Profiles"),
            principals=principals,
            actions=list(BEDROCK_INVOKE_ACTIONS),
            resources=profiles,
            conditions={"StringEquals": account} if account else None,
        )
    ]
    if route.kind == "inference-profile":
        statements.append(
            iam.PolicyStatement(
                sid=statement_id(route, "ThroughProfiles"),
                principals=principals,
                actions=list(BEDROCK_INVOKE_ACTIONS),
                resources=list(route.model_arns),
                conditions={"StringEquals": {**account, "bedrock:InferenceProfileArn": profiles}},
            )
        )
    if route.count_tokens:  # counted against the model itself, never through a profile
        statements.append(
            iam.PolicyStatement(
                sid=statement_id(route, "CountTokens"),
                principals=principals,
                actions=["bedrock:CountTokens"],
                resources=[route.home_model_arn],
                conditions={"StringEquals": account} if account else None,
            )
        )
    return statements


def deployed_length(text: str, token_chars: int) -> int:
    """How long `text` will be once deployed, counting each deploy-time value (token) in it as `token_chars`."""
    return len(UNRESOLVED.sub("x" * token_chars, text).encode())


def check_size(statements: Sequence[iam.PolicyStatement], limit: int, what: str) -> None:
    """Refuse at synth a policy IAM would refuse at deploy, counting each token as a deployed ARN."""
    rendered = json.dumps([statement.to_json() for statement in statements], separators=(",", ":"))
    size = deployed_length(rendered, PROFILE_ARN_CHARS)
    if size > limit:
        raise ValueError(
            f"{what} would be about {size:,} characters, over IAM's {limit:,}: configure fewer teams or models"
        )
