"""A CloudWatch log group encrypted with the project key, with a retention that is always set."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs
from constructs import Construct
from constructs.compliance import CONTROL_TOWER, acknowledge, acknowledge_imported
from constructs.data_retention import KEEP_DATA
from constructs.project_key import ProjectKey

A_YEAR = 365  # Control Tower's CT.CLOUDWATCH.PR.2 and PCI DSS 10.5.1: a year of logs


class EncryptedLogGroup(Construct):
    """Kept `retention_days`; under a year only with `shorter_because`, the reason an auditor reads (Control
    Tower's CT.CLOUDWATCH.PR.2 wants a year)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        log_group_name: str,
        retention_days: int,
        key: ProjectKey,
        removal_policy: RemovalPolicy = KEEP_DATA,
        shorter_because: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        if shorter_because and retention_days >= A_YEAR:
            raise ValueError(f"{self.node.path}: kept {retention_days} days, a year or more: nothing to explain")
        self.log_group_arn = key.allow_log_group(log_group_name)
        self.log_group = logs.LogGroup(
            self,
            "LogGroup",
            log_group_name=log_group_name,
            encryption_key=key.key,
            removal_policy=removal_policy,
        )
        # The L2 takes an enum of named periods; the config holds days, already checked against the allowed values.
        cfn_log_group = self.log_group.node.default_child
        assert isinstance(cfn_log_group, logs.CfnLogGroup)
        cfn_log_group.retention_in_days = retention_days
        if shorter_because and retention_days < A_YEAR:
            acknowledge(
                cfn_log_group, f"{CONTROL_TOWER}::cloudwatch_log_group_retention_period_check", reason=shorter_because
            )
        acknowledge_imported(cfn_log_group, "cloudwatch_log_group_encrypted_check", setting="KmsKeyId", source=key.key)
