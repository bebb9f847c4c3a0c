"""The availability SLI's client-side half: a CloudWatch Synthetics canary in the workload subnets that calls the
internal load balancer every minute as a developer's client would (lambda/availability_canary), and the secret
that is its credential."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_synthetics as synthetics
from constructs import Construct
from constructs.bucket_events import publish_object_events
from constructs.compliance import (
    AWS_SOLUTIONS,
    CONTROL_TOWER,
    NIST_R5,
    PCI_DSS,
    acknowledge,
    acknowledge_imported,
    logical_id_of,
)
from constructs.data_retention import KEEP_DATA

SCRIPT = Path(__file__).resolve().parent.parent / "lambda" / "availability_canary"
HANDLER = "aigw_canary.handler"
# Synthetics' own metrics; the SLI reads SuccessPercent by canary name.
NAMESPACE = "CloudWatchSynthetics"


class CanaryCredential(Construct):
    """The canary's bearer token: 48 random characters, encrypted with the project key. The gateway takes it for
    the canary identity only (gateway.auth.CanaryToken). Exposes `secret`."""

    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey, secret_name: str) -> None:
        super().__init__(scope, construct_id)
        self.secret = secretsmanager.Secret(
            self,
            "Secret",
            secret_name=secret_name,
            description="aigw: the availability canary's bearer token (stands only for the canary identity)",
            encryption_key=key,
            generate_secret_string=secretsmanager.SecretStringGenerator(password_length=48, exclude_punctuation=True),
        )
        acknowledge(
            self.secret,
            f"{AWS_SOLUTIONS}-SMG4",
            f"{NIST_R5}-SecretsManagerRotationEnabled",
            reason="The canary's token grants only the canary identity (tiny prompts, no team's budget, one user's "
            "rate limit). A new value (put-secret-value) takes effect without a rotation function: the canary reads "
            "the secret on every run and the gateway again within a minute of the first token it does not know.",
        )


class AvailabilityCanary(Construct):
    """Every `every_minutes`, `/healthz` and one authenticated request with one output token, through the load
    balancer's DNS name as `domain_name` (its certificate's name). Runs in `subnets` with a security group of its
    own (exposed as `security_group`: the load balancer must let it in), a named role (`role_name`: key policies
    can name it before it exists), artifacts kept `retention_days` in a KMS-encrypted bucket of its own whose access
    logs go to `access_logs`. Exposes `canary`, `name` and `role`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        load_balancer_dns: str,
        domain_name: str,
        model: str | None,
        token: secretsmanager.ISecret,
        key: kms.IKey,
        role_name: str,
        access_logs: s3.IBucket,
        runtime: str,
        every_minutes: int = 1,
        retention_days: int = 90,
    ) -> None:
        super().__init__(scope, construct_id)
        if not 1 <= len(name) <= 21:  # the Synthetics console and CDK's own names keep to 21 characters
            raise ValueError(f"a canary's name has 1 to 21 characters: {name!r}")
        stack = Stack.of(self)
        self.name = name
        self.artifacts = s3.Bucket(
            self,
            "Artifacts",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="canary-artifacts/",
            removal_policy=KEEP_DATA,
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=Duration.days(retention_days), noncurrent_version_expiration=Duration.days(1)
                )
            ],
        )
        publish_object_events(self.artifacts)
        acknowledge_imported(
            self.artifacts, "s3_bucket_logging_enabled_check", setting="LoggingConfiguration", source=access_logs
        )
        acknowledge(
            self.artifacts,
            f"{CONTROL_TOWER}::s3_bucket_object_lock_enabled_check",
            reason=f"The canary's run reports (each step's timing, answer status and log) are diagnostics that expire "
            f"after {retention_days} days, written only by the canary's role; they record no user's request.",
        )
        acknowledge(
            self.artifacts,
            f"{PCI_DSS}-S3BucketReplicationEnabled",
            f"{NIST_R5}-S3BucketReplicationEnabled",
            reason=f"The canary's run reports are operational telemetry kept {retention_days} days in-region; its "
            "results that count (the SLI) are CloudWatch metrics, and its requests are in the audit trail.",
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            allow_all_outbound=False,
            description="aigw availability canary: HTTPS to the load balancer and the VPC endpoints only",
        )
        # The load balancer, the interface endpoints and the S3 gateway endpoint: the subnets have no route out.
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS inside the VPC")
        self.role = iam.Role(
            self,
            "Role",
            role_name=role_name,
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="aigw availability canary",
        )
        log_groups = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws/lambda/cwsyn-*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        in_region = {"StringEquals": {"aws:RequestedRegion": stack.region}}
        statements = [
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:GetObject"], resources=[self.artifacts.arn_for_objects("*")]
            ),
            iam.PolicyStatement(actions=["s3:GetBucketLocation"], resources=[self.artifacts.bucket_arn]),
            # Synthetics lists buckets before it writes (its documented role); it reads nothing from them.
            iam.PolicyStatement(actions=["s3:ListAllMyBuckets"], resources=["*"], conditions=in_region),
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": NAMESPACE}},
            ),
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_groups, f"{log_groups}:*"],
            ),
            # The function's network interfaces in the workload subnets; EC2 names none of them in advance.
            iam.PolicyStatement(
                actions=[
                    "ec2:CreateNetworkInterface",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DeleteNetworkInterface",
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:UnassignPrivateIpAddresses",
                ],
                resources=["*"],
                conditions=in_region,
            ),
            iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"], resources=[token.secret_arn]),
            iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[key.key_arn]),
        ]
        self.policy = iam.ManagedPolicy(
            self, "Policy", description="aigw availability canary", roles=[self.role], statements=statements
        )
        acknowledge(
            self.policy,
            f"{AWS_SOLUTIONS}-IAM5",
            f"{AWS_SOLUTIONS}-IAM5[Resource::*]",
            f"{AWS_SOLUTIONS}-IAM5[Resource::<{logical_id_of(self.artifacts)}.Arn>/*]",
            f"{AWS_SOLUTIONS}-IAM5[Resource::{log_groups}]",
            f"{AWS_SOLUTIONS}-IAM5[Resource::{log_groups}:*]",
            reason="Synthetics names the canary's function and log group (cwsyn-<name>-<id>) and each run's artifact "
            "keys only when it runs: the log groups are limited to cwsyn-*, the objects to this canary's own bucket. "
            "PutMetricData has no resource ARN (limited to the CloudWatchSynthetics namespace); ListAllMyBuckets and "
            "the network-interface actions of a function in a VPC have none either (limited to this region).",
        )
        self.canary = synthetics.Canary(
            self,
            "Canary",
            canary_name=name,
            runtime=synthetics.Runtime(runtime, synthetics.RuntimeFamily.PYTHON),
            test=synthetics.Test.custom(code=synthetics.Code.from_asset(str(SCRIPT)), handler=HANDLER),
            schedule=synthetics.Schedule.rate(Duration.minutes(every_minutes)),
            # One data point per scheduled run: a retry would hide a failure from the SLI.
            max_retries=0,
            timeout=Duration.seconds(min(60 * every_minutes, 50)),
            role=self.role,
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[self.security_group],
            artifacts_bucket_location=synthetics.ArtifactsBucketLocation(bucket=self.artifacts, prefix="runs"),
            success_retention_period=Duration.days(retention_days),
            failure_retention_period=Duration.days(retention_days),
            provisioned_resource_cleanup=True,
            environment_variables={
                "AIGW_LOAD_BALANCER": load_balancer_dns,
                "AIGW_DOMAIN": domain_name,
                **({"AIGW_MODEL": model} if model else {}),
                "AIGW_CANARY_TOKEN_SECRET_ID": token.secret_arn,
            },
        )
        self.canary.node.add_dependency(self.policy)  # its first run must be able to write
