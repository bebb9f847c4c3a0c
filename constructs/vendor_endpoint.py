"""The PrivateLink endpoint to the AI vendor: Amazon Bedrock or a vendor's endpoint service."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct
from constructs.model_access import ENDPOINT_POLICY_CHARS, check_size


class VendorEndpoint(Construct):
    """An interface endpoint that only the given clients may reach, on 443.

    `service` is an AWS service name (`bedrock-runtime`) or an endpoint service name
    (`com.amazonaws.vpce.<region>.vpce-svc-…`). With `model_statements` (Bedrock, see model_access), the
    endpoint policy allows exactly those invocations: nothing else passes the endpoint.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        clients: ec2.ISecurityGroup,
        service: str,
        model_statements: Sequence[iam.PolicyStatement] = (),
        private_dns: bool = True,
    ) -> None:
        super().__init__(scope, construct_id)
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description=f"PrivateLink to {service}: HTTPS from the proxy fleet only",
            allow_all_outbound=False,
        )
        endpoint_service: ec2.IInterfaceVpcEndpointService = (
            ec2.InterfaceVpcEndpointService(service, 443)
            if service.startswith("com.amazonaws.vpce.")
            else ec2.InterfaceVpcEndpointAwsService(service)
        )
        self.endpoint = ec2.InterfaceVpcEndpoint(
            self,
            "Endpoint",
            vpc=vpc,
            service=endpoint_service,
            subnets=subnets,
            security_groups=[self.security_group],
            private_dns_enabled=private_dns,
            open=False,
        )
        self.endpoint.connections.allow_default_port_from(clients, "HTTPS from the proxy fleet")
        check_size(model_statements, ENDPOINT_POLICY_CHARS, "the vendor endpoint's policy")
        for statement in model_statements:
            self.endpoint.add_to_policy(statement)
