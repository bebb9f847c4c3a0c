"""How the corporate network reaches the internal load balancer: a Transit Gateway attachment and routes.

The VPC still has no route to the internet: the only routes added send the configured client networks'
answers back through the company's Transit Gateway, from the subnets the load balancer lives in.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_ec2 as ec2
from constructs import Construct
from constructs.private_network import selected_subnets


class CorporateNetworkLink(Construct):
    """Attaches the VPC to a Transit Gateway (one interface per AZ in `attachment_subnets`) and routes each of
    `client_cidrs` from every subnet in `routed_subnets` to it. Exposes `attachment` and `routes`.

    The Transit Gateway's own route table (owned by the network team, often in another account) must route the
    VPC's range to this attachment, and accept it if auto-accept is off: see the README."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        transit_gateway_id: str,
        attachment_subnets: ec2.SubnetSelection,
        routed_subnets: ec2.SubnetSelection,
        client_cidrs: Sequence[str],
    ) -> None:
        super().__init__(scope, construct_id)
        if not client_cidrs:
            raise ValueError("CorporateNetworkLink needs at least one client CIDR to route")
        self.attachment = ec2.CfnTransitGatewayAttachment(
            self,
            "Attachment",
            transit_gateway_id=transit_gateway_id,
            vpc_id=vpc.vpc_id,
            subnet_ids=selected_subnets(vpc, attachment_subnets).subnet_ids,
        )
        self.routes: list[ec2.CfnRoute] = []
        for index, subnet in enumerate(selected_subnets(vpc, routed_subnets).subnets):
            for cidr in client_cidrs:
                route = ec2.CfnRoute(
                    self,
                    f"Route{index}-{cidr.replace('/', '-').replace('.', '-')}",
                    route_table_id=subnet.route_table.route_table_id,
                    destination_cidr_block=cidr,
                    transit_gateway_id=transit_gateway_id,
                )
                route.add_resource_dependency(
                    self.attachment
                )  # a route to a Transit Gateway needs its attachment first
                self.routes.append(route)
