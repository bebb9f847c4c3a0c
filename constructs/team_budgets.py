"""AWS Budgets for the organisation and each team: the slow backstop that cost-allocation tags feed.

A team's budget counts what carries its `team` cost-allocation tag. Budgets sees tagged cost a day
or so late (tags take up to a day to appear): the cost-anomaly Lambda is the fast alarm.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_sns as sns
from constructs import Construct

# Actual spend at these shares of the budget, and the month-end forecast passing it.
ACTUAL_THRESHOLDS = (50, 80, 100)
FORECAST_THRESHOLD = 100


class TeamBudgets(Construct):
    """Exposes `organisation` and `teams` (team -> its budget)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name_prefix: str,
        org_monthly_usd: float,
        team_monthly_usd: Mapping[str, float],
        topic: sns.ITopic,
        emails: Sequence[str] = (),
        tag_key: str = "team",
    ) -> None:
        super().__init__(scope, construct_id)
        self._subscribers = [
            budgets.CfnBudget.SubscriberProperty(subscription_type="SNS", address=topic.topic_arn),
            *(budgets.CfnBudget.SubscriberProperty(subscription_type="EMAIL", address=email) for email in emails),
        ]
        self.organisation = self._budget("Organisation", f"{name_prefix}-organisation", org_monthly_usd, None)
        self.teams = {
            team: self._budget(
                "Team" + re.sub(r"[^A-Za-z0-9]", "", team.title()),
                f"{name_prefix}-team-{team}",
                amount,
                # Budgets names a user-defined cost-allocation tag as user:<key>$<value>.
                {"TagKeyValue": [f"user:{tag_key}${team}"]},
            )
            for team, amount in team_monthly_usd.items()
        }

    def _budget(
        self, construct_id: str, name: str, amount: float, cost_filters: Mapping[str, list[str]] | None
    ) -> budgets.CfnBudget:
        notifications = [
            *(("ACTUAL", threshold) for threshold in ACTUAL_THRESHOLDS),
            ("FORECASTED", FORECAST_THRESHOLD),
        ]
        return budgets.CfnBudget(
            self,
            construct_id,
            budget=budgets.CfnBudget.BudgetDataProperty(
                budget_name=name,
                budget_type="COST",
                time_unit="MONTHLY",
                budget_limit=budgets.CfnBudget.SpendProperty(amount=amount, unit="USD"),
                cost_filters=cost_filters,
            ),
            notifications_with_subscribers=[
                budgets.CfnBudget.NotificationWithSubscribersProperty(
                    notification=budgets.CfnBudget.NotificationProperty(
                        notification_type=kind,
                        comparison_operator="GREATER_THAN",
                        threshold=threshold,
                        threshold_type="PERCENTAGE",
                    ),
                    subscribers=self._subscribers,
                )
                for kind, threshold in notifications
            ],
        )
