"""The customer-managed KMS key that encrypts aigw's logs and data at rest."""

from __future__ import annotations

import re
from collections.abc import Sequence

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

# What CloudWatch Logs needs on a key to encrypt a log group (AWS docs, "Encrypt log data in CloudWatch Logs").
LOGS_KEY_ACTIONS = (
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:DescribeKey",
)


# The services that publish aigw's alerts as themselves (Auto Scaling publishes as its service-linked role).
ALERT_PUBLISHING_SERVICES = ("cloudwatch.amazonaws.com", "budgets.amazonaws.com", "costalerts.amazonaws.com")


class ProjectKey(Construct):
    """A rotating key with an alias; a service may use it only for the resources named to it.

    Retained on stack deletion: the logs and objects it encrypted outlive the stack.
    """

    def __init__(self, scope: Construct, construct_id: str, *, alias: str, description: str) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            alias=alias,
            description=description,
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )

    def allow_log_group(self, log_group_name: str) -> str:
        """Let CloudWatch Logs use the key for this one log group (by encryption context); returns the group's ARN."""
        stack = Stack.of(self)
        log_group_arn = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=log_group_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="Logs" + re.sub(r"[^A-Za-z0-9]", "", log_group_name.title()),
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=list(LOGS_KEY_ACTIONS),
                resources=["*"],  # in a key policy, "*" is this key
                conditions={"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": log_group_arn}},
            )
        )
        return log_group_arn

    def allow_bucket_writer(self, role: iam.IRole, bucket_arn: str) -> None:
        """Let one role (e.g. Firehose's) encrypt objects with the key, only through S3 and only for one bucket."""
        stack = Stack.of(self)
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="S3WritesBy" + re.sub(r"[^A-Za-z0-9]", "", role.node.id),
                principals=[role],
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=["*"],
                conditions={
                    "StringEquals": {"kms:ViaService": f"s3.{stack.region}.amazonaws.com"},
                    # With S3 bucket keys the encryption context is the bucket's ARN, without them the object's.
                    "StringLike": {"kms:EncryptionContext:aws:s3:arn": [bucket_arn, f"{bucket_arn}/*"]},
                },
            )
        )

    def allow_role_through_service(self, sid: str, role_arn: str, service: str, actions: Sequence[str]) -> None:
        """Let one role use the key only through one AWS service (e.g. Secrets Manager).

        The role is named by condition, not as principal: it may live in a stack deployed after the
        key's, and KMS refuses a key policy whose principal does not exist yet.
        """
        stack = Stack.of(self)
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid=sid,
                principals=[iam.AnyPrincipal()],
                actions=list(actions),
                resources=["*"],
                conditions={
                    "ArnEquals": {"aws:PrincipalArn": role_arn},
                    "StringEquals": {
                        "kms:CallerAccount": stack.account,
                        "kms:ViaService": f"{service}.{stack.region}.amazonaws.com",
                    },
                },
            )
        )

    def allow_alert_publishers(self) -> None:
        """Let CloudWatch alarms, AWS Budgets, Cost Anomaly Detection and Auto Scaling notifications
        publish to a topic this key encrypts.

        Auto Scaling publishes as its service-linked role, which may not exist yet in a new account
        (KMS refuses a key policy naming a missing role), so that statement names it by condition.
        """
        stack = Stack.of(self)
        actions = ["kms:Decrypt", "kms:GenerateDataKey"]
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="ServicesPublishAlerts",
                principals=[iam.ServicePrincipal(service) for service in ALERT_PUBLISHING_SERVICES],
                actions=actions,
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )
        auto_scaling_role = stack.format_arn(
            service="iam",
            region="",
            resource="role",
            resource_name="aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling",
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AutoScalingNotificationsPublish",
                principals=[iam.AnyPrincipal()],
                actions=actions,
                resources=["*"],
                conditions={
                    "ArnEquals": {"aws:PrincipalArn": auto_scaling_role},
                    "StringEquals": {"kms:CallerAccount": stack.account},
                },
            )
        )
