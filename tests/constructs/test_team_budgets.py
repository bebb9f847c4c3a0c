"""TeamBudgets: one budget for the organisation and one per team, alerting at the same thresholds."""

from __future__ import annotations

from typing import Any

from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template
from constructs.team_budgets import TeamBudgets

from tests.conftest import BareStack


def budgets(emails: tuple[str, ...] = ("oncall@example.com",)) -> dict[str, dict[str, Any]]:
    stack = BareStack()
    topic = sns.Topic(stack, "Alerts")
    TeamBudgets(
        stack,
        "Budgets",
        name_prefix="t",
        org_monthly_usd=41_000,
        team_monthly_usd={"payments": 9000, "data": 1500},
        topic=topic,
        emails=emails,
    )
    found = Template.from_stack(stack).find_resources("AWS::Budgets::Budget").values()
    return {b["Properties"]["Budget"]["BudgetName"]: b["Properties"] for b in found}


def test_the_organisation_and_every_team_have_a_monthly_cost_budget() -> None:
    found = budgets()
    assert set(found) == {"t-organisation", "t-team-payments", "t-team-data"}
    org = found["t-organisation"]["Budget"]
    assert org["BudgetLimit"] == {"Amount": 41_000, "Unit": "USD"}
    assert org["BudgetType"] == "COST" and org["TimeUnit"] == "MONTHLY" and "CostFilters" not in org
    payments = found["t-team-payments"]["Budget"]
    assert payments["BudgetLimit"]["Amount"] == 9000
    assert payments["CostFilters"] == {"TagKeyValue": ["user:team$payments"]}


def test_alerts_at_half_four_fifths_and_all_of_actual_and_at_the_forecast() -> None:
    for properties in budgets().values():
        notifications = [n["Notification"] for n in properties["NotificationsWithSubscribers"]]
        assert sorted((n["NotificationType"], n["Threshold"]) for n in notifications) == [
            ("ACTUAL", 50),
            ("ACTUAL", 80),
            ("ACTUAL", 100),
            ("FORECASTED", 100),
        ]
        assert all(
            n["ThresholdType"] == "PERCENTAGE" and n["ComparisonOperator"] == "GREATER_THAN" for n in notifications
        )
        for entry in properties["NotificationsWithSubscribers"]:
            kinds = sorted(s["SubscriptionType"] for s in entry["Subscribers"])
            assert kinds == ["EMAIL", "SNS"]
            assert {"SubscriptionType": "EMAIL", "Address": "oncall@example.com"} in entry["Subscribers"]


def test_without_emails_only_the_topic_is_told() -> None:
    for properties in budgets(emails=()).values():
        for entry in properties["NotificationsWithSubscribers"]:
            assert [s["SubscriptionType"] for s in entry["Subscribers"]] == ["SNS"]
