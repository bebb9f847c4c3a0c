"""Alarms on the proxy fleet, all to the alerts topic: the symptoms of the field report's incidents."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_sns as sns
from constructs import Construct
from constructs.alerts_topic import topic_alarm
from constructs.proxy_fleet import root_volume_used_percent

MINUTE = Duration.minutes(1)


class FleetAlarms(Construct):
    """Unhealthy hosts per AZ, fewer instances in service than the minimum, the 5xx rate, p99 above
    8 s (slow answers were a ticket category), the gateway's breaker open, Redis out of reach, and an
    instance's root volume filling up (before the instance fails its health checks and is replaced)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        group: autoscaling.AutoScalingGroup,
        load_balancer: elbv2.ApplicationLoadBalancer,
        target_group: elbv2.ApplicationTargetGroup,
        availability_zones: Sequence[str],
        min_instances: int,
        namespace: str,
        environment: str,
        topic: sns.ITopic,
        slow_seconds: float = 8,
        error_rate_percent: float = 1,
        disk_used_percent: float = 80,
    ) -> None:
        super().__init__(scope, construct_id)
        alarm = functools.partial(topic_alarm, self, topic=topic)
        for az in availability_zones:
            unhealthy = cloudwatch.Metric(
                namespace="AWS/ApplicationELB",
                metric_name="UnHealthyHostCount",
                dimensions_map={
                    "LoadBalancer": load_balancer.load_balancer_full_name,
                    "TargetGroup": target_group.target_group_full_name,
                    "AvailabilityZone": az,
                },
                statistic="Maximum",
                period=MINUTE,
            )
            alarm(
                f"UnhealthyHosts-{az}",
                runbook="unhealthy-hosts",
                metric=unhealthy,
                threshold=1,
                description=f"unhealthy gateway instances in {az}",
                periods=3,
            )
        in_service = cloudwatch.Metric(
            namespace="AWS/AutoScaling",
            metric_name="GroupInServiceInstances",
            dimensions_map={"AutoScalingGroupName": group.auto_scaling_group_name},
            statistic="Minimum",
            period=MINUTE,
        )
        alarm(
            "InServiceBelowMinimum",
            runbook="in-service-below-minimum",
            metric=in_service,
            threshold=min_instances,
            description=f"fewer than {min_instances} instances in service",
            periods=3,
            comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            missing=cloudwatch.TreatMissingData.BREACHING,
        )
        error_rate = cloudwatch.MathExpression(
            # Guarded: no requests is a 0 % error rate, not a division by zero (CloudWatch's documented IF form).
            expression="IF(requests > 0, 100 * (elb5xx + target5xx) / requests, 0)",
            using_metrics={
                "elb5xx": load_balancer.metrics.http_code_elb(elbv2.HttpCodeElb.ELB_5XX_COUNT, statistic="Sum"),
                "target5xx": target_group.metrics.http_code_target(
                    elbv2.HttpCodeTarget.TARGET_5XX_COUNT, statistic="Sum"
                ),
                "requests": load_balancer.metrics.request_count(statistic="Sum"),
            },
            period=Duration.minutes(5),
            label="5xx rate (%)",
        )
        alarm(
            "ErrorRate",
            runbook="error-rate",
            metric=error_rate,
            threshold=error_rate_percent,
            description=f"more than {error_rate_percent}% of answers are 5xx",
            periods=2,
        )
        p99 = target_group.metrics.target_response_time(statistic="p99", period=MINUTE)
        alarm(
            "SlowAnswers",
            runbook="slow-answers",
            metric=p99,
            threshold=slow_seconds,
            description=f"p99 response time above {slow_seconds:g} s",
            periods=5,
        )
        gateway = {"Environment": environment}
        breaker = cloudwatch.Metric(
            namespace=namespace, metric_name="BreakerOpen", dimensions_map=gateway, statistic="Maximum", period=MINUTE
        )
        alarm(
            "BreakerOpen",
            runbook="breaker-open",
            metric=breaker,
            threshold=1,
            description="the gateway's circuit breaker is open: the AI vendor is degraded",
        )
        redis_down = cloudwatch.MathExpression(
            expression="failopen + closed",
            using_metrics={
                "failopen": cloudwatch.Metric(
                    namespace=namespace,
                    metric_name="LimitFailOpen",
                    dimensions_map=gateway,
                    statistic="Sum",
                    period=MINUTE,
                ),
                "closed": cloudwatch.Metric(
                    namespace=namespace, metric_name="Rejections", statistic="Sum", period=MINUTE,
                    dimensions_map={**gateway, "Outcome": "limits_unavailable"},
                ),
            },
            period=MINUTE,
            label="decisions without the shared counters",
        )  # fmt: skip
        alarm(
            "RedisUnreachable",
            runbook="redis-unreachable",
            metric=redis_down,
            threshold=1,
            description="the gateway cannot reach Redis: limits run per instance or refuse",
        )
        alarm(
            "RootVolumeFilling",
            runbook="root-volume-filling",
            metric=root_volume_used_percent(group.auto_scaling_group_name),
            threshold=disk_used_percent,
            description=f"an instance's root volume is more than {disk_used_percent:g}% full",
            periods=2,
        )
        self.alarms = [child for child in self.node.children if isinstance(child, cloudwatch.Alarm)]
