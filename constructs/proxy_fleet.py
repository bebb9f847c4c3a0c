"""The proxy fleet: an Auto Scaling group across every AZ, running the gateway from its offline bundle.

One AZ's network fault once took the whole (single-AZ) proxy layer down for 47 minutes; this fleet
spans every configured AZ, replaces instances one at a time keeping full capacity, and lets a
leaving instance finish its streams and flush its audit file before it goes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Duration, Stack, Tags
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct
from constructs.compliance import AWS_SOLUTIONS, CONTROL_TOWER, acknowledge
from constructs.gateway_bundle import PREFIX, GatewayBundle
from constructs.model_access import MANAGED_POLICY_CHARS, check_size, deployed_length
from constructs.private_network import availability_zones_of

from gateway.settings import worker_path

# Amazon Linux 2023's public SSM parameter: resolved by CloudFormation at deploy, not looked up at synth.
AL2023_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
AGENT_CONFIG = "/opt/aws/amazon-cloudwatch-agent/etc/aigw.json"
FLEET_TAG = "aigw:fleet"
# What the agent publishes for the root volume (its default namespace, its disk plugin's metric name).
AGENT_NAMESPACE = "CWAgent"
ROOT_VOLUME = "/"
DISK_USED_PERCENT = "disk_used_percent"
# The agent config names its group with this; the instance puts in its group's name at boot.
GROUP_PLACEHOLDER = "@AUTO_SCALING_GROUP@"
# How long a new instance's gateway has to answer 200 on /healthz before the instance signals FAILURE.
HEALTH_WAIT_SECONDS = 300
# EC2 refuses user data longer than this (before base64). A token in it (a deploy-time value) counts as this much.
USER_DATA_BYTES = 16_384
TOKEN_BYTES = 64


@dataclass(frozen=True)
class FleetSizing:
    """The field report's fleet: c6i.xlarge, 2 to 6 instances, across every AZ."""

    instance_type: str = "c6i.xlarge"
    min_instances: int = 2
    max_instances: int = 6
    cpu_target_percent: int = 60
    health_check_grace_seconds: int = 300
    # How long CloudFormation waits for each new instance's signal: packages, the bundle, then the
    # health wait (HEALTH_WAIT_SECONDS). Never shorter than the grace period.
    boot_timeout_seconds: int = 900


@dataclass(frozen=True)
class ResourceSignal:
    """Where a new instance reports to CloudFormation whether it serves: the group's logical id in its
    stack. `role` is the instance's role name: cfn-signal signs with its credentials."""

    stack: str
    resource: str
    region: str
    role: str

    @property
    def options(self) -> str:
        return f"--stack {self.stack} --resource {self.resource} --region {self.region} --role {self.role}"


def root_volume_used_percent(group_name: str) -> cloudwatch.Metric:
    """The root volume's fullness on the group's fullest instance: the series `agent_config` rolls up
    per group (the alarm's metric)."""
    return cloudwatch.Metric(
        namespace=AGENT_NAMESPACE,
        metric_name=DISK_USED_PERCENT,
        dimensions_map={"AutoScalingGroupName": group_name, "path": ROOT_VOLUME},
        statistic="Maximum",
        period=Duration.minutes(5),
    )


def agent_config(shipped: Mapping[str, str], workers: int) -> dict[str, object]:
    """The CloudWatch agent ships each of the gateway's files (path -> log group: audit records, EMF metrics,
    telemetry events) as every worker writes its own (audit-0.jsonl, ...), one stream per worker and instance
    (one file per entry: with a wildcard the agent follows only the newest file), and publishes the root
    volume's use, rolled up per group (a full disk once made the fleet replace itself). The group's name is a
    literal the instance fills in at boot: the agent's own ${aws:AutoScalingGroupName} would call
    ec2:DescribeTags, which needs an EC2 API endpoint this VPC does not have."""
    files = [
        {
            "file_path": str(worker_path(Path(path), index)),
            "log_group_name": group,
            "log_stream_name": f"{{instance_id}}/worker-{index}",
        }
        for path, group in shipped.items()
        for index in range(workers)
    ]
    disk = {
        "resources": [ROOT_VOLUME],
        "measurement": ["used_percent"],
        "drop_device": True,
        "metrics_collection_interval": 60,
        "append_dimensions": {"AutoScalingGroupName": GROUP_PLACEHOLDER},
    }
    metrics = {
        "namespace": AGENT_NAMESPACE,
        "metrics_collected": {"disk": disk},
        # Besides each instance's own series (host, path, fstype, group): one per group and path.
        "aggregation_dimensions": [["AutoScalingGroupName", "path"]],
    }
    return {"metrics": metrics, "logs": {"logs_collected": {"files": {"collect_list": files}}}}


