"""PrivateNetwork alone, in a bare stack: the egress switch and the AZ guard."""

from __future__ import annotations

import pytest
from aws_cdk import aws_logs as logs
from aws_cdk.assertions import Template
from constructs.private_network import DEFAULT_INTERFACE_SERVICES, PrivateNetwork

from tests.conftest import BareStack


def network(stack: BareStack, *, egress: bool, azs: tuple[str, ...] = BareStack.AZS) -> Template:
    PrivateNetwork(
        stack,
        "Network",
        availability_zones=azs,
        cidr="10.0.0.0/16",
        egress=egress,
        flow_log_group=logs.LogGroup(stack, "FlowLogs"),
    )
    return Template.from_stack(stack)


def test_isolated_by_default(bare_stack: BareStack) -> None:
    template = network(bare_stack, egress=False)
    template.resource_count_is("AWS::EC2::InternetGateway", 0)
    template.resource_count_is("AWS::EC2::NatGateway", 0)
    template.resource_count_is("AWS::EC2::Subnet", 6)
    template.resource_count_is("AWS::EC2::VPCEndpoint", len(DEFAULT_INTERFACE_SERVICES) + 1)


def test_egress_adds_one_nat_per_az_and_public_subnets_without_public_ips(bare_stack: BareStack) -> None:
    template = network(bare_stack, egress=True)
    template.resource_count_is("AWS::EC2::InternetGateway", 1)
    template.resource_count_is("AWS::EC2::NatGateway", 3)
    subnets = template.find_resources("AWS::EC2::Subnet").values()
    assert len(subnets) == 9
    assert all(subnet["Properties"]["MapPublicIpOnLaunch"] is False for subnet in subnets)
    # The workload subnets route to their own AZ's NAT gateway.
    routes = [r["Properties"] for r in template.find_resources("AWS::EC2::Route").values()]
    assert len([r for r in routes if "NatGatewayId" in r]) == 3


def test_two_azs_is_the_minimum(bare_stack: BareStack) -> None:
    template = network(bare_stack, egress=False, azs=BareStack.AZS[:2])
    template.resource_count_is("AWS::EC2::Subnet", 4)
    with pytest.raises(ValueError, match="at least 2 availability zones"):
        network(BareStack(), egress=False, azs=BareStack.AZS[:1])
