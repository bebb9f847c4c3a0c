"""Sign-in and telemetry as the whole app synthesizes them: the KMS key that signs aigw's access tokens and what the
proxies may do with it, the code exchange through the out-of-VPC function, the bundled settings naming both, the
telemetry log group the agent ships to, and an internal load balancer Claude Code's /login accepts."""

from __future__ import annotations

import json
from typing import Any

from constructs.gateway_bundle import GatewayBundle
from constructs.idp_keys_mirror import HANDLER

from tests.conftest import Synthesized
from tests.stacks.test_gateway_stack_idp_keys import proxy_statements


def bundled(synthesized: Synthesized) -> Any:
    bundle = synthesized.stack("Gateway").node.find_child("Bundle")
    assert isinstance(bundle, GatewayBundle)
    return bundle.settings


def test_access_tokens_are_signed_by_an_asymmetric_kms_key_the_proxies_may_only_sign_with(
    each_environment: Synthesized,
) -> None:
    environment = each_environment.config.environment
    template = each_environment.template("Gateway")
    keys = template.find_resources("AWS::KMS::Key", {"Properties": {"KeySpec": "ECC_NIST_P256"}})
    ((key_id, key),) = keys.items()
    assert key["Properties"]["KeyUsage"] == "SIGN_VERIFY"
    assert "EnableKeyRotation" not in key["Properties"]  # KMS cannot rotate an asymmetric key (acknowledged)
    template.has_resource_properties(
        "AWS::KMS::Alias",
        {"AliasName": f"alias/aigw-{environment}-access-tokens", "TargetKeyId": {"Fn::GetAtt": [key_id, "Arn"]}},
    )
    statements = proxy_statements(template)
    assert statements["SignAccessTokens"]["Action"] == "kms:Sign"
    assert statements["SignAccessTokens"]["Resource"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert statements["SignAccessTokens"]["Condition"] == {
        "StringEquals": {"kms:SigningAlgorithm": "ECDSA_SHA_256", "kms:MessageType": "RAW"}
    }
    assert statements["ReadAccessTokenKey"]["Action"] == "kms:GetPublicKey"
    signing = bundled(each_environment).signin.signing
    assert (signing.kind, signing.kms_key_id) == ("kms", f"alias/aigw-{environment}-access-tokens")


def test_the_code_exchange_goes_out_through_the_mirror_function_to_the_configured_token_endpoint(
    each_environment: Synthesized,
) -> None:
    config = each_environment.config
    assert config.gateway.signin is not None
    template = each_environment.template("Gateway")
    ((_, function),) = template.find_resources("AWS::Lambda::Function", {"Properties": {"Handler": HANDLER}}).items()
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables["CODE_EXCHANGE_URL"] == config.gateway.signin.oidc.token_endpoint
    oidc = bundled(each_environment).signin.oidc
    assert (oidc.exchange_function, oidc.proxy) == (function["Properties"]["FunctionName"], None)
    # The gateway invokes it as it asks for a key refresh: that permission already names the function alone.
    assert proxy_statements(template)["AskForIdpKeysRefresh"]["Action"] == "lambda:InvokeFunction"


def test_telemetry_events_go_to_their_own_encrypted_log_group(each_environment: Synthesized) -> None:
    environment = each_environment.config.environment
    audit = each_environment.template("Audit")
    groups = audit.find_resources(
        "AWS::Logs::LogGroup", {"Properties": {"LogGroupName": f"/aigw-{environment}/telemetry"}}
    )
    ((_, group),) = groups.items()
    assert "KmsKeyId" in group["Properties"]
    assert group["Properties"]["RetentionInDays"] == each_environment.config.audit.hot_days
    gateway = each_environment.template_json("Gateway")
    ship = proxy_statements(each_environment.template("Gateway"))["ShipOwnLogs"]
    assert len(ship["Resource"]) == 3 and "TelemetryLogsLogGroup" in json.dumps(ship["Resource"])
    # The agent's configuration, in the instances' user data: the file, and the group (imported by name).
    user_data = json.dumps(gateway)
    assert "/var/log/aigw/telemetry-0.jsonl" in user_data and "TelemetryLogsLogGroup" in user_data


def test_the_load_balancer_publishes_only_ipv4_addresses(each_environment: Synthesized) -> None:
    # Claude Code's /login refuses a gateway host with any public address; an internal dual-stack ALB publishes
    # public-range AAAA records (Claude apps gateway on AWS guide).
    each_environment.template("Gateway").has_resource_properties(
        "AWS::ElasticLoadBalancingV2::LoadBalancer", {"Scheme": "internal", "IpAddressType": "ipv4"}
    )


def test_adoption_is_visible_from_day_one_by_team_against_seats(dev: Synthesized) -> None:
    seats = dev.config.licensed_seats
    audit = dev.template("Audit")
    (dashboard,) = audit.find_resources(
        "AWS::CloudWatch::Dashboard", {"Properties": {"DashboardName": "aigw-dev-cost-and-adoption"}}
    ).values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert "count_distinct(user) as weekly_active_users by team" in body
    assert all(f"| {team} | {count} |" in body for team, count in seats.items())
    assert all(f'MetricName=\\\\\\"{metric}\\\\\\"' in body for metric in ("ClaudeCodeSessions", "ClaudeCodeTokens"))
    queries = {
        q["Properties"]["Name"]: q["Properties"] for q in audit.find_resources("AWS::Logs::QueryDefinition").values()
    }
    share = "aigw-dev/claude-code-weekly-active-users-share-of-seats"
    assert f"count_distinct(user) * 100 / {sum(seats.values())}" in queries[share]["QueryString"]
    for team, count in seats.items():
        query = queries[f"{share}/{team}"]
        assert f'filter team = "{team}"' in query["QueryString"] and f"/ {count} " in query["QueryString"]
        assert "TelemetryLogs" in json.dumps(query["LogGroupNames"])
