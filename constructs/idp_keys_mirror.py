"""The IdP's signing keys for a VPC with no route out: the `lambda/idp_keys` function, outside the VPC, mirrors the
company IdP's public keys (its JWKS) into an SSM parameter every few minutes and whenever a gateway meets a key id
it does not know; the gateway reads the parameter through the VPC's SSM endpoint and asks for a refresh through its
Lambda endpoint. The VPC itself never gets a route to the internet.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_ssm as ssm
from constructs import Construct
from constructs.compliance import AWS_SOLUTIONS, CONTROL_TOWER, NIST_R5, PCI_DSS, acknowledge, acknowledge_scanner
from constructs.function_outside_vpc import (
    dead_letter_queue,
    failure_alarms,
    logs_and_role,
    run_after,
    run_time_statements,
)
from constructs.project_key import ProjectKey

CODE = Path(__file__).resolve().parents[1] / "lambda" / "idp_keys"
HANDLER = "idp_keys_handler.handler"
RUNTIME = lambda_.Runtime.PYTHON_3_14
# The value CloudFormation creates the parameter with (lambda/idp_keys/idp_keys.py EMPTY_VALUE): no keys yet.
INITIAL_VALUE = '{"fetched_at":null,"keys":[]}'


class IdpKeysMirror(Construct):
    """Exposes `function`, `parameter`, `dead_letters`, `schedule`, `alarms`; `parameter_name` and `function_name`
    as plain strings (fixed at synth, so the gateway's bundled settings can hold them); and `gateway_statements`,
    what a gateway's role needs: read the parameter, ask the function for a refresh."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        key: ProjectKey,
        topic: sns.ITopic,
        environment: str,
        issuer: str,
        log_retention_days: int,
        discovery_url: str | None = None,
        token_endpoint: str | None = None,
        every_minutes: int = 5,
        min_refresh_seconds: int = 60,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        prefix = f"aigw-{environment}"
        self.parameter_name = f"/aigw/{environment}/idp-jwks"
        self.function_name = f"{prefix}-idp-keys"

        # Created here with an empty key set so that IAM and the gateway can name it; the function overwrites the
        # value. CloudFormation writes INITIAL_VALUE again only if this resource's properties change, and the
        # gateway's next unknown kid (or the next scheduled run) fills it again.
        self.parameter = ssm.StringParameter(
            self,
            "Parameter",
            parameter_name=self.parameter_name,
            string_value=INITIAL_VALUE,
            # Standard while the trimmed key set fits 4 KB, advanced (8 KB) when it does not; the function's writes
            # ask for the same, since Parameter Store cannot move a parameter back to the standard tier.
            tier=ssm.ParameterTier.INTELLIGENT_TIERING,
            description=f"{prefix}: the IdP's public signing keys (JWKS), written by {self.function_name}",
        )
        self.dead_letters = dead_letter_queue(self, key=key, function="IdP-keys")
        self.logs, role = logs_and_role(
            self,
            key=key,
            log_group_name=f"/aws/lambda/{self.function_name}",
            retention_days=log_retention_days,
            role_description=f"{prefix} IdP-keys function: mirror the IdP's public keys into one SSM parameter",
        )
        policy = iam.ManagedPolicy(
            self,
            "Policy",
            description=f"{prefix} IdP-keys function",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    sid="MirrorKeys",
                    actions=["ssm:GetParameter", "ssm:PutParameter"],
                    resources=[self.parameter.parameter_arn],
                ),
                *run_time_statements(self, dead_letters=self.dead_letters, log_group=self.logs.log_group),
                # The dead-letter queue's messages. The environment variables need no statement: Lambda decrypts
                # them through the grant it creates for this role on the key (the key's policy lets IAM decide).
                iam.PolicyStatement(
                    sid="ProjectKeyThroughSqs",
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[key.key.key_arn],
                    conditions={"StringEquals": {"kms:ViaService": f"sqs.{stack.region}.amazonaws.com"}},
                ),
            ],
        )
        acknowledge(
            policy,
            f"{AWS_SOLUTIONS}-IAM5",
            f"{AWS_SOLUTIONS}-IAM5[Resource::*]",
            reason="The X-Ray trace actions have no resource ARNs, so they are limited by aws:RequestedRegion to "
            "this region. Everything else names its one parameter, queue, log group or key.",
        )

        environment_variables = {
            "ISSUER": issuer,
            "PARAMETER_NAME": self.parameter_name,
            "MIN_REFRESH_SECONDS": str(min_refresh_seconds),
        }
        if discovery_url is not None:
            environment_variables["DISCOVERY_URL"] = discovery_url
        if token_endpoint is not None:  # sign-in's code exchange, passed through (lambda/idp_keys)
            environment_variables["CODE_EXCHANGE_URL"] = token_endpoint
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=self.function_name,
            runtime=RUNTIME,
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(CODE), exclude=["__pycache__", "*.pyc"]),
            # Grants would land in an inline policy: the managed policy above already holds all of them.
            role=role.without_policy_updates(),
            timeout=Duration.seconds(30),  # two requests to the IdP of at most 5 s each, and two SSM calls
            memory_size=256,
            tracing=lambda_.Tracing.ACTIVE,
            dead_letter_queue=self.dead_letters,
            # An on-demand refresh is worth little minutes later, and the schedule comes round every few minutes.
            retry_attempts=1,
            max_event_age=Duration.minutes(5),
            log_group=self.logs.log_group,
            environment=environment_variables,
            environment_encryption=key.key,
            description=f"{prefix}: mirror the IdP's public signing keys into {self.parameter_name}",
        )
        run_after(self.function, policy)
        if token_endpoint is not None:
            acknowledge_scanner(
                self.function,
                "CKV_AWS_45",
                reason="CODE_EXCHANGE_URL is the IdP's public token endpoint URL (…/v1/token), which checkov's "
                "keyword scan takes for a token; no credential is in the environment, and the variables are "
                "encrypted with the project key anyway.",
            )
        acknowledge(
            self.function,
            f"{NIST_R5}-LambdaConcurrency",
            reason="Reserved concurrency fails to deploy in accounts whose unreserved-concurrency quota is low (AWS "
            "keeps 100 unreserved; new accounts may have 10 in all). Runs that overlap are harmless: each writes the "
            "same public key set, only when it changed, and on-demand runs are rate-limited by the time the last "
            "write recorded in the parameter.",
        )
        acknowledge(
            self.function,
            f"{PCI_DSS}-LambdaInsideVPC",
            f"{NIST_R5}-LambdaInsideVPC",
            f"{CONTROL_TOWER}::lambda_inside_vpc_check",
            reason="It exists to fetch the company IdP's public signing keys from the IdP on the internet, for the "
            "gateway's VPC, which has no route out by design (no internet or NAT gateway), and to pass sign-in's "
            "one-time code exchange to the IdP's configured token endpoint. It keeps no secrets, reaches nothing in "
            "the VPC, and writes only the public key set to one SSM parameter.",
        )

        self.schedule = events.Rule(
            self,
            "Schedule",
            description=f"{prefix}: mirror the IdP's public signing keys",
            schedule=events.Schedule.rate(Duration.minutes(every_minutes)),
            targets=[targets.LambdaFunction(self.function, retry_attempts=2, max_event_age=Duration.minutes(5))],
        )
        self.gateway_statements = (
            iam.PolicyStatement(
                sid="ReadIdpKeys", actions=["ssm:GetParameter"], resources=[self.parameter.parameter_arn]
            ),
            iam.PolicyStatement(
                sid="AskForIdpKeysRefresh", actions=["lambda:InvokeFunction"], resources=[self.function.function_arn]
            ),
        )
        self.alarms = failure_alarms(
            self,
            topic=topic,
            function=self.function,
            dead_letters=self.dead_letters,
            errors_period=Duration.minutes(5),
            errors_periods=3,
            failing="the IdP-keys function has failed for 15 minutes: a new IdP signing key will not reach the "
            "gateway, whose users then get 'unknown_signing_key'",
            dead_lettered="IdP-keys runs ended in the dead-letter queue",
            runbook="idp-keys",
        )
