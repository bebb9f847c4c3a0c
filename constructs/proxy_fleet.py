"""The proxy fleet: an Auto Scaling group across every AZ, running the gateway from its offline bundle.

One AZ's network fault once took the whole (single-AZ) proxy layer down for 47 minutes; this fleet
spans every configured AZ, replaces instances one at a time keeping full capacity, and lets a
leaving instance finish its streams and flush its audit file before it goes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import Duration, Stack, Tags
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct
from constructs.compliance import AWS_SOLUTIONS, acknowledge
from constructs.gateway_bundle import PREFIX, GatewayBundle
from constructs.private_network import availability_zones_of

# Amazon Linux 2023's public SSM parameter: resolved by CloudFormation at deploy, not looked up at synth.
AL2023_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
AGENT_CONFIG = "/opt/aws/amazon-cloudwatch-agent/etc/aigw.json"
FLEET_TAG = "aigw:fleet"


@dataclass(frozen=True)
class FleetSizing:
    """The field report's fleet: c6i.xlarge, 2 to 6 instances, across every AZ."""

    instance_type: str = "c6i.xlarge"
    min_instances: int = 2
    max_instances: int = 6
    cpu_target_percent: int = 60
    health_check_grace_seconds: int = 300


def agent_config(audit_log_group: str, metrics_log_group: str) -> dict[str, object]:
    """The CloudWatch agent ships the audit file and the EMF metrics file, one stream per instance."""
    files = [
        {
            "file_path": "/var/log/aigw/audit.jsonl",
            "log_group_name": audit_log_group,
            "log_stream_name": "{instance_id}",
        },
        {
            "file_path": "/var/log/aigw/metrics.jsonl",
            "log_group_name": metrics_log_group,
            "log_stream_name": "{instance_id}",
        },
    ]
    return {"logs": {"logs_collected": {"files": {"collect_list": files}}}}


def user_data_script(
    *, bundle_s3_url: str, region: str, audit_log_group: str, metrics_log_group: str, environment: Mapping[str, str]
) -> str:
    """First boot: OS packages from the AL2023 repositories and the gateway from its bundle, both
    through the S3 gateway endpoint; nothing from the internet. `environment` is what the gateway
    learns only at deploy time (its service reads it as an EnvironmentFile)."""
    config = json.dumps(agent_config(audit_log_group, metrics_log_group), indent=2)
    variables = "\n".join(f"{name}={value}" for name, value in {"AWS_REGION": region, **environment}.items())
    return f"""#!/bin/bash
set -euo pipefail
export AWS_REGION={region}
mkdir -p {PREFIX}/etc
cat > {PREFIX}/etc/environment <<'ENVIRONMENT'
{variables}
ENVIRONMENT
dnf install -y python3.11 amazon-cloudwatch-agent
work=$(mktemp -d)
aws s3 cp {bundle_s3_url} "$work/bundle.zip"
python3.11 -m zipfile -e "$work/bundle.zip" "$work/bundle"
AIGW_PREFIX={PREFIX} AIGW_PYTHON=python3.11 sh "$work/bundle/install.sh" --system
cat > {AGENT_CONFIG} <<'AGENT'
{config}
AGENT
/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c file:{AGENT_CONFIG}
"""


