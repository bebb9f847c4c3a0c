"""The availability SLO as clients see it, and its burn-rate alerts (config/slo.py holds the arithmetic).

The SLI: the load balancer's requests that did not end in a 5xx (its own or the gateway's; 429s and policy
refusals are 4xx, answers as designed), together with the canary's runs that succeeded. The canary also sees
what the load balancer cannot count: a load balancer that cannot be reached at all.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_sns as sns
from constructs import Construct
from constructs.alerts_topic import runbook_link
from constructs.compliance import CONTROL_TOWER, NIST_R5, acknowledge

from config.slo import BURN_RATE_ALERTS, BurnRateAlert, error_budget


# Bad and total requests of one period, from the ids of `_sli_metrics`. The load balancer publishes no 5xx count
# for a period without any, and the canary none while it is stopped: missing is zero.
def error_rate_expression(with_canary: bool, suffix: str = "") -> str:
    """`suffix` tells apart the ids of several windows in one graph (`requests60`, `requests5`)."""
    elb, target, requests, runs, success = (f"{name}{suffix}" for name in SLI_IDS)
    bad, total = f"FILL({elb}, 0) + FILL({target}, 0)", f"FILL({requests}, 0)"
    if with_canary:
        bad += f" + FILL({runs}, 0) * (100 - FILL({success}, 100)) / 100"
        total += f" + FILL({runs}, 0)"
    return f"IF(({total}) > 0, ({bad}) / ({total}), 0)"


SLI_IDS = ("elb5xx", "target5xx", "requests", "canaryRuns", "canarySuccess")


class AvailabilitySlo(Construct):
    """One multi-window alert per entry of BURN_RATE_ALERTS: a metric alarm per window and a composite alarm,
    ALARM while both windows burn, that alone tells the topic (with OK when it clears). Exposes `error_rate`
    (for a period: the SLI's complement, for dashboards) and `alerts` (name -> composite alarm)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        load_balancer: elbv2.ApplicationLoadBalancer,
        canary_name: str | None,
        target_percent: float,
        topic: sns.ITopic,
        alerts: tuple[BurnRateAlert, ...] = BURN_RATE_ALERTS,
    ) -> None:
        super().__init__(scope, construct_id)
        error_budget(target_percent)  # refuses a target that is not a percentage short of 100
        self._load_balancer, self._canary_name = load_balancer, canary_name
        self.target_percent = target_percent
        self.alerts: dict[str, cloudwatch.CompositeAlarm] = {}
        notify = actions.SnsAction(topic)
        for alert in alerts:
            threshold = alert.error_rate_threshold(target_percent)
            windows = [
                self._window_alarm(alert, label, minutes, threshold)
                for label, minutes in (("Long", alert.long_minutes), ("Short", alert.short_minutes))
            ]
            composite = cloudwatch.CompositeAlarm(
                self,
                alert.name,
                alarm_rule=cloudwatch.AlarmRule.all_of(*windows),
                alarm_description=(
                    f"aigw {alert.severity.upper()}: availability SLO {target_percent:g} %: errors at "
                    f"{alert.burn_rate:g}x the error budget over {_span(alert.long_minutes)} and still over the "
                    f"last {_span(alert.short_minutes)} (error rate >= {threshold:.2%}). "
                    f"Runbook: {runbook_link(self, 'slo-' + alert.name.lower())}"
                ),
            )
            composite.add_alarm_action(notify)
            composite.add_ok_action(notify)
            self.alerts[alert.name] = composite

    def error_rate(self, period: Duration, label: str = "error rate", suffix: str = "") -> cloudwatch.MathExpression:
        """Failed over all requests, clients' and the canary's, per `period` (0..1); `suffix` for the ids when one
        graph shows several periods."""
        metrics = self._sli_metrics(period)
        return cloudwatch.MathExpression(
            expression=error_rate_expression(self._canary_name is not None, suffix),
            using_metrics={f"{name}{suffix}": metric for name, metric in metrics.items()},
            period=period,
            label=label,
        )

    def _sli_metrics(self, period: Duration) -> dict[str, cloudwatch.IMetric]:
        metrics = self._load_balancer.metrics
        found: dict[str, cloudwatch.IMetric] = {
            "elb5xx": metrics.http_code_elb(elbv2.HttpCodeElb.ELB_5XX_COUNT, statistic="Sum", period=period),
            # The balancer's count of its targets' 5xx (it has one target group): no target group to name across
            # stacks.
            "target5xx": metrics.http_code_target(
                elbv2.HttpCodeTarget.TARGET_5XX_COUNT, statistic="Sum", period=period
            ),
            "requests": metrics.request_count(statistic="Sum", period=period),
        }
        if self._canary_name is not None:
            success = cloudwatch.Metric(
                namespace="CloudWatchSynthetics",
                metric_name="SuccessPercent",
                dimensions_map={"CanaryName": self._canary_name},
                period=period,
            )
            # One data point per run: their number, and the share that passed.
            found["canaryRuns"] = success.with_(statistic="SampleCount")
            found["canarySuccess"] = success.with_(statistic="Average")
        return found

    def _window_alarm(self, alert: BurnRateAlert, label: str, minutes: int, threshold: float) -> cloudwatch.Alarm:
        window = cloudwatch.Alarm(
            self,
            f"{alert.name}{label}Window",
            metric=self.error_rate(Duration.minutes(minutes), f"error rate over {_span(minutes)}"),
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=(
                f"aigw: one window of the {alert.name} alert (error rate >= {threshold:.2%} over "
                f"{_span(minutes)}); the composite alarm {alert.name} notifies."
            ),
        )
        reason = (
            f"One window of the {alert.name} burn-rate alert: the composite alarm of both windows notifies the "
            f"alerts topic (ALARM and OK). This window alone would page for a burst already over ({label.lower()} "
            "window) or keep paging after recovery, which multi-window alerting exists to avoid."
        )
        acknowledge(
            window, f"{NIST_R5}-CloudWatchAlarmAction", f"{CONTROL_TOWER}::cloudwatch_alarm_action_check", reason=reason
        )
        return window


def _span(minutes: int) -> str:
    if minutes % 1440 == 0:
        return f"{minutes // 1440} d"
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"