def user_data_script(
    *,
    bundle_s3_url: str,
    region: str,
    shipped: Mapping[str, str],
    workers: int,
    environment: Mapping[str, str],
    signal: ResourceSignal,
) -> str:
    """First boot, run by bash: OS packages from the AL2023 repositories and the gateway from its
    bundle, both through the S3 gateway endpoint; nothing from the internet. `environment` is what the
    gateway learns only at deploy time (its service reads it as an EnvironmentFile). It ends by telling
    CloudFormation whether the gateway answers on /healthz; any step failing before that signals
    FAILURE at once (the EXIT trap) instead of leaving CloudFormation to time out."""
    config = json.dumps(agent_config(shipped, workers), indent=2)
    variables = "\n".join(f"{name}={value}" for name, value in {"AWS_REGION": region, **environment}.items())
    return f"""set -euo pipefail
export AWS_REGION={region} PATH="$PATH:/opt/aws/bin"
signal_failure() {{ cfn-signal --success false {signal.options} || true; }}
trap 'status=$?; [ "$status" -eq 0 ] || signal_failure' EXIT
dnf install -y aws-cfn-bootstrap
dnf install -y python3.11 python3.11-pip amazon-cloudwatch-agent logrotate
mkdir -p {PREFIX}/etc
cat > {PREFIX}/etc/environment <<'ENVIRONMENT'
{variables}
ENVIRONMENT
work=$(mktemp -d)
aws s3 cp {bundle_s3_url} "$work/bundle.zip"
python3.11 -m zipfile -e "$work/bundle.zip" "$work/bundle"
AIGW_PREFIX={PREFIX} AIGW_PYTHON=python3.11 sh "$work/bundle/install.sh" --system
imds=http://169.254.169.254/latest
imds_token=$(curl -sf -X PUT "$imds/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 300")
group=$(curl -sf -H "X-aws-ec2-metadata-token: $imds_token" "$imds/meta-data/tags/instance/aws:autoscaling:groupName")
cat > {AGENT_CONFIG} <<'AGENT'
{config}
AGENT
sed -i "s|{GROUP_PLACEHOLDER}|$group|" {AGENT_CONFIG}
/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c file:{AGENT_CONFIG}
trap - EXIT
exec bash "$work/bundle/signal-when-healthy.sh" {signal.options} --wait {HEALTH_WAIT_SECONDS}
"""


