"""The internal Application Load Balancer in front of the proxy fleet: HTTPS only, corporate networks only."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from constructs import Construct
from constructs.compliance import CONTROL_TOWER, NIST_R5, PCI_DSS, acknowledge
from constructs.log_delivery_bucket import LogDeliveryBucket

HTTPS = 443


class GatewayLoadBalancer(Construct):
    """Internal ALB across the fleet's AZs. `target_group` is what the fleet registers with.

    Streams can run up to the gateway's stream cap: the idle timeout and the deregistration delay are
    `stream_seconds` so neither cuts an answer short (a leaving instance drains for that long).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        certificate_arn: str,
        client_cidrs: Sequence[str],
        target_port: int,
        stream_seconds: int,
        deletion_protection: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        if not client_cidrs:
            raise ValueError("GatewayLoadBalancer needs at least one client CIDR (the corporate networks)")
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="aigw load balancer: HTTPS from corporate networks",
            allow_all_outbound=False,
        )
        for cidr in client_cidrs:
            self.security_group.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(HTTPS), f"HTTPS from {cidr}")

        self.access_logs = LogDeliveryBucket(
            self, "AccessLogs", what="the load balancer's access logs", retention_days=365
        ).bucket

        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=vpc,
            vpc_subnets=subnets,
            internet_facing=False,
            # IPv4 only: Claude Code's /login refuses a gateway host with any public address, and an internal
            # dual-stack load balancer publishes public-range AAAA records.
            ip_address_type=elbv2.IpAddressType.IPV4,
            security_group=self.security_group,
            drop_invalid_header_fields=True,
            desync_mitigation_mode=elbv2.DesyncMitigationMode.STRICTEST,
            deletion_protection=deletion_protection,
            idle_timeout=Duration.seconds(stream_seconds),
        )
        self.load_balancer.log_access_logs(self.access_logs)
        acknowledge(
            self.load_balancer,
            f"{PCI_DSS}-ALBWAFEnabled",
            f"{NIST_R5}-ALBWAFEnabled",
            reason="Internal load balancer reachable only from the configured corporate CIDRs; the gateway "
            "authenticates every request (JWT) and applies the RE2 content policy. AWS's managed WAF rule "
            "groups would refuse the large bodies coding assistants send (SizeRestrictions_BODY is 8 KB).",
        )
        if not deletion_protection:
            acknowledge(
                self.load_balancer,
                f"{NIST_R5}-ELBDeletionProtectionEnabled",
                f"{CONTROL_TOWER}::elbv2_deletion_protection_enabled_check",
                reason="Off until the environment's first deploy has succeeded: a protected load balancer cannot be "
                "deleted, so a failed first create could not be rolled back. load_balancer.deletion_protection "
                "turns it on afterwards (README, 'Deploying to a real account'); `make preflight` warns while it is "
                "off.",
            )
        self.target_group = elbv2.ApplicationTargetGroup(
            self,
            "Targets",
            vpc=vpc,
            port=target_port,
            protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.INSTANCE,
            deregistration_delay=Duration.seconds(stream_seconds),
            health_check=elbv2.HealthCheck(
                path="/healthz",
                healthy_http_codes="200",
                interval=Duration.seconds(10),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
        )
        self.listener = self.load_balancer.add_listener(
            "Https",
            port=HTTPS,
            protocol=elbv2.ApplicationProtocol.HTTPS,
            certificates=[elbv2.ListenerCertificate.from_arn(certificate_arn)],
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
            default_target_groups=[self.target_group],
            open=False,
        )
