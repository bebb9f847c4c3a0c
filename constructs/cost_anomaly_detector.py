"""aigw's own cost-anomaly detector: the `lambda/cost_anomaly` function, hourly, on the gateway's usage
metrics and a daily Cost Explorer answer; its memory of sent findings; its dead letters and alarms.

AWS's anomaly detection runs a few times a day and often reports a day late; this one looks every hour.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from constructs import Construct
from constructs.compliance import AWS_SOLUTIONS, CONTROL_TOWER, NIST_R5, PCI_DSS, acknowledge
from constructs.function_outside_vpc import (
    dead_letter_queue,
    failure_alarms,
    logs_and_role,
    run_after,
    run_time_statements,
)
from constructs.project_key import ProjectKey

CODE = Path(__file__).resolve().parents[1] / "lambda" / "cost_anomaly"
RUNTIME = lambda_.Runtime.PYTHON_3_14
COST_EXPLORER_REGION = "us-east-1"  # Cost Explorer's only endpoint, whatever the environment's region


@dataclass(frozen=True)
class DetectorSettings:
    """What the detector fires on: config/settings.py (CostAnomalies) holds the tuned figures."""

    spike_mad_multiplier: float
    spike_floor_usd: float
    baseline_days: int
    concentration_share: float
    tag_key: str = "team"


class CostAnomalyDetector(Construct):
    """Exposes `function`, `table` (sent findings and the day's Cost Explorer answer), `dead_letters`,
    `schedule` and `alarms`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        key: ProjectKey,
        topic: sns.ITopic,
        environment: str,
        metrics_namespace: str,
        team_monthly_usd: Mapping[str, float],
        log_retention_days: int,
        settings: DetectorSettings,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        prefix = f"aigw-{environment}"

        self.table = dynamodb.Table(
            self,
            "SentFindings",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key.key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute="expires_at",
            removal_policy=RemovalPolicy.DESTROY,  # a memory of what was sent, not a record: TTL empties it anyway
        )
        acknowledge(
            self.table,
            f"{NIST_R5}-DynamoDBInBackupPlan",
            reason="The table only remembers which findings were already sent (each expires by TTL) and the day's "
            "Cost Explorer answer; point-in-time recovery covers accidents, and losing it re-sends at most one "
            "message per open finding. The audit trail is the S3 audit bucket, not this table.",
        )
        self.dead_letters = dead_letter_queue(self, key=key, function="cost-anomaly")
        self.logs, role = logs_and_role(
            self,
            key=key,
            log_group_name=f"/aws/lambda/{prefix}-cost-anomaly",
            retention_days=log_retention_days,
            role_description=f"{prefix} cost-anomaly function: read usage metrics and Cost Explorer, alert the topic",
        )
        policy = iam.ManagedPolicy(
            self,
            "Policy",
            description=f"{prefix} cost-anomaly function",
            roles=[role],
            statements=[
                # None of these three has a resource ARN (AWS service authorization reference): each is held
                # to the one region it is called in instead.
                iam.PolicyStatement(
                    sid="ReadUsageMetrics",
                    actions=["cloudwatch:GetMetricData", "cloudwatch:ListMetrics"],
                    resources=["*"],
                    conditions={"StringEquals": {"aws:RequestedRegion": stack.region}},
                ),
                iam.PolicyStatement(
                    sid="ReadCosts",
                    actions=["ce:GetCostAndUsage"],
                    resources=["*"],
                    conditions={"StringEquals": {"aws:RequestedRegion": COST_EXPLORER_REGION}},
                ),
                iam.PolicyStatement(
                    sid="RememberSentFindings",
                    actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
                    resources=[self.table.table_arn],
                ),
                iam.PolicyStatement(sid="Alert", actions=["sns:Publish"], resources=[topic.topic_arn]),
                *run_time_statements(self, dead_letters=self.dead_letters, log_group=self.logs.log_group),
                iam.PolicyStatement(
                    sid="ProjectKeyThroughItsServices",
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[key.key.key_arn],
                    conditions={
                        "StringEquals": {
                            "kms:ViaService": [
                                f"{service}.{stack.region}.amazonaws.com" for service in ("sns", "dynamodb", "sqs")
                            ]
                        }
                    },
                ),
            ],
        )
        acknowledge(
            policy,
            f"{AWS_SOLUTIONS}-IAM5",
            f"{AWS_SOLUTIONS}-IAM5[Resource::*]",
            reason="cloudwatch:GetMetricData, cloudwatch:ListMetrics, ce:GetCostAndUsage and the X-Ray trace "
            "actions have no resource ARNs, so each is limited by aws:RequestedRegion to the one region it is "
            "called in. Everything else names its one log group, table, topic, queue or key.",
        )

        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            handler="handler.handler",
            code=lambda_.Code.from_asset(str(CODE), exclude=["__pycache__", "*.pyc"]),
            # Grants would land in an inline policy: the managed policy above already holds all of them.
            role=role.without_policy_updates(),
            timeout=Duration.minutes(5),
            memory_size=512,
            # No reserved concurrency (it fails in accounts with a low unreserved quota): one run at a time
            # comes from the run lease in the table (sources.run_lease).
            environment_encryption=key.key,
            tracing=lambda_.Tracing.ACTIVE,
            dead_letter_queue=self.dead_letters,
            log_group=self.logs.log_group,
            description=f"{prefix}: hourly cost anomalies per team from the gateway's usage metrics",
            environment={
                "ENVIRONMENT": environment,
                "TABLE_NAME": self.table.table_name,
                "TOPIC_ARN": topic.topic_arn,
                "METRICS_NAMESPACE": metrics_namespace,
                "TEAM_CAPS_JSON": json.dumps(dict(team_monthly_usd), sort_keys=True),
                "CONCENTRATION_SHARE": str(settings.concentration_share),
                "SPIKE_MAD_MULTIPLIER": str(settings.spike_mad_multiplier),
                "ABSOLUTE_FLOOR_USD": str(settings.spike_floor_usd),
                "BASELINE_DAYS": str(settings.baseline_days),
                "COST_TAG_KEY": settings.tag_key,
            },
        )
        run_after(self.function, policy)
        acknowledge(
            self.function,
            f"{NIST_R5}-LambdaConcurrency",
            reason="Reserved concurrency fails to deploy in accounts whose unreserved-concurrency quota is low "
            "(AWS keeps 100 unreserved; new accounts may have 10 in all). One run at a time comes from the run "
            "lease in the function's DynamoDB table instead, and the hourly schedule starts only one run an hour.",
        )
        acknowledge(
            self.function,
            f"{PCI_DSS}-LambdaInsideVPC",
            f"{NIST_R5}-LambdaInsideVPC",
            f"{CONTROL_TOWER}::lambda_inside_vpc_check",
            reason="It calls Cost Explorer, whose only endpoint is ce.us-east-1.amazonaws.com and has no "
            "PrivateLink endpoint in this region; aigw's VPC has no internet path by design. The function reads "
            "metrics and billing data and writes SNS and DynamoDB through AWS APIs; it touches nothing in the VPC.",
        )

        self.schedule = events.Rule(
            self,
            "Hourly",
            description=f"{prefix}: run the cost-anomaly function every hour",
            schedule=events.Schedule.rate(Duration.hours(1)),
            targets=[targets.LambdaFunction(self.function, retry_attempts=2, max_event_age=Duration.hours(1))],
        )
        self.alarms = failure_alarms(
            self,
            topic=topic,
            function=self.function,
            dead_letters=self.dead_letters,
            errors_period=Duration.hours(1),
            failing="the cost-anomaly function failed: cost alerts are not being checked",
            dead_lettered="cost-anomaly runs ended in the dead-letter queue",
            runbook="cost-anomaly",
        )