class ProxyFleet(Construct):
    """Instances of the gateway in every AZ. Exposes `group` (the ASG) and `role`; the stack attaches
    the group to its load balancer's target group (`serve`)."""

    LIFECYCLE_HOOK = "aigw-drain"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        security_group: ec2.ISecurityGroup,
        bundle: GatewayBundle,
        alerts: sns.ITopic,
        audit_log_group: logs.ILogGroup,
        metrics_log_group: logs.ILogGroup,
        metrics_namespace: str,
        model_arns: Sequence[str] = (),
        secret_arns: Sequence[str] = (),
        secret_keys: Sequence[kms.IKey] = (),
        environment: Mapping[str, str] | None = None,
        drain_seconds: int = 630,
        sizing: FleetSizing = FleetSizing(),
        role_name: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        azs = availability_zones_of(vpc, subnets)
        if len(azs) < 2:
            raise ValueError(f"ProxyFleet needs subnets in at least 2 AZs, got {sorted(azs)}")

        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            role_name=role_name,
            description="aigw proxy instances: invoke the configured models, ship logs, Session Manager",
        )
        user_data = ec2.UserData.custom(
            user_data_script(
                bundle_s3_url=bundle.asset.s3_object_url,
                region=stack.region,
                audit_log_group=audit_log_group.log_group_name,
                metrics_log_group=metrics_log_group.log_group_name,
                environment=environment or {},
            )
        )
        self.launch_template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            machine_image=ec2.MachineImage.from_ssm_parameter(AL2023_PARAMETER),
            instance_type=ec2.InstanceType(sizing.instance_type),
            role=self.role,
            security_group=security_group,
            user_data=user_data,
            require_imdsv2=True,
            http_put_response_hop_limit=1,
            instance_metadata_tags=True,  # the lifecycle watcher reads its group's name from the tags
            detailed_monitoring=True,
            block_devices=[
                ec2.BlockDevice(
                    device_name="/dev/xvda",
                    # KMS-encrypted with the account's aws/ebs key: a customer key would need the Auto
                    # Scaling service-linked role in its key policy, which KMS refuses in an account
                    # where that role does not exist yet.
                    volume=ec2.BlockDeviceVolume.ebs(
                        30, volume_type=ec2.EbsDeviceVolumeType.GP3, encrypted=True, delete_on_termination=True
                    ),
                )
            ],
        )
        self.group = autoscaling.AutoScalingGroup(
            self,
            "Group",
            vpc=vpc,
            vpc_subnets=subnets,
            launch_template=self.launch_template,
            min_capacity=sizing.min_instances,
            max_capacity=sizing.max_instances,
            health_checks=autoscaling.HealthChecks.with_additional_checks(
                additional_types=[autoscaling.AdditionalHealthCheckType.ELB],
                grace_period=Duration.seconds(sizing.health_check_grace_seconds),
            ),
            capacity_rebalance=True,
            # A changed launch template replaces instances one at a time, never below the minimum.
            update_policy=autoscaling.UpdatePolicy.rolling_update(
                max_batch_size=1,
                min_instances_in_service=sizing.min_instances,
                pause_time=Duration.seconds(sizing.health_check_grace_seconds),
            ),
            notifications=[autoscaling.NotificationConfiguration(topic=alerts)],
            group_metrics=[autoscaling.GroupMetrics.all()],
        )
        Tags.of(self.group).add(FLEET_TAG, self.node.addr)
        self.group.scale_on_cpu_utilization("Cpu", target_utilization_percent=sizing.cpu_target_percent)
        self.group.add_lifecycle_hook(
            "Drain",
            lifecycle_hook_name=self.LIFECYCLE_HOOK,
            lifecycle_transition=autoscaling.LifecycleTransition.INSTANCE_TERMINATING,
            heartbeat_timeout=Duration.seconds(drain_seconds + 60),
            default_result=autoscaling.DefaultResult.CONTINUE,
        )
        self._grant(
            stack, bundle, audit_log_group, metrics_log_group, metrics_namespace, model_arns, secret_arns, secret_keys
        )

    def serve(self, target_group: elbv2.ApplicationTargetGroup, requests_per_instance_per_minute: int) -> None:
        """Register with the load balancer's target group and scale on its requests per instance."""
        # Attached by ARN, not attach_to_application_target_group(): that also writes the load balancer's
        # rule into the fleet's security group, whose stack must not depend on the balancer's.
        group = self.group.node.default_child
        assert isinstance(group, autoscaling.CfnAutoScalingGroup)
        group.target_group_arns = [target_group.target_group_arn]
        self.group.scale_to_track_metric(
            "Requests",
            metric=target_group.metrics.request_count_per_target(period=Duration.minutes(1), statistic="Sum"),
            target_value=requests_per_instance_per_minute,
        )

    def _grant(
        self,
        stack: Stack,
        bundle: GatewayBundle,
        audit_log_group: logs.ILogGroup,
        metrics_log_group: logs.ILogGroup,
        metrics_namespace: str,
        model_arns: Sequence[str],
        secret_arns: Sequence[str],
        secret_keys: Sequence[kms.IKey],
    ) -> None:
        """Least privilege, as a customer-managed policy (no inline policies, no AWS-managed ones)."""
        statements = [
            iam.PolicyStatement(
                sid="ReadOwnBundle",
                actions=["s3:GetObject"],
                resources=[bundle.asset.bucket.arn_for_objects(bundle.asset.s3_object_key)],
            ),
            iam.PolicyStatement(
                sid="ShipOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[audit_log_group.log_group_arn, metrics_log_group.log_group_arn],
            ),
            iam.PolicyStatement(
                sid="OwnMetricsNamespace",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": [metrics_namespace, "CWAgent"]}},
            ),
            iam.PolicyStatement(
                sid="SessionManager",
                actions=[
                    "ssm:UpdateInstanceInformation",
                    "ssmmessages:CreateControlChannel",
                    "ssmmessages:CreateDataChannel",
                    "ssmmessages:OpenControlChannel",
                    "ssmmessages:OpenDataChannel",
                    "ec2messages:AcknowledgeMessage",
                    "ec2messages:DeleteMessage",
                    "ec2messages:FailMessage",
                    "ec2messages:GetEndpoint",
                    "ec2messages:GetMessages",
                    "ec2messages:SendReply",
                ],
                resources=["*"],
                conditions={"StringEquals": {"aws:RequestedRegion": stack.region}},
            ),
            iam.PolicyStatement(
                sid="FinishOwnDrain",
                actions=["autoscaling:CompleteLifecycleAction"],
                resources=["*"],  # the group's ARN holds an id known only after creation: its tag names it
                conditions={"StringEquals": {f"autoscaling:ResourceTag/{FLEET_TAG}": self.node.addr}},
            ),
        ]
        if model_arns:
            statements.append(
                iam.PolicyStatement(
                    sid="InvokeConfiguredModels",
                    actions=["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
                    resources=list(model_arns),
                )
            )
        if secret_keys:
            statements.append(
                iam.PolicyStatement(
                    sid="DecryptOwnSecrets",
                    actions=["kms:Decrypt"],
                    resources=[key.key_arn for key in secret_keys],
                    conditions={"StringEquals": {"kms:ViaService": f"secretsmanager.{stack.region}.amazonaws.com"}},
                )
            )
        if secret_arns:
            statements.append(
                iam.PolicyStatement(
                    sid="ReadOwnSecrets", actions=["secretsmanager:GetSecretValue"], resources=list(secret_arns)
                )
            )
        self.policy = iam.ManagedPolicy(
            self, "Policy", description="aigw proxy instances", roles=[self.role], statements=statements
        )
        acknowledge(
            self.policy,
            f"{AWS_SOLUTIONS}-IAM5",
            f"{AWS_SOLUTIONS}-IAM5[Resource::*]",
            reason="Every '*' here carries a condition: cloudwatch:PutMetricData has no resource ARN (limited by "
            "cloudwatch:namespace to aigw and CWAgent); the Session Manager message actions have none (limited to this "
            "region); CompleteLifecycleAction needs the group's ARN, whose id exists only after creation (limited by "
            "the group's aigw:fleet tag).",
        )
