"""AWS Cost Anomaly Detection: a monitor per AWS service and one over the teams' cost-allocation tag,
alerting the topic as soon as an anomaly's impact passes the configured threshold."""

from __future__ import annotations

import json

from aws_cdk import aws_ce as ce
from aws_cdk import aws_sns as sns
from constructs import Construct


def threshold_expression(impact_usd: float, impact_percent: float) -> str:
    """Both the absolute and the relative impact must be reached: one alone pages on noise."""
    return json.dumps(
        {
            "And": [
                {
                    "Dimensions": {
                        "Key": key,
                        "MatchOptions": ["GREATER_THAN_OR_EQUAL"],
                        "Values": [f"{value:g}"],
                    }
                }
                for key, value in (
                    ("ANOMALY_TOTAL_IMPACT_ABSOLUTE", impact_usd),
                    ("ANOMALY_TOTAL_IMPACT_PERCENTAGE", impact_percent),
                )
            ]
        }
    )


class CostAnomalyMonitors(Construct):
    """AWS-managed monitors: one by AWS service, one by the team cost-allocation tag (each team's cost is
    analysed on its own, not the teams in aggregate), and an immediate subscription to the topic.

    Either can be left out: an account may hold only one monitor by service, and a monitor over a
    cost-allocation tag can only be created in the organisation's management (payer) account.
    Exposes `by_service` and `by_team` (None when left out) and `subscription` (None without a monitor).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name_prefix: str,
        topic: sns.ITopic,
        impact_usd: float,
        impact_percent: float,
        service_monitor: bool = True,
        team_monitor: bool = False,
        tag_key: str = "team",
    ) -> None:
        super().__init__(scope, construct_id)
        self.by_service = (
            ce.CfnAnomalyMonitor(
                self,
                "ByService",
                monitor_name=f"{name_prefix}-by-service",
                monitor_type="DIMENSIONAL",
                monitor_dimension="SERVICE",
            )
            if service_monitor
            else None
        )
        self.by_team = (
            ce.CfnAnomalyMonitor(
                self,
                "ByTeam",
                monitor_name=f"{name_prefix}-by-team",
                monitor_type="DIMENSIONAL",
                monitor_dimension="TAG",
                monitor_specification=json.dumps({"Tags": {"Key": tag_key}}),
            )
            if team_monitor
            else None
        )
        monitors = [monitor for monitor in (self.by_service, self.by_team) if monitor is not None]
        self.subscription = (
            ce.CfnAnomalySubscription(
                self,
                "Subscription",
                subscription_name=f"{name_prefix}-anomalies",
                frequency="IMMEDIATE",  # IMMEDIATE is allowed only with an SNS subscriber
                monitor_arn_list=[monitor.attr_monitor_arn for monitor in monitors],
                subscribers=[ce.CfnAnomalySubscription.SubscriberProperty(type="SNS", address=topic.topic_arn)],
                threshold_expression=threshold_expression(impact_usd, impact_percent),
            )
            if monitors
            else None
        )
