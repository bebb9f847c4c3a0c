"""How the gateway reaches the IdP's keys from a VPC with no route out, as the whole app synthesizes it: the mirror,
its names in the bundled settings, the proxies' permissions and the VPC's Lambda endpoint; or, with `jwks_proxy`,
none of that and a way out to the proxy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import Stack
from aws_cdk.assertions import Template
from constructs.compliance import unacknowledged_findings
from constructs.gateway_bundle import GatewayBundle
from constructs.idp_keys_mirror import HANDLER

from config.render import gateway_settings
from tests.conftest import Synthesized, synthesize_dev_with


def proxy_statements(template: Template) -> dict[str, dict[str, Any]]:
    (policy,) = [
        p
        for p in template.find_resources("AWS::IAM::ManagedPolicy").values()
        if p["Properties"].get("Description") == "aigw proxy instances"
    ]
    return {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}


def gateway_settings_bundled(stack: Stack) -> Any:
    bundle = stack.node.find_child("Bundle")
    assert isinstance(bundle, GatewayBundle)
    return bundle.settings


def bundled_auth(stack: Stack) -> Any:
    return gateway_settings_bundled(stack).auth


def test_the_mirror_is_deployed_and_the_bundled_settings_name_it(each_environment: Synthesized) -> None:
    environment = each_environment.config.environment
    template = each_environment.template("Gateway")
    functions = template.find_resources("AWS::Lambda::Function", {"Properties": {"Handler": HANDLER}})
    ((function_id, function),) = functions.items()
    assert "VpcConfig" not in function["Properties"]
    assert function["Properties"]["Environment"]["Variables"]["ISSUER"] == each_environment.config.gateway.auth.issuer
    ((parameter_id, parameter),) = template.find_resources("AWS::SSM::Parameter").items()

    auth = bundled_auth(each_environment.stack("Gateway"))
    assert (
        (auth.jwks_parameter, auth.jwks_refresh_function)
        == (
            parameter["Properties"]["Name"],
            function["Properties"]["FunctionName"],
        )
        == (f"/aigw/{environment}/idp-jwks", f"aigw-{environment}-idp-keys")
    )
    # Only the bundle: settings rendered for a local run keep fetching jwks_url.
    assert gateway_settings(each_environment.config).auth.jwks_parameter is None

    statements = proxy_statements(template)
    assert statements["ReadIdpKeys"]["Action"] == "ssm:GetParameter"
    assert {"Ref": parameter_id} in statements["ReadIdpKeys"]["Resource"]["Fn::Join"][1]
    assert statements["AskForIdpKeysRefresh"] == {
        "Action": "lambda:InvokeFunction",
        "Effect": "Allow",
        "Resource": {"Fn::GetAtt": [function_id, "Arn"]},
        "Sid": "AskForIdpKeysRefresh",
    }


def test_the_vpc_reaches_lambda_through_an_endpoint(each_environment: Synthesized) -> None:
    region = each_environment.config.region
    endpoints = each_environment.template("Network").find_resources("AWS::EC2::VPCEndpoint").values()
    services = {json.dumps(e["Properties"]["ServiceName"]) for e in endpoints}
    assert json.dumps(f"com.amazonaws.{region}.lambda") in services
    assert json.dumps(f"com.amazonaws.{region}.ssm") in services


def test_with_a_corporate_proxy_there_is_no_mirror_and_the_proxy_port_is_open(tmp_path: Path) -> None:
    proxy = "http://proxy.corp.example:3128"

    def through_the_proxy(raw: dict[str, Any]) -> None:
        raw["gateway"]["auth"]["jwks_proxy"] = proxy
        raw["gateway"]["signin"]["oidc"]["proxy"] = proxy  # sign-in's code exchange has no function to go through

    app = synthesize_dev_with(tmp_path, through_the_proxy)
    assert unacknowledged_findings(tmp_path / "cdk.out") == []
    gateway = app.node.find_child("Gateway")
    assert isinstance(gateway, Stack)
    template = Template.from_stack(gateway)
    assert template.find_resources("AWS::Lambda::Function", {"Properties": {"Handler": HANDLER}}) == {}
    assert template.find_resources("AWS::SSM::Parameter") == {}
    auth = bundled_auth(gateway)
    assert (auth.jwks_proxy, auth.jwks_parameter, auth.jwks_refresh_function) == (
        "http://proxy.corp.example:3128",
        None,
        None,
    )
    assert not {"ReadIdpKeys", "AskForIdpKeysRefresh"} & set(proxy_statements(template))
    signin = gateway_settings_bundled(gateway).signin
    assert (signin.oidc.proxy, signin.oidc.exchange_function) == (proxy, None)
    network = app.node.find_child("Network")
    assert isinstance(network, Stack)
    egress = [
        rule
        for group in Template.from_stack(network).find_resources("AWS::EC2::SecurityGroup").values()
        for rule in group["Properties"].get("SecurityGroupEgress", [])
    ] + [
        rule["Properties"]
        for stack in (gateway, network)
        for rule in Template.from_stack(stack).find_resources("AWS::EC2::SecurityGroupEgress").values()
    ]
    assert any(rule.get("FromPort") == 3128 and rule.get("ToPort") == 3128 for rule in egress)
