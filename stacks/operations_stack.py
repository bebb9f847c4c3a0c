"""OperationsStack: the service as on-call sees it. The availability SLO measured from the client's side (the
load balancer's answers and a canary inside the VPC), its burn-rate alerts, and the canary's own health. Deployed
last: it reads the gateway stack's load balancer and the canary's token."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from constructs import Construct
from constructs.alerts_topic import topic_alarm
from constructs.availability_canary import NAMESPACE, AvailabilityCanary
from constructs.availability_slo import AvailabilitySlo
from constructs.service_dashboard import ServiceDashboard

from config import AigwConfig
from stacks.audit_stack import AuditStack
from stacks.environment_stack import EnvironmentStack
from stacks.gateway_stack import GatewayStack
from stacks.network_stack import NetworkStack

HTTPS = 443


class OperationsStack(EnvironmentStack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AigwConfig,
        audit: AuditStack,
        network: NetworkStack,
        gateway: GatewayStack,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            config=config,
            description="aigw operations: availability SLO and burn-rate alerts, the availability canary, the service "
            "dashboard",
        )
        operations, balancer = config.operations, gateway.load_balancer
        self.canary = None
        if operations.canary.enabled and gateway.canary_token is not None:
            # Named, so the project key's policy can name it without the audit stack depending on this one.
            role_name = f"aigw-{config.environment}-canary-{config.region}"
            self.canary = AvailabilityCanary(
                self,
                "Canary",
                name=config.canary_name,
                vpc=network.network.vpc,
                subnets=network.network.workload_subnets,
                load_balancer_dns=balancer.load_balancer.load_balancer_dns_name,
                domain_name=config.load_balancer.domain_name,
                model=config.canary_model,
                token=gateway.canary_token,
                key=audit.key.key,
                role_name=role_name,
                access_logs=balancer.access_logs,
                runtime=operations.canary.runtime,
                every_minutes=operations.canary.every_minutes,
                retention_days=config.audit.hot_days,
            )
            role_arn = self.format_arn(service="iam", region="", resource="role", resource_name=role_name)
            audit.key.allow_role_through_service("CanaryReadsItsToken", role_arn, "secretsmanager", ["kms:Decrypt"])
            audit.key.allow_role_through_service(
                "CanaryWritesArtifacts", role_arn, "s3", ["kms:Decrypt", "kms:GenerateDataKey"]
            )
            balancer.security_group.add_ingress_rule(
                self.canary.security_group, ec2.Port.tcp(HTTPS), "HTTPS from the availability canary", remote_rule=True
            )
            self._canary_not_running(audit, operations.canary.every_minutes)
        self.slo = AvailabilitySlo(
            self,
            "Slo",
            load_balancer=balancer.load_balancer,
            canary_name=self.canary.name if self.canary else None,
            target_percent=operations.slo.target_percent,
            topic=audit.alerts.topic,
        )
        self.dashboard = ServiceDashboard(
            self,
            "ServiceDashboard",
            dashboard_name=f"aigw-{config.environment}-service",
            slo=self.slo,
            window_days=operations.slo.window_days,
            load_balancer=balancer.load_balancer,
            target_group=balancer.target_group,
            availability_zones=config.availability_zones,
            group=gateway.fleet.group,
            redis_replication_group=gateway.counters.replication_group.ref,
            audit_log_group=audit.audit_logs.log_group,
            metrics_namespace=config.gateway.metrics_namespace,
            environment=config.environment,
            runbook_url=operations.runbook_url,
        )

    def _canary_not_running(self, audit: AuditStack, every_minutes: int) -> None:
        """A canary that cannot run publishes nothing, and the SLI would read that as no failures."""
        assert self.canary is not None
        window = max(5, 3 * every_minutes)
        runs = cloudwatch.Metric(
            namespace=NAMESPACE,
            metric_name="SuccessPercent",
            dimensions_map={"CanaryName": self.canary.name},
            statistic="SampleCount",
            period=Duration.minutes(window),
        )
        topic_alarm(
            self,
            "CanaryNotRunning",
            topic=audit.alerts.topic,
            metric=runs,
            threshold=1,
            comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            missing=cloudwatch.TreatMissingData.BREACHING,
            description=f"the availability canary has not run for {window} minutes: the SLI sees only the balancer",
            runbook="canary-not-running",
        )
