"""VendorEndpoint alone: Bedrock with a pinned policy, or a vendor's endpoint service."""

from __future__ import annotations

import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Match, Template
from constructs.model_access import invoke_statements
from constructs.vendor_endpoint import VendorEndpoint

from config import load_config
from tests.conftest import BareStack

VENDOR_SERVICE = "com.amazonaws.vpce.eu-west-1.vpce-svc-0123456789abcdef0"
ROUTE = load_config("dev").models[0]


def endpoint(stack: BareStack, **props: object) -> Template:
    vpc = ec2.Vpc(stack, "Vpc", availability_zones=list(BareStack.AZS), nat_gateways=0)
    clients = ec2.SecurityGroup(stack, "Clients", vpc=vpc, allow_all_outbound=False)
    VendorEndpoint(
        stack,
        "Vendor",
        vpc=vpc,
        subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
        clients=clients,
        **props,  # type: ignore[arg-type]
    )
    return Template.from_stack(stack)


def test_vendor_endpoint_service_is_used_as_is_without_a_policy(bare_stack: BareStack) -> None:
    template = endpoint(bare_stack, service=VENDOR_SERVICE, private_dns=False)
    template.has_resource_properties(
        "AWS::EC2::VPCEndpoint",
        {"ServiceName": VENDOR_SERVICE, "PrivateDnsEnabled": False, "PolicyDocument": Match.absent()},
    )


def test_bedrock_gets_the_regional_service_and_a_policy_naming_the_models(bare_stack: BareStack) -> None:
    statements = invoke_statements(ROUTE, [], endpoint_account="123456789012")
    template = endpoint(bare_stack, service="bedrock-runtime", model_statements=statements)
    account = {"aws:PrincipalAccount": "123456789012"}
    template.has_resource_properties(
        "AWS::EC2::VPCEndpoint",
        {
            "ServiceName": "com.amazonaws.eu-west-1.bedrock-runtime",
            "PrivateDnsEnabled": True,
            "PolicyDocument": {
                "Statement": [
                    Match.object_like({"Resource": ROUTE.arn, "Condition": {"StringEquals": account}}),
                    Match.object_like(
                        {
                            "Resource": list(ROUTE.model_arns),
                            "Condition": {"StringEquals": {**account, "bedrock:InferenceProfileArn": [ROUTE.arn]}},
                        }
                    ),
                ]
            },
        },
    )


def test_a_policy_over_iams_size_limit_stops_synth(bare_stack: BareStack) -> None:
    teams = [f"arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/team{n:08d}" for n in range(120)]
    with pytest.raises(
        ValueError, match=r"the vendor endpoint's policy would be about [\d,]+ characters, over IAM's 20,480"
    ):
        endpoint(bare_stack, service="bedrock-runtime", model_statements=invoke_statements(ROUTE, teams))


def test_only_the_clients_group_may_connect(bare_stack: BareStack) -> None:
    template = endpoint(bare_stack, service=VENDOR_SERVICE)
    (rule,) = template.find_resources("AWS::EC2::SecurityGroupIngress").values()
    assert rule["Properties"]["FromPort"] == rule["Properties"]["ToPort"] == 443
    assert rule["Properties"]["SourceSecurityGroupId"]["Fn::GetAtt"][0].startswith("Clients")
