"""What aigw's functions outside the VPC share (the cost-anomaly detector, the IdP-keys mirror): an encrypted
dead-letter queue, its log group and role, the statements every such function needs at run time, a DependsOn on
its policy alone, and alarms on its failures and its dead letters.

Each part is made in the caller's scope under the ids the constructs always used, so their logical ids (a
fixed-name log group's among them) do not move.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from constructs.alerts_topic import topic_alarm
from constructs.compliance import AWS_SOLUTIONS, CONTROL_TOWER, acknowledge, acknowledge_imported, logical_id_of
from constructs.encrypted_log_group import EncryptedLogGroup
from constructs.project_key import ProjectKey


def dead_letter_queue(scope: Construct, *, key: ProjectKey, function: str) -> sqs.Queue:
    """`DeadLetters`: where Lambda puts the function's asynchronous events that failed every attempt."""
    queue = sqs.Queue(
        scope,
        "DeadLetters",
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key.key,
        enforce_ssl=True,
        retention_period=Duration.days(14),
        # Lambda's own dead letters, not a queue's: no queue may redrive into it.
        redrive_allow_policy=sqs.RedriveAllowPolicy(redrive_permission=sqs.RedrivePermission.DENY_ALL),
    )
    acknowledge_imported(queue, "sqs_queue_encrypted_check", setting="KmsMasterKeyId", source=key.key)
    acknowledge(
        queue,
        f"{AWS_SOLUTIONS}-SQS3",
        f"{CONTROL_TOWER}::sqs_dlq_check",
        reason=f"This queue is itself the dead-letter queue of the {function} function: Lambda's asynchronous DLQ, "
        "which neither rule recognises (they know a DLQ only as another queue's redrive target); an alarm "
        "watches it.",
    )
    return queue


def logs_and_role(
    scope: Construct, *, key: ProjectKey, log_group_name: str, retention_days: int, role_description: str
) -> tuple[EncryptedLogGroup, iam.Role]:
    """`Logs`, the function's encrypted log group, and `Role`, the one its Lambda service assumes."""
    log_group = EncryptedLogGroup(scope, "Logs", log_group_name=log_group_name, retention_days=retention_days, key=key)
    role = iam.Role(
        scope, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=role_description
    )
    return log_group, role


def run_time_statements(
    scope: Construct, *, dead_letters: sqs.IQueue, log_group: logs.ILogGroup
) -> list[iam.PolicyStatement]:
    """Dead-lettering, writing its own log group, and X-Ray tracing."""
    return [
        iam.PolicyStatement(sid="DeadLetter", actions=["sqs:SendMessage"], resources=[dead_letters.queue_arn]),
        iam.PolicyStatement(
            sid="OwnLogs",
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            # The group's Arn attribute ends in ":*": its streams, which Lambda names itself.
            resources=[log_group.log_group_arn],
        ),
        iam.PolicyStatement(
            sid="Tracing",
            actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
            resources=["*"],  # X-Ray has no resource ARNs for these
            conditions={"StringEquals": {"aws:RequestedRegion": Stack.of(scope).region}},
        ),
    ]


def run_after(function: lambda_.Function, policy: iam.ManagedPolicy) -> None:
    """After its policy, so that a first run does not meet AccessDenied; only that: CDK would also list the role,
    which the function already names (GetAtt), and cfn-lint reports such a DependsOn (W3005)."""
    resource = function.node.default_child
    assert isinstance(resource, lambda_.CfnFunction)
    resource.add_override("DependsOn", [logical_id_of(policy)])


def failure_alarms(
    scope: Construct,
    *,
    topic: sns.ITopic,
    function: lambda_.Function,
    dead_letters: sqs.Queue,
    errors_period: Duration,
    errors_periods: int = 1,
    failing: str,
    dead_lettered: str,
    runbook: str,
) -> list[cloudwatch.Alarm]:
    """`Failing` (errors in `errors_periods` periods running) and `DeadLettersWaiting`, linking the runbook's
    `<runbook>-function-failing` and `<runbook>-dead-letters` entries."""
    return [
        topic_alarm(
            scope,
            "Failing",
            topic=topic,
            metric=function.metric_errors(period=errors_period, statistic="Sum"),
            threshold=1,
            periods=errors_periods,
            description=failing,
            runbook=f"{runbook}-function-failing",
        ),
        topic_alarm(
            scope,
            "DeadLettersWaiting",
            topic=topic,
            metric=dead_letters.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic="Maximum"
            ),
            threshold=1,
            description=dead_lettered,
            runbook=f"{runbook}-dead-letters",
        ),
    ]
