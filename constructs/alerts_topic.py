"""The alerts topic every alarm and notification of aigw goes to: CloudWatch alarms, the fleet's Auto Scaling
events (through EventBridge), AWS Budgets, Cost Anomaly Detection and the cost-anomaly Lambda."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct
from constructs.project_key import ProjectKey

# The runbook every alarm links to (config `operations.runbook_url`, set on the app by app.py): a context value,
# so that each construct making alarms need not carry it.
RUNBOOK_CONTEXT = "aigw:runbook-url"
DEFAULT_RUNBOOK = "docs/runbook.md"


class AlertsTopic(Construct):
    """KMS-encrypted, TLS-only; each configured address is subscribed by e-mail."""

    def __init__(self, scope: Construct, construct_id: str, *, key: ProjectKey, emails: Sequence[str] = ()) -> None:
        super().__init__(scope, construct_id)
        key.allow_alert_publishers()  # the publishing services must be able to use the topic's key
        self.topic = sns.Topic(self, "Topic", master_key=key.key, enforce_ssl=True, display_name="aigw alerts")
        stack = Stack.of(self)
        # Budgets and Cost Anomaly Detection publish through the topic policy, and only for this account.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CostAlertsPublish",
                principals=[
                    iam.ServicePrincipal("budgets.amazonaws.com"),
                    iam.ServicePrincipal("costalerts.amazonaws.com"),
                ],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )
        # A topic policy replaces SNS's default one, so CloudWatch alarms and EventBridge rules need their own
        # statements: alarms and rules of this account, in this region.
        for sid, service, source in (
            ("AlarmsPublish", "cloudwatch", stack.format_arn(
                service="cloudwatch", resource="alarm", resource_name="*", arn_format=ArnFormat.COLON_RESOURCE_NAME
            )),
            ("EventRulesPublish", "events", stack.format_arn(service="events", resource="rule", resource_name="*")),
        ):  # fmt: skip
            self.topic.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=sid,
                    principals=[iam.ServicePrincipal(f"{service}.amazonaws.com")],
                    actions=["sns:Publish"],
                    resources=[self.topic.topic_arn],
                    conditions={
                        "StringEquals": {"aws:SourceAccount": stack.account},
                        "ArnLike": {"aws:SourceArn": source},
                    },
                )
            )
        for email in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))


def topic_alarm(
    scope: Construct,
    construct_id: str,
    *,
    topic: sns.ITopic,
    metric: cloudwatch.IMetric,
    threshold: float,
    description: str,
    runbook: str,
    periods: int = 1,
    comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
) -> cloudwatch.Alarm:
    """An alarm that tells the topic when it fires and when it clears, and links its entry of the runbook
    (`runbook`: the entry's anchor in docs/runbook.md). Missing data is quiet by default: no traffic means no data
    points, which is not a fault."""
    alarm = cloudwatch.Alarm(
        scope,
        construct_id,
        metric=metric,
        threshold=threshold,
        evaluation_periods=periods,
        comparison_operator=comparison,
        treat_missing_data=missing,
        alarm_description=f"aigw: {description}. Runbook: {runbook_link(scope, runbook)}",
    )
    action = actions.SnsAction(topic)
    alarm.add_alarm_action(action)
    alarm.add_ok_action(action)
    return alarm


def runbook_link(scope: Construct, entry: str) -> str:
    """The link to `entry` (a heading's anchor) of docs/runbook.md, where this app's on-call reads it."""
    return f"{scope.node.try_get_context(RUNBOOK_CONTEXT) or DEFAULT_RUNBOOK}#{entry}"
