"""The service dashboard on-call opens first: the SLI against the SLO and the error budget left, then what moves
them (latency by model, the breaker, 5xx, healthy targets by AZ, Redis, policy blocks, refusals). Every widget says
what it counts and in which unit."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_logs as logs
from constructs import Construct
from constructs.availability_slo import AvailabilitySlo
from constructs.dashboard_widgets import graph

from config.slo import BURN_RATE_ALERTS, error_budget

MINUTE, FIVE_MINUTES, HOUR = Duration.minutes(1), Duration.minutes(5), Duration.hours(1)


class ServiceDashboard(Construct):
    """Exposes `dashboard`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dashboard_name: str,
        slo: AvailabilitySlo,
        window_days: int,
        load_balancer: elbv2.ApplicationLoadBalancer,
        target_group: elbv2.ApplicationTargetGroup,
        availability_zones: Sequence[str],
        group: autoscaling.AutoScalingGroup,
        redis_replication_group: str,
        audit_log_group: logs.ILogGroup,
        metrics_namespace: str,
        environment: str,
        runbook_url: str,
    ) -> None:
        super().__init__(scope, construct_id)
        target = slo.target_percent
        budget = error_budget(target)

        def sli(period: Duration, label: str) -> cloudwatch.MathExpression:
            return cloudwatch.MathExpression(
                expression="100 * (1 - e)", using_metrics={"e": slo.error_rate(period)}, period=period, label=label
            )

        def gateway_metric(name: str, statistic: str, label: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=metrics_namespace, metric_name=name, dimensions_map={"Environment": environment},
                statistic=statistic, period=MINUTE, label=label,
            )  # fmt: skip

        window = Duration.days(window_days)
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=dashboard_name)
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=f"### Availability SLO: {target:g} % of requests over {window_days} days\n\n"
                "Counted from the client's side: the load balancer's answers that were not 5xx, and the canary's "
                f"runs. Every alarm links its entry of the [runbook]({runbook_url}).",
                width=8,
                height=4,
            ),
            cloudwatch.SingleValueWidget(
                title=f"Availability over {window_days} days (%)",
                metrics=[sli(window, "availability (%)")],
                width=8,
                height=4,
                full_precision=True,
            ),
            cloudwatch.SingleValueWidget(
                title=f"Error budget left of {window_days} days (%)",
                metrics=[
                    cloudwatch.MathExpression(
                        expression=f"100 * (1 - e / {budget:g})",
                        using_metrics={"e": slo.error_rate(window)},
                        period=window,
                        label="error budget left (%)",
                    )
                ],
                width=8,
                height=4,
            ),
        )
        self.dashboard.add_widgets(
            graph(
                "Availability per hour against the SLO", "%", [sli(HOUR, "availability (%)")], minimum=None,
                maximum=100, annotations=[cloudwatch.HorizontalAnnotation(value=target, label=f"SLO {target:g} %")],
                width=12,
            ),
            graph(
                "Burn rate", "x the error budget",
                [
                    cloudwatch.MathExpression(
                        expression=f"e{key} / {budget:g}", period=period, label=f"over {label}",
                        using_metrics={f"e{key}": slo.error_rate(period, suffix=key)},
                    )
                    for period, label, key in ((FIVE_MINUTES, "5 min", "5"), (HOUR, "1 h", "60"))
                ],
                annotations=[
                    cloudwatch.HorizontalAnnotation(value=alert.burn_rate, label=f"{alert.name} ({alert.severity})")
                    for alert in BURN_RATE_ALERTS
                ],
                width=12,
            ),
        )  # fmt: skip
        self.dashboard.add_widgets(
            *(
                graph(
                    f"Latency {stat} by model", "ms",
                    [
                        cloudwatch.MathExpression(
                            expression=(
                                f'SEARCH(\'{{{metrics_namespace},Environment,Model}} MetricName="Latency" '
                                f"Environment=\"{environment}\"', '{stat}', 300)"
                            ),
                            label="", period=FIVE_MINUTES,
                        )
                    ],
                )
                for stat in ("p50", "p99")
            ),
            graph(
                "Circuit breaker", "1 = open, failing fast",
                [gateway_metric("BreakerOpen", "Maximum", "breaker open")], maximum=1,
            ),
        )  # fmt: skip
        self.dashboard.add_widgets(
            graph(
                "5xx answers per minute", "requests",
                [
                    load_balancer.metrics.http_code_elb(
                        elbv2.HttpCodeElb.ELB_5XX_COUNT, statistic="Sum", period=MINUTE, label="load balancer's own"
                    ),
                    load_balancer.metrics.http_code_target(
                        elbv2.HttpCodeTarget.TARGET_5XX_COUNT, statistic="Sum", period=MINUTE, label="the gateway's"
                    ),
                ],
            ),
            graph(
                "Fleet: healthy targets by AZ, instances in service", "instances",
                [
                    cloudwatch.Metric(
                        namespace="AWS/ApplicationELB", metric_name="HealthyHostCount",
                        dimensions_map={
                            "LoadBalancer": load_balancer.load_balancer_full_name,
                            "TargetGroup": target_group.target_group_full_name,
                            "AvailabilityZone": az,
                        },
                        statistic="Minimum", period=MINUTE, label=f"healthy in {az}",
                    )
                    for az in availability_zones
                ]
                + [
                    cloudwatch.Metric(
                        namespace="AWS/AutoScaling", metric_name="GroupInServiceInstances",
                        dimensions_map={"AutoScalingGroupName": group.auto_scaling_group_name},
                        statistic="Minimum", period=MINUTE, label="in service (all AZs)",
                    )
                ],
            ),
            graph(
                "Redis: engine CPU, and decisions without it", "%",
                [
                    cloudwatch.MathExpression(
                        expression=(
                            'SEARCH(\'{AWS/ElastiCache,CacheClusterId,CacheNodeId} MetricName="EngineCPUUtilization" '
                            f"{redis_replication_group}', 'Maximum', 60)"
                        ),
                        label="", period=MINUTE,
                    )
                ],
                right=[gateway_metric("LimitFailOpen", "Sum", "per-process limits (fail open)")],
                right_unit="requests", maximum=100,
            ),
        )  # fmt: skip
        self.dashboard.add_widgets(
            cloudwatch.LogQueryWidget(
                title="Policy blocks by rule (requests)",
                log_group_names=[audit_log_group.log_group_name],
                query_lines=[
                    'filter outcome = "policy_blocked"',
                    "stats count(*) as requests by reason as rule",
                    "sort requests desc",
                    "limit 20",
                ],
                view=cloudwatch.LogQueryVisualizationType.TABLE,
                width=12,
                height=6,
            ),
            graph(
                "Rate-limit and budget refusals per minute",
                "requests",
                [
                    gateway_metric(name, "Sum", label)
                    for name, label in (("RateLimited", "rate limited (429)"), ("BudgetRefused", "over budget"))
                ],
                width=12,
            ),
        )
