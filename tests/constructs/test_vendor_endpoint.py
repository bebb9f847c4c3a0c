"""VendorEndpoint alone: Bedrock with a pinned policy, or a vendor's endpoint service."""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Match, Template
from constructs.vendor_endpoint import VendorEndpoint

from tests.conftest import BareStack

VENDOR_SERVICE = "com.amazonaws.vpce.eu-west-1.vpce-svc-0123456789abcdef0"
MODEL = "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0"


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
    template = endpoint(bare_stack, service="bedrock-runtime", model_arns=[MODEL])
    template.has_resource_properties(
        "AWS::EC2::VPCEndpoint",
        {
            "ServiceName": "com.amazonaws.eu-west-1.bedrock-runtime",
            "PrivateDnsEnabled": True,
            "PolicyDocument": {
                "Statement": [
                    Match.object_like(
                        {"Resource": MODEL, "Condition": {"StringEquals": {"aws:PrincipalAccount": "123456789012"}}}
                    )
                ]
            },
        },
    )


def test_only_the_clients_group_may_connect(bare_stack: BareStack) -> None:
    template = endpoint(bare_stack, service=VENDOR_SERVICE)
    (rule,) = template.find_resources("AWS::EC2::SecurityGroupIngress").values()
    assert rule["Properties"]["FromPort"] == rule["Properties"]["ToPort"] == 443
    assert rule["Properties"]["SourceSecurityGroupId"]["Fn::GetAtt"][0].startswith("Clients")