def machine_image(image: str, region: str) -> ec2.IMachineImage:
    """An AMI id goes into the template as it is: the fleet changes only when the config does. An SSM
    parameter name is resolved by CloudFormation at every deploy: when a new AMI is published behind
    it, an unrelated deploy replaces every instance."""
    if image.startswith("ami-"):
        return ec2.MachineImage.generic_linux({region: image})
    return ec2.MachineImage.from_ssm_parameter(image)


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
        log_groups: Mapping[str, logs.ILogGroup],
        metrics_namespace: str,
        model_statements: Sequence[Sequence[iam.PolicyStatement]] = (),
        secret_arns: Sequence[str] = (),
        secret_keys: Sequence[kms.IKey] = (),
        environment: Mapping[str, str] | None = None,
        drain_seconds: int = 630,
        sizing: FleetSizing = FleetSizing(),
        role_name: str | None = None,
        image: str = AL2023_PARAMETER,
        extra_statements: Sequence[iam.PolicyStatement] = (),
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
        # Written once the group exists: the script names the group's logical id for cfn-signal.
        user_data = ec2.UserData.for_linux(shebang="#!/bin/bash")
        self.launch_template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            machine_image=machine_image(image, stack.region),
            instance_type=ec2.InstanceType(sizing.instance_type),
            # Without policy updates: the group's signals would add SignalResource as an inline policy;
            # the customer-managed one below grants it (_grant).
            role=self.role.without_policy_updates(),
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
            # A create completes only when the minimum of instances have signalled that they serve; a
            # changed launch template replaces instances one at a time, never below the minimum, each
            # new one signalling before the next goes (WaitOnResourceSignals). A FAILURE rolls back.
            signals=autoscaling.Signals.wait_for_min_capacity(
                timeout=Duration.seconds(max(sizing.boot_timeout_seconds, sizing.health_check_grace_seconds))
            ),
            update_policy=autoscaling.UpdatePolicy.rolling_update(
                max_batch_size=1, min_instances_in_service=sizing.min_instances
            ),
            group_metrics=[autoscaling.GroupMetrics.all()],
        )
        Tags.of(self.group).add(FLEET_TAG, self.node.addr)
        group = self.group.node.default_child
        assert isinstance(group, autoscaling.CfnAutoScalingGroup)
        signal = ResourceSignal(
            stack=stack.stack_name, resource=stack.get_logical_id(group), region=stack.region, role=self.role.role_name
        )
        script = user_data_script(
            bundle_s3_url=bundle.asset.s3_object_url,
            region=stack.region,
            shipped={path: group.log_group_name for path, group in log_groups.items()},
            workers=bundle.settings.workers,
            environment=environment or {},
            signal=signal,
        )
        size = deployed_length(script, TOKEN_BYTES)
        if size > USER_DATA_BYTES:
            raise ValueError(f"the instances' user data would be about {size:,} bytes, over EC2's {USER_DATA_BYTES:,}")
        user_data.add_commands(script)
        # Launches and terminations, successful or not, reach the alerts topic through EventBridge: Auto Scaling's
        # own notifications publish as its service-linked role, which the topic key's policy cannot name before
        # the role exists in a new account.
        self.scaling_events = events.Rule(
            self,
            "ScalingEvents",
            description="aigw proxy fleet: instance launches and terminations, to the alerts topic",
            event_pattern=events.EventPattern(
                source=["aws.autoscaling"],
                detail_type=[
                    "EC2 Instance Launch Successful",
                    "EC2 Instance Launch Unsuccessful",
                    "EC2 Instance Terminate Successful",
                    "EC2 Instance Terminate Unsuccessful",
                ],
                detail={"AutoScalingGroupName": [self.group.auto_scaling_group_name]},
            ),
        )
        # Named on the L1: the SnsTopic target would also add an unconditioned statement to the topic's policy,
        # which already lets this account's rules publish (AlertsTopic).
        rule = self.scaling_events.node.default_child
        assert isinstance(rule, events.CfnRule)
        rule.targets = [events.CfnRule.TargetProperty(id="AlertsTopic", arn=alerts.topic_arn)]
        acknowledge(
            self.group,
            f"{AWS_SOLUTIONS}-AS3",
            reason="Launch and termination events, successful or not, reach the encrypted alerts topic through the "
            "EventBridge rule ScalingEvents. The group's own notifications would publish as the Auto Scaling "
            "service-linked role, which the topic key's policy cannot name before that role exists in a new account.",
        )
        acknowledge(
            self.group,
            f"{CONTROL_TOWER}::autoscaling_multiple_az_check",
            reason="The group spans the workload subnets, one per AZ of the config (VPCZoneIdentifier), as CDK writes "
            "it; this cfn-guard rule reads only AvailabilityZones, which CDK leaves unset when it gives subnets. The "
            "audit report's Multi-AZ control reads the subnets' AZs.",
        )
        acknowledge(
            self.group,
            f"{CONTROL_TOWER}::autoscaling_mixed_instances_policy_multiple_instance_types_check",
            reason="One instance type (fleet.instance_type), so that every instance has the capacity the scaling "
            "targets and workers_per_instance were measured on; a second type needs its own measured capacity and "
            "weights first. Capacity across AZs and Capacity Rebalancing cover losing a pool.",
        )
        self.group.scale_on_cpu_utilization("Cpu", target_utilization_percent=sizing.cpu_target_percent)
        self.group.add_lifecycle_hook(
            "Drain",
            lifecycle_hook_name=self.LIFECYCLE_HOOK,
            lifecycle_transition=autoscaling.LifecycleTransition.INSTANCE_TERMINATING,
            heartbeat_timeout=Duration.seconds(drain_seconds + 60),
            default_result=autoscaling.DefaultResult.CONTINUE,
        )
        self._grant(stack, bundle, list(log_groups.values()), metrics_namespace, secret_arns, secret_keys)
        # What the stack's other parts let the gateway do (e.g. read the IdP-keys mirror), in the same policy.
        self.policy.add_statements(*extra_statements)
        # Invoking the models: a policy per model, as each lists every team's profile (IAM caps a policy's size).
        self.model_policies: list[iam.ManagedPolicy] = []
        for index, statements in enumerate(model_statements, start=1):
            check_size(statements, MANAGED_POLICY_CHARS, f"the proxies' policy for model {index}")
            self.model_policies.append(
                iam.ManagedPolicy(
                    self, f"ModelPolicy{index}", description="aigw proxy instances: invoke a model",
                    roles=[self.role], statements=list(statements),
                )
            )  # fmt: skip
        # The first instances fetch the bundle and signal as soon as they boot: their role must hold its policy by
        # then. The launch template needs nothing more than its instance profile, which already names the role
        # (CDK's own DependsOn on the role repeats that, and cfn-lint reports it as W3005).
        self.group.node.add_dependency(self.policy, *self.model_policies)
        launch_template = self.launch_template.node.default_child
        assert isinstance(launch_template, ec2.CfnLaunchTemplate)
        launch_template.add_deletion_override("DependsOn")

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
        log_groups: Sequence[logs.ILogGroup],
        metrics_namespace: str,
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
                resources=[group.log_group_arn for group in log_groups],
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
                sid="SignalOwnStack",  # cfn-signal --role: a new instance reports whether it serves
                actions=["cloudformation:SignalResource"],
                resources=[stack.stack_id],
            ),
            iam.PolicyStatement(
                sid="FinishOwnDrain",
                actions=["autoscaling:CompleteLifecycleAction"],
                resources=["*"],  # the group's ARN holds an id known only after creation: its tag names it
                conditions={"StringEquals": {f"autoscaling:ResourceTag/{FLEET_TAG}": self.node.addr}},
            ),
        ]
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
