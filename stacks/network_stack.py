"""NetworkStack: the private VPC, its flow logs and endpoints, and the proxies' security group."""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from constructs import Construct
from constructs.corporate_network_link import CorporateNetworkLink
from constructs.encrypted_log_group import EncryptedLogGroup
from constructs.private_network import PrivateNetwork
from constructs.project_key import ProjectKey

from config import AigwConfig
from stacks.environment_stack import EnvironmentStack


class NetworkStack(EnvironmentStack):
    def __init__(self, scope: Construct, construct_id: str, *, config: AigwConfig, key: ProjectKey) -> None:
        super().__init__(
            scope,
            construct_id,
            config=config,
            description="aigw network: private multi-AZ VPC, its AWS service endpoints and flow logs",
        )
        prefix = f"aigw-{config.environment}"

        self.flow_logs = EncryptedLogGroup(
            self,
            "FlowLogs",
            log_group_name=f"/{prefix}/vpc-flow-logs",
            retention_days=config.network.flow_log_retention_days,
            key=key,
        )
        self.network = PrivateNetwork(
            self,
            "Network",
            availability_zones=config.availability_zones,
            cidr=str(config.network.cidr),
            egress=config.network.egress,
            transit_subnets=config.network.transit_gateway is not None,
            flow_log_group=self.flow_logs.log_group,
        )
        transit_gateway = config.network.transit_gateway
        self.corporate_link = (
            CorporateNetworkLink(
                self,
                "CorporateNetwork",
                vpc=self.network.vpc,
                transit_gateway_id=transit_gateway.id,
                attachment_subnets=self.network.transit_subnets,
                # The load balancer's subnets: its answers go back to the clients through the Transit Gateway.
                routed_subnets=self.network.workload_subnets,
                client_cidrs=[str(cidr) for cidr in config.load_balancer.client_cidrs],
            )
            if transit_gateway is not None and self.network.transit_subnets is not None
            else None
        )
        # The proxies' group lives here so the endpoints can name it; GatewayStack attaches it to the fleet.
        self.proxy_security_group = ec2.SecurityGroup(
            self,
            "ProxySecurityGroup",
            vpc=self.network.vpc,
            description=f"{prefix} proxy fleet",
            allow_all_outbound=False,
        )
