"""NetworkStack as the whole app synthesizes it: private, multi-AZ, and only 443 where it must be."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Match

from tests.conftest import Synthesized

INTERFACE_SERVICES = {
    "ssm",
    "ssmmessages",
    "ec2messages",
    "logs",
    "monitoring",
    "kms",
    "sts",
    "secretsmanager",
    "autoscaling",
    "lambda",  # a gateway asks the IdP-keys function to refresh its mirror
    "cloudformation",  # cfn-signal
}


def resources(synthesized: Synthesized, resource_type: str) -> dict[str, Any]:
    return dict(synthesized.template("Network").find_resources(resource_type))


def test_subnets_cover_every_configured_az_in_both_tiers(each_environment: Synthesized) -> None:
    subnets = resources(each_environment, "AWS::EC2::Subnet").values()
    azs = [subnet["Properties"]["AvailabilityZone"] for subnet in subnets]
    configured = each_environment.config.availability_zones
    assert sorted(set(azs)) == sorted(configured)
    tiers: dict[str, list[str]] = {}
    for subnet in subnets:
        tags = {t["Key"]: t["Value"] for t in subnet["Properties"]["Tags"]}
        tiers.setdefault(tags["aws-cdk:subnet-name"], []).append(subnet["Properties"]["AvailabilityZone"])
    expected = {"Workload", "Endpoints"} | ({"Transit"} if each_environment.config.network.transit_gateway else set())
    assert set(tiers) == expected
    assert all(sorted(in_azs) == sorted(configured) for in_azs in tiers.values())  # one subnet per AZ per tier
    assert all(subnet["Properties"]["MapPublicIpOnLaunch"] is False for subnet in subnets)


def test_no_path_to_the_internet_by_default(each_environment: Synthesized) -> None:
    template = each_environment.template("Network")
    for resource_type in (
        "AWS::EC2::InternetGateway",
        "AWS::EC2::VPCGatewayAttachment",
        "AWS::EC2::NatGateway",
        "AWS::EC2::EIP",
        "AWS::EC2::EgressOnlyInternetGateway",
    ):
        template.resource_count_is(resource_type, 0)
    routes = resources(each_environment, "AWS::EC2::Route").values()
    assert not [r for r in routes if r["Properties"].get("DestinationCidrBlock") == "0.0.0.0/0"]


def test_vpc_cidr_and_dns_from_config(dev: Synthesized) -> None:
    dev.template("Network").has_resource_properties(
        "AWS::EC2::VPC",
        {"CidrBlock": str(dev.config.network.cidr), "EnableDnsHostnames": True, "EnableDnsSupport": True},
    )


def test_default_security_group_is_closed(dev: Synthesized) -> None:
    dev.template("Network").resource_count_is("Custom::VpcRestrictDefaultSG", 1)


def test_flow_logs_go_to_a_kms_encrypted_group_with_configured_retention(each_environment: Synthesized) -> None:
    template = each_environment.template("Network")
    config = each_environment.config
    template.has_resource_properties(
        "AWS::EC2::FlowLog", {"ResourceType": "VPC", "TrafficType": "ALL", "LogDestinationType": "cloud-watch-logs"}
    )
    groups = resources(each_environment, "AWS::Logs::LogGroup")
    (group,) = groups.values()
    assert group["Properties"]["RetentionInDays"] == config.network.flow_log_retention_days
    assert group["Properties"]["LogGroupName"] == f"/aigw-{config.environment}/vpc-flow-logs"
    # The project key lives in the audit stack, deployed first.
    assert "ProjectKey" in group["Properties"]["KmsKeyId"]["Fn::ImportValue"]
    assert group["DeletionPolicy"] == "RetainExceptOnCreate"
    assert resources(each_environment, "AWS::KMS::Key") == {}


def test_flow_log_role_has_only_a_managed_policy_scoped_to_the_group(dev: Synthesized) -> None:
    template = dev.template("Network")
    template.resource_count_is("AWS::IAM::Policy", 0)  # no inline policies
    (policy,) = resources(dev, "AWS::IAM::ManagedPolicy").values()
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert sorted(statement["Action"]) == ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
    assert statement["Resource"]["Fn::GetAtt"][1] == "Arn"
    template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [
                    Match.object_like(
                        {
                            "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
                            "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}},
                        }
                    )
                ]
            }
        },
    )


def test_s3_gateway_endpoint_serves_the_workload_subnets(dev: Synthesized) -> None:
    gateways = [
        e for e in resources(dev, "AWS::EC2::VPCEndpoint").values() if e["Properties"]["VpcEndpointType"] == "Gateway"
    ]
    (s3,) = gateways
    assert s3["Properties"]["ServiceName"]["Fn::Join"][1][-1] == ".s3"
    assert len(s3["Properties"]["RouteTableIds"]) == len(dev.config.availability_zones)


def interface_endpoints(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    """Service suffix -> endpoint properties, for the AWS API endpoints (not the vendor's)."""
    region = synthesized.config.region
    return {
        e["Properties"]["ServiceName"].removeprefix(f"com.amazonaws.{region}."): e["Properties"]
        for e in resources(synthesized, "AWS::EC2::VPCEndpoint").values()
        if e["Properties"]["VpcEndpointType"] == "Interface"
    }


def test_interface_endpoints_for_the_aws_apis_the_instances_need(dev: Synthesized) -> None:
    endpoints = interface_endpoints(dev)
    assert set(endpoints) == INTERFACE_SERVICES  # the vendor's is GatewayStack's (test_gateway_stack_models)
    for properties in endpoints.values():
        assert properties["PrivateDnsEnabled"] is True
        assert len(properties["SubnetIds"]) == len(dev.config.availability_zones)


def test_aws_endpoint_security_groups_admit_443_from_the_vpc_only(dev: Synthesized) -> None:
    groups = resources(dev, "AWS::EC2::SecurityGroup")
    endpoints = interface_endpoints(dev)
    for service in INTERFACE_SERVICES:
        (group_ref,) = endpoints[service]["SecurityGroupIds"]
        group = groups[group_ref["Fn::GetAtt"][0]]["Properties"]
        assert group["SecurityGroupIngress"] == [
            {
                "CidrIp": str(dev.config.network.cidr),
                "Description": "HTTPS from the VPC",
                "FromPort": 443,
                "IpProtocol": "tcp",
                "ToPort": 443,
            }
        ]
        assert [rule["CidrIp"] for rule in group["SecurityGroupEgress"]] == ["255.255.255.255/32"]  # no egress


def subnet_ids_of_tier(synthesized: Synthesized, tier: str) -> list[str]:
    return sorted(
        logical_id
        for logical_id, subnet in resources(synthesized, "AWS::EC2::Subnet").items()
        if {"Key": "aws-cdk:subnet-name", "Value": tier} in subnet["Properties"]["Tags"]
    )


def test_the_corporate_network_reaches_the_load_balancer_through_the_transit_gateway(prod: Synthesized) -> None:
    transit_gateway = prod.config.network.transit_gateway
    assert transit_gateway is not None
    (attachment,) = resources(prod, "AWS::EC2::TransitGatewayAttachment").values()
    assert attachment["Properties"]["TransitGatewayId"] == transit_gateway.id
    attached = sorted(ref["Ref"] for ref in attachment["Properties"]["SubnetIds"])
    assert attached == subnet_ids_of_tier(prod, "Transit") and len(attached) == len(prod.config.availability_zones)

    # Routes from the load balancer's (workload) subnets to every client network, through the Transit Gateway.
    associations = resources(prod, "AWS::EC2::SubnetRouteTableAssociation").values()
    table_of = {a["Properties"]["SubnetId"]["Ref"]: a["Properties"]["RouteTableId"]["Ref"] for a in associations}
    routes = {
        (r["Properties"]["RouteTableId"]["Ref"], r["Properties"]["DestinationCidrBlock"]): r
        for r in resources(prod, "AWS::EC2::Route").values()
        if "TransitGatewayId" in r["Properties"]
    }
    expected = {
        (table_of[subnet], str(cidr))
        for subnet in subnet_ids_of_tier(prod, "Workload")
        for cidr in prod.config.load_balancer.client_cidrs
    }
    assert set(routes) == expected
    for route in routes.values():
        assert route["Properties"]["TransitGatewayId"] == transit_gateway.id
        assert route["DependsOn"]  # created after the attachment, which a Transit Gateway route needs


def test_without_a_transit_gateway_nothing_is_attached(dev: Synthesized) -> None:
    assert dev.config.network.transit_gateway is None
    assert resources(dev, "AWS::EC2::TransitGatewayAttachment") == {}
    assert not [r for r in resources(dev, "AWS::EC2::Route").values() if "TransitGatewayId" in r["Properties"]]
