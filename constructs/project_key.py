"""The customer-managed KMS key that encrypts aigw's logs and data at rest."""

from __future__ import annotations

import re
from collections.abc import Sequence

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct
from constructs.data_retention import KEEP_DATA

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


# The services that publish aigw's alerts. Auto Scaling's own notifications would publish as its service-linked
# role, which a key policy can only name once it exists; its events reach the topic through EventBridge instead.
ALERT_PUBLISHING_SERVICES = (
    "cloudwatch.amazonaws.com",
    "events.amazonaws.com",
    "budgets.amazonaws.com",
    "costalerts.amazonaws.com",
)


def deny_grants_but_for_aws_resources(key: kms.Key) -> None:
    """Nobody may hand the key's use on with a grant, but for an AWS resource or as an AWS service (Firehose,
    ElastiCache, Secrets Manager and the like create grants that way): Control Tower's CT.KMS.PR.3."""
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="GrantsOnlyForAwsResources",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=["kms:CreateGrant"],
            resources=["*"],  # in a key policy, "*" is this key
            conditions={"BoolIfExists": {"kms:GrantIsForAWSResource": "false", "aws:PrincipalIsAWSService": "false"}},
        )
    )


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
            removal_policy=KEEP_DATA,
        )
        deny_grants_but_for_aws_resources(self.key)

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

        The principal is this account, narrowed by condition to the one role: the role may live in a stack
        deployed after the key's, and KMS refuses a key policy whose principal does not exist yet. The role's
        own IAM policy must allow the actions too (an account principal delegates to IAM).
        """
        stack = Stack.of(self)
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid=sid,
                principals=[iam.AccountPrincipal(stack.account)],
                actions=list(actions),
                resources=["*"],
                conditions={
                    "ArnEquals": {"aws:PrincipalArn": role_arn},
                    "StringEquals": {"kms:ViaService": f"{service}.{stack.region}.amazonaws.com"},
                },
            )
        )

    def allow_alert_publishers(self) -> None:
        """Let CloudWatch alarms, EventBridge rules (the fleet's Auto Scaling events), AWS Budgets and Cost
        Anomaly Detection publish to a topic this key encrypts, for this account only."""
        stack = Stack.of(self)
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="ServicesPublishAlerts",
                principals=[iam.ServicePrincipal(service) for service in ALERT_PUBLISHING_SERVICES],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )
