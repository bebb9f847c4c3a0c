"""A CloudWatch log group encrypted with the project key, with a retention that is always set."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs
from constructs import Construct
from constructs.data_retention import KEEP_DATA
from constructs.project_key import ProjectKey


class EncryptedLogGroup(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        log_group_name: str,
        retention_days: int,
        key: ProjectKey,
        removal_policy: RemovalPolicy = KEEP_DATA,
    ) -> None:
        super().__init__(scope, construct_id)
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
