"""`make preflight ENV=<env>`: a read-only check of the target AWS account before `cdk deploy`.

    python scripts/preflight.py --env prod [--assembly cdk.out] [-c certificate_arn=ARN]

It uses the caller's credentials (boto3's default chain) and makes only Describe/Get/List calls: every
client it makes refuses any other operation before it is sent. It prints one line per check,

    PASS|WARN|FAIL  <check>  <what was found; for WARN and FAIL, what to do>

and exits 1 when a check FAILs (WARNs alone exit 0), 2 on a bad configuration. Without working
credentials (none, expired, rejected, another account's) it stops after the first line.

The caller needs: sts:GetCallerIdentity, organizations:DescribeOrganization, ce:GetAnomalyMonitors,
ce:ListCostAllocationTags, lambda:GetAccountSettings, acm:DescribeCertificate, bedrock:GetFoundationModel,
bedrock:GetFoundationModelAvailability, bedrock:GetInferenceProfile, ec2:DescribeVpcEndpointServices,
cloudformation:DescribeStacks. A check the caller may not run FAILs and names the action it needs.
"""

from __future__ import annotations

import argparse
import datetime
import enum
import functools
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    SSOError,
    TokenRetrievalError,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import AigwConfig, ConfigError, load_config, with_context  # noqa: E402
from gateway.settings import ModelRoute  # noqa: E402

# The cost-allocation tag the budgets, the team monitor and the team inference profiles use
# (constructs/cost_allocation.py TEAM_TAG; a test keeps the two equal without this script loading the CDK).
TEAM_TAG = "team"
# Below this, the account is on a new account's reduced Lambda quota (it can be 10 in all): AWS lets a
# function reserve concurrency only while 100 stay unreserved for the rest.
LOW_UNRESERVED_CONCURRENCY = 100
# Without a cloud assembly: aws-cdk-lib's DefaultStackSynthesizer.MIN_BOOTSTRAP_STACK_VERSION (2.275).
MIN_BOOTSTRAP_VERSION = 6
DEFAULT_TOOLKIT_STACK = "CDKToolkit"
DEFAULT_QUALIFIER = "hnb659fds"
# An imported certificate does not renew itself.
CERTIFICATE_RENEWAL_DAYS = 30

READ_ONLY_PREFIXES = ("Describe", "Get", "List")
# A preflight answers in seconds or says it could not: no minutes of retries against a failing API.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=20)

HOW_TO_SIGN_IN = (
    "sign in with `aws sso login --profile NAME` and set AWS_PROFILE=NAME, "
    "or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN)"
)
EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})
REJECTED_CODES = frozenset(
    {"InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException", "InvalidToken"}
)
ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException"})


class Status(enum.StrEnum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"


SEVERITY = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}
CHECK_WIDTH = 19


@dataclass(frozen=True)
class Result:
    status: Status
    check: str
    detail: str
    # The credentials cannot answer for this environment: the other checks would mean nothing.
    stops_the_run: bool = False

    def line(self) -> str:
        return f"{self.status}  {self.check:<{CHECK_WIDTH}}  {' '.join(self.detail.split())}"


class ReadOnlyError(RuntimeError):
    """A check tried an operation that could change the account."""


def _refuse_writes(model: Any, **_: Any) -> None:
    if not str(model.name).startswith(READ_ONLY_PREFIXES):
        raise ReadOnlyError(f"preflight is read-only: {model.service_model.service_name}:{model.name} refused")


class Clients:
    """One client per service, in the environment's region, each refusing any non-read operation."""

    def __init__(self, session: boto3.Session, region: str) -> None:
        self.session = session
        self.region = region
        self._made: dict[str, Any] = {}

    def __call__(self, service: str) -> Any:
        if service not in self._made:
            client = self.session.client(service, region_name=self.region, config=CLIENT_CONFIG)
            client.meta.events.register("before-call", _refuse_writes)
            self._made[service] = client
        return self._made[service]


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", "Unknown"))


def error_message(error: ClientError) -> str:
    message = str(error.response.get("Error", {}).get("Message", "")) or str(error)
    return " ".join(message.split())[:200]


# 1. Credentials ------------------------------------------------------------------------------------


def no_credentials(detail: str) -> Result:
    return Result(Status.FAIL, "credentials", f"{detail}: {HOW_TO_SIGN_IN}; nothing else was checked", True)


def check_credentials(clients: Clients, config: AigwConfig) -> Result:
    """The credentials work, and are for the environment's account."""
    try:
        if clients.session.get_credentials() is None:
            return no_credentials("no AWS credentials found")
        identity = clients("sts").get_caller_identity()
    except NoCredentialsError:
        return no_credentials("no AWS credentials found")
    except ClientError as error:
        code = error_code(error)
        if code in EXPIRED_CODES:
            return no_credentials(f"the AWS credentials have expired ({code})")
        if code in REJECTED_CODES:
            return no_credentials(f"AWS rejected the credentials ({code}: {error_message(error)})")
        raise
    except (TokenRetrievalError, SSOError) as error:  # an SSO session that expired or was never started
        return no_credentials(f"the AWS SSO session has expired or cannot be read ({error})")
    except (PartialCredentialsError, CredentialRetrievalError, ProfileNotFound) as error:
        return no_credentials(f"the AWS credentials could not be loaded ({error})")
    except BotoCoreError as error:
        return Result(Status.FAIL, "credentials", f"could not reach AWS STS ({error}); nothing else was checked", True)
    who = f"{identity['Arn']}, account {identity['Account']}"
    if identity["Account"] != config.account:
        return Result(
            Status.FAIL,
            "credentials",
            f"{who}; config/{config.environment}.yaml deploys to account {config.account}: "
            f"use credentials for {config.account}; nothing else was checked",
            True,
        )
    default_region = clients.session.region_name
    if default_region and default_region != config.region:
        return Result(
            Status.WARN,
            "credentials",
            f"{who}; your default region is {default_region}, the environment's is {config.region}: these checks "
            f"and `cdk deploy` use {config.region}; set AWS_REGION={config.region} for the AWS CLI to agree",
        )
    return Result(Status.PASS, "credentials", f"{who}, region {config.region}")


# 2. Organisation: where a cost-allocation-tag monitor may live --------------------------------------


class AccountRole(enum.Enum):
    MANAGEMENT = "the organisation's management (payer) account"
    STANDALONE = "a standalone account (no organisation)"
    MEMBER = "a member account"
    PRESUMED_MEMBER = "presumably a member account (organizations:DescribeOrganization was denied)"


def account_role(clients: Clients, account: str) -> tuple[AccountRole, str]:
    """The account's place in AWS Organizations, and the organisation's id and payer if known."""
    try:
        organization = clients("organizations").describe_organization()["Organization"]
    except ClientError as error:
        code = error_code(error)
        if code == "AWSOrganizationsNotInUseException":
            return AccountRole.STANDALONE, ""
        if code in ACCESS_DENIED_CODES:
            return AccountRole.PRESUMED_MEMBER, ""
        raise
    payer = str(organization["MasterAccountId"])
    where = f"organisation {organization['Id']}, management account {payer}"
    return (AccountRole.MANAGEMENT if payer == account else AccountRole.MEMBER), where


def check_organization(clients: Clients, config: AigwConfig) -> Result:
    """A monitor over a cost-allocation tag (the team monitor) can be created only in the payer account."""
    role, where = account_role(clients, config.account)
    found = f"{config.account} is {role.value}" + (f" ({where})" if where else "")
    team_monitor = config.cost_anomalies.team_monitor
    if role in (AccountRole.MEMBER, AccountRole.PRESUMED_MEMBER):
        if team_monitor:
            return Result(
                Status.FAIL,
                "organization",
                f"{found}; a cost-allocation-tag anomaly monitor can only be created in the management account: "
                "set cost_anomalies.team_monitor: false",
            )
        return Result(Status.PASS, "organization", f"{found}; cost_anomalies.team_monitor is off, as it must be here")
    if team_monitor or not config.teams:
        return Result(Status.PASS, "organization", f"{found}; a team (cost-allocation tag) monitor may be created here")
    return Result(
        Status.WARN,
        "organization",
        f"{found}; AWS's anomaly monitor by team could run here: set cost_anomalies.team_monitor: true",
    )


# 3. The one AWS-services anomaly monitor an account may have ----------------------------------------


def service_monitor_name(config: AigwConfig) -> str:
    return f"aigw-{config.environment}-by-service"


def anomaly_monitors(clients: Clients) -> list[dict[str, Any]]:
    ce = clients("ce")
    monitors: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = ce.get_anomaly_monitors(**({"NextPageToken": token} if token else {}))
        monitors.extend(page.get("AnomalyMonitors", []))
        token = page.get("NextPageToken")
        if not token:
            return monitors


def check_service_monitor(clients: Clients, config: AigwConfig) -> Result:
    ours = service_monitor_name(config)
    by_service = [
        m
        for m in anomaly_monitors(clients)
        if m.get("MonitorType") == "DIMENSIONAL" and m.get("MonitorDimension") == "SERVICE"
    ]
    others = [m for m in by_service if m.get("MonitorName") != ours]
    mine = len(by_service) > len(others)
    if config.cost_anomalies.service_monitor:
        if others:
            other = others[0]
            return Result(
                Status.FAIL,
                "service-monitor",
                f"'{other.get('MonitorName')}' ({other.get('MonitorArn')}) already monitors AWS services and an "
                "account may have only one such monitor: set cost_anomalies.service_monitor: false",
            )
        state = f"'{ours}' exists (from an earlier deploy)" if mine else f"none yet: aigw creates '{ours}'"
        return Result(Status.PASS, "service-monitor", f"AWS-services anomaly monitor: {state}")
    if others:
        return Result(
            Status.PASS,
            "service-monitor",
            f"cost_anomalies.service_monitor is off; '{others[0].get('MonitorName')}' already monitors AWS services",
        )
    return Result(
        Status.WARN,
        "service-monitor",
        "no anomaly monitor covers AWS services in this account"
        + (f" once the deploy removes '{ours}'" if mine else "")
        + ": set cost_anomalies.service_monitor: true",
    )


# 4. Lambda concurrency -----------------------------------------------------------------------------


def check_lambda_concurrency(clients: Clients, config: AigwConfig) -> Result:
    limit = clients("lambda").get_account_settings()["AccountLimit"]
    unreserved = int(limit["UnreservedConcurrentExecutions"])
    found = f"{unreserved} unreserved of {limit['ConcurrentExecutions']} concurrent executions in {config.region}"
    ask = "request more in Service Quotas (AWS Lambda, 'Concurrent executions'; the usual default is 1,000)"
    if unreserved == 0:
        return Result(Status.FAIL, "lambda-concurrency", f"{found}: every unreserved function is throttled: {ask}")
    if unreserved < LOW_UNRESERVED_CONCURRENCY:
        return Result(
            Status.WARN,
            "lambda-concurrency",
            f"{found}: a new account's reduced quota, shared by aigw's functions and everything else here: {ask}",
        )
    return Result(Status.PASS, "lambda-concurrency", found)


# 5. The load balancer's certificate ----------------------------------------------------------------


def covers(certificate_name: str, domain: str) -> bool:
    """Whether a certificate name covers `domain`; a wildcard stands for exactly one label."""
    name, host = certificate_name.lower().rstrip("."), domain.lower().rstrip(".")
    if name.startswith("*."):
        label, _, parent = host.partition(".")
        return bool(label) and parent == name[2:]
    return name == host


def check_certificate(clients: Clients, config: AigwConfig) -> Result:
    arn, domain = config.load_balancer.certificate_arn, config.load_balancer.domain_name
    _, _, _, region, account, _ = arn.split(":", 5)
    if region != config.region:
        return Result(
            Status.FAIL,
            "certificate",
            f"{arn} is in {region}; the load balancer is in {config.region} and can only use a certificate from "
            f"its own region: request or import one in {config.region}",
        )
    if account != config.account:
        return Result(
            Status.FAIL,
            "certificate",
            f"{arn} belongs to account {account}, not {config.account}: request or import one in {config.account}",
        )
    try:
        certificate = clients("acm").describe_certificate(CertificateArn=arn)["Certificate"]
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise
        return Result(
            Status.FAIL,
            "certificate",
            f"{arn} does not exist in {config.account}/{config.region}: request or import one for {domain} in "
            "ACM and set load_balancer.certificate_arn",
        )
    status = certificate["Status"]
    if status != "ISSUED":
        hint = "complete its DNS validation" if status == "PENDING_VALIDATION" else f"request a new one for {domain}"
        return Result(Status.FAIL, "certificate", f"{arn} is {status}, not ISSUED: {hint}")
    names = list(dict.fromkeys([certificate["DomainName"], *certificate.get("SubjectAlternativeNames", [])]))
    matching = [name for name in names if covers(name, domain)]
    if not matching:
        return Result(
            Status.FAIL,
            "certificate",
            f"{arn} covers {', '.join(names)}, not {domain} (load_balancer.domain_name): "
            f"use a certificate naming {domain} or *.{domain.partition('.')[2]}",
        )
    expires: datetime.datetime | None = certificate.get("NotAfter")
    found = f"{arn} is ISSUED and covers {domain} (as {matching[0]})"
    if expires is not None:
        found += f", expires {expires:%Y-%m-%d}"
        left = expires - datetime.datetime.now(expires.tzinfo)
        if certificate.get("Type") == "IMPORTED" and left < datetime.timedelta(days=CERTIFICATE_RENEWAL_DAYS):
            return Result(
                Status.WARN, "certificate", f"{found}: an imported certificate does not renew: re-import a new one"
            )
    return Result(Status.PASS, "certificate", found)


# 6. Bedrock model access ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    status: Status
    text: str


def has_operation(client: Any, operation: str) -> bool:
    return operation in client.meta.service_model.operation_names


def foundation_model_access(bedrock: Any, model_id: str, *, looked_up: bool = False) -> Finding:
    """Whether this account may invoke `model_id` in the client's region (`looked_up`: it is known to exist)."""
    if not has_operation(bedrock, "GetFoundationModelAvailability"):  # older botocore: existence only
        if not looked_up:
            bedrock.get_foundation_model(modelIdentifier=model_id)
        return Finding(Status.PASS, "offered here (this botocore cannot read access: upgrade it to check)")
    availability = bedrock.get_foundation_model_availability(modelId=model_id)
    if availability.get("regionAvailability") == "NOT_AVAILABLE":
        return Finding(Status.FAIL, f"not offered in {bedrock.meta.region_name}")
    if availability.get("authorizationStatus") == "NOT_AUTHORIZED":
        return Finding(
            Status.FAIL,
            "NOT_AUTHORIZED for this account: for Anthropic models submit the use-case details once (Bedrock "
            "console, model catalog), and check no SCP or IAM policy denies the model",
        )
    if availability.get("entitlementAvailability") == "NOT_AVAILABLE":
        return Finding(Status.FAIL, "no entitlement: open the model in the Bedrock console's model catalog")
    agreement = availability.get("agreementAvailability", {})
    if agreement.get("status") == "ERROR":
        return Finding(Status.FAIL, f"Marketplace agreement failed: {agreement.get('errorMessage', 'no message')}")
    if agreement.get("status") in ("NOT_AVAILABLE", "PENDING"):
        return Finding(
            Status.WARN,
            f"Marketplace agreement {agreement['status']}: invoke the model once from the console (the proxies' "
            "role may not subscribe to it)",
        )
    return Finding(Status.PASS, "access granted")


def foundation_model_finding(bedrock: Any, model_id: str) -> Finding:
    try:
        details = bedrock.get_foundation_model(modelIdentifier=model_id)["modelDetails"]
    except ClientError as error:
        if error_code(error) not in ("ResourceNotFoundException", "ValidationException"):
            raise
        return Finding(Status.FAIL, f"no such foundation model in {bedrock.meta.region_name}")
    if "ON_DEMAND" not in details.get("inferenceTypesSupported", ["ON_DEMAND"]):
        return Finding(
            Status.FAIL,
            "cannot be invoked on demand by its model id: configure the inference profile that routes to it "
            "(`aws bedrock list-inference-profiles`)",
        )
    access = foundation_model_access(bedrock, model_id, looked_up=True)
    if access.status is Status.PASS and details.get("modelLifecycle", {}).get("status") == "LEGACY":
        return Finding(Status.WARN, f"{access.text}, but LEGACY: AWS will retire it; plan a newer model")
    return access


def inference_profile_finding(bedrock: Any, route: ModelRoute) -> Finding:
    try:
        profile = bedrock.get_inference_profile(inferenceProfileIdentifier=route.id)
    except ClientError as error:
        if error_code(error) not in ("ResourceNotFoundException", "ValidationException"):
            raise
        return Finding(Status.FAIL, f"no such inference profile in {bedrock.meta.region_name}")
    if profile.get("status") != "ACTIVE":
        return Finding(Status.FAIL, f"inference profile is {profile.get('status')}, not ACTIVE")
    # Bedrock authorises the model in whichever Region the profile routes a request to: the policies name the
    # Regions aigw's table lists, so a Region Bedrock added since would be denied.
    reported = {str(m["modelArn"]).split(":")[3] for m in profile.get("models", [])}
    allowed = {arn.split(":")[3] for arn in route.model_arns}
    unlisted = sorted(reported - allowed) if "" not in allowed else []  # a global profile's model is allowed anywhere
    if unlisted:
        return Finding(
            Status.FAIL,
            f"Bedrock routes it to {', '.join(unlisted)} too, which the policies would deny: add "
            f"{'it' if len(unlisted) == 1 else 'them'} to its destinations (vendor.catalog.inference_profiles)",
        )
    # Model access is the account's, so this Region's answer stands for every Region the profile routes to.
    access = foundation_model_access(bedrock, route.foundation_model)
    if access.status is not Status.PASS:
        return access
    return Finding(Status.PASS, f"{profile.get('type')} profile to {len(reported)} Regions, access granted")


def check_bedrock_models(clients: Clients, config: AigwConfig) -> Result:
    if not config.vendor.is_bedrock:
        return Result(Status.PASS, "bedrock-models", f"not Bedrock: the vendor is {config.vendor.service}")
    bedrock = clients("bedrock")
    findings = [
        (
            route.id,
            inference_profile_finding(bedrock, route)
            if route.kind == "inference-profile"
            else foundation_model_finding(bedrock, route.id),
        )
        for route in config.models
    ]
    worst = max((finding.status for _, finding in findings), key=SEVERITY.__getitem__)
    return Result(worst, "bedrock-models", "; ".join(f"{model}: {finding.text}" for model, finding in findings))


# 7. The vendor's endpoint service in every AZ ------------------------------------------------------


def endpoint_service_name(config: AigwConfig) -> str:
    vendor = config.vendor
    return vendor.service if vendor.is_endpoint_service else f"com.amazonaws.{config.region}.{vendor.service}"


def check_endpoint_service(clients: Clients, config: AigwConfig) -> Result:
    name = endpoint_service_name(config)
    try:
        details = clients("ec2").describe_vpc_endpoint_services(ServiceNames=[name])["ServiceDetails"]
    except ClientError as error:
        if error_code(error) != "InvalidServiceName":
            raise
        details = []
    offered = sorted({az for detail in details if detail["ServiceName"] == name for az in detail["AvailabilityZones"]})
    if not offered:
        hint = (
            f"ask the vendor to allow arn:aws:iam::{config.account}:root on their endpoint service"
            if config.vendor.is_endpoint_service
            else f"the service is not offered in {config.region}"
        )
        return Result(Status.FAIL, "endpoint-service", f"{name} is not visible to {config.account}: {hint}")
    missing = [az for az in config.availability_zones if az not in offered]
    if missing:
        return Result(
            Status.FAIL,
            "endpoint-service",
            f"{name} is offered in {', '.join(offered)}, not in {', '.join(missing)}: remove "
            f"{'it' if len(missing) == 1 else 'them'} from availability_zones (or ask the provider to add "
            f"{'it' if len(missing) == 1 else 'them'})",
        )
    return Result(
        Status.PASS,
        "endpoint-service",
        f"{name} is offered in every configured AZ ({', '.join(config.availability_zones)})",
    )


# 8. The team cost-allocation tag -------------------------------------------------------------------


def check_cost_tag(clients: Clients, config: AigwConfig) -> Result:
    try:
        tags = clients("ce").list_cost_allocation_tags(TagKeys=[TEAM_TAG], Type="UserDefined")["CostAllocationTags"]
    except ClientError as error:
        if error_code(error) not in ACCESS_DENIED_CODES:
            raise
        return Result(
            Status.WARN,
            "cost-tag",
            f"cannot read cost-allocation tags from {config.account} ({error_code(error)}; member accounts usually "
            f"cannot): the management (payer) account must activate '{TEAM_TAG}' (Billing, Cost allocation tags)",
        )
    status = next((str(tag.get("Status")) for tag in tags if tag.get("TagKey") == TEAM_TAG), None)
    if status == "Active":
        return Result(Status.PASS, "cost-tag", f"'{TEAM_TAG}' is an active cost-allocation tag")
    if status is None:
        return Result(
            Status.WARN,
            "cost-tag",
            f"Billing does not know '{TEAM_TAG}' yet (a tag appears up to 24 h after tagged resources incur cost): "
            "activate it then (Billing, Cost allocation tags), or team budgets see no cost",
        )
    return Result(
        Status.FAIL,
        "cost-tag",
        f"'{TEAM_TAG}' is {status}: activate it (Billing, Cost allocation tags, in the payer account), "
        "or team budgets and the team monitor see no cost",
    )


# 9. The CDK bootstrap stack ------------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapRequirement:
    version: int
    source: str
    stack_name: str
    qualifier: str
    # Stack artifacts synthesized for another account/region than the config's.
    foreign: tuple[str, ...] = ()


def bootstrap_requirement(config: AigwConfig, assembly: Path | None, cdk_json: Path) -> BootstrapRequirement:
    """What `cdk deploy` will ask of the bootstrap stack: from the cloud assembly if there is one."""
    settings: dict[str, Any] = json.loads(cdk_json.read_text()) if cdk_json.is_file() else {}
    stack_name = str(settings.get("toolkitStackName") or DEFAULT_TOOLKIT_STACK)
    qualifier = str(settings.get("context", {}).get("@aws-cdk/core:bootstrapQualifier") or DEFAULT_QUALIFIER)
    if assembly is None:
        return BootstrapRequirement(MIN_BOOTSTRAP_VERSION, "aws-cdk-lib's minimum", stack_name, qualifier)
    artifacts = json.loads((assembly / "manifest.json").read_text()).get("artifacts", {})
    versions = [
        int(artifact["properties"]["requiresBootstrapStackVersion"])
        for artifact in artifacts.values()
        if "requiresBootstrapStackVersion" in artifact.get("properties", {})
    ]
    stacks = {name: a for name, a in artifacts.items() if a.get("type") == "aws:cloudformation:stack"}
    parameters = [a["properties"].get("bootstrapStackVersionSsmParameter", "") for a in stacks.values()]
    # "/cdk-bootstrap/<qualifier>/version": the qualifier the app was synthesized with.
    qualifier = next((p.split("/")[2] for p in parameters if p.count("/") == 3), qualifier)
    expected = f"aws://{config.account}/{config.region}"
    foreign = tuple(sorted(name for name, a in stacks.items() if a.get("environment", expected) != expected))
    return BootstrapRequirement(
        max(versions, default=MIN_BOOTSTRAP_VERSION), f"the assembly {assembly.name}", stack_name, qualifier, foreign
    )


def check_bootstrap(clients: Clients, config: AigwConfig, *, assembly: Path | None, cdk_json: Path) -> Result:
    required = bootstrap_requirement(config, assembly, cdk_json)
    bootstrap = f"npx cdk bootstrap aws://{config.account}/{config.region}" + (
        f" --qualifier {required.qualifier}" if required.qualifier != DEFAULT_QUALIFIER else ""
    )
    if required.foreign:
        return Result(
            Status.FAIL,
            "cdk-bootstrap",
            f"{required.source} was not synthesized for {config.account}/{config.region} "
            f"({', '.join(required.foreign)}): synthesize it with -c env={config.environment}",
        )
    try:
        stack = clients("cloudformation").describe_stacks(StackName=required.stack_name)["Stacks"][0]
    except ClientError as error:
        if error_code(error) != "ValidationError" or "does not exist" not in error_message(error):
            raise
        return Result(
            Status.FAIL,
            "cdk-bootstrap",
            f"no {required.stack_name} stack in {config.account}/{config.region}: run `{bootstrap}`",
        )
    status = str(stack["StackStatus"])
    if not status.endswith("_COMPLETE") or status.startswith(("ROLLBACK", "DELETE")):
        return Result(
            Status.FAIL,
            "cdk-bootstrap",
            f"{required.stack_name} is {status}: wait for it to settle, or run `{bootstrap}` again",
        )
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    parameters = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}
    if parameters.get("Qualifier", required.qualifier) != required.qualifier:
        return Result(
            Status.FAIL,
            "cdk-bootstrap",
            f"{required.stack_name} was bootstrapped with qualifier {parameters['Qualifier']}, the app uses "
            f"{required.qualifier}: run `{bootstrap}`",
        )
    if "BootstrapVersion" not in outputs:
        return Result(
            Status.FAIL, "cdk-bootstrap", f"{required.stack_name} has no BootstrapVersion output: run `{bootstrap}`"
        )
    version = int(outputs["BootstrapVersion"])
    found = f"{required.stack_name} is at version {version}; {required.source} needs {required.version} or later"
    if version < required.version:
        return Result(Status.FAIL, "cdk-bootstrap", f"{found}: run `{bootstrap}` to upgrade it")
    return Result(Status.PASS, "cdk-bootstrap", found)


def gateway_stack_name(config: AigwConfig) -> str:
    """The gateway stack's name (stacks/environment_stack.py names every stack so)."""
    return f"aigw-{config.environment}-gateway"


def check_deletion_protection(clients: Clients, config: AigwConfig) -> Result:
    """A protected load balancer cannot be deleted, so a failed first create would end in ROLLBACK_FAILED:
    protection goes on only once the gateway stack exists (README, "Deploying to a real account")."""
    name = gateway_stack_name(config)
    try:
        status = str(clients("cloudformation").describe_stacks(StackName=name)["Stacks"][0]["StackStatus"])
    except ClientError as error:
        if error_code(error) != "ValidationError" or "does not exist" not in error_message(error):
            raise
        status = None
    protected = config.load_balancer.deletion_protection
    field = f"load_balancer.deletion_protection is {'on' if protected else 'off'}"
    if status is None or status in ("CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED"):
        found = f"{name} has not been created yet" if status is None else f"{name} is {status} (never created)"
        if protected:
            return Result(
                Status.FAIL,
                "deletion-protection",
                f"{found} and {field}: a failed first create could not delete the load balancer "
                "(ROLLBACK_FAILED); set load_balancer.deletion_protection: false until the first deploy succeeds",
            )
        return Result(Status.PASS, "deletion-protection", f"{found}; {field}, as a first deploy needs")
    if not protected:
        return Result(
            Status.WARN,
            "deletion-protection",
            f"{name} exists ({status}) and {field}: set load_balancer.deletion_protection: true and deploy, "
            "so the load balancer cannot be deleted by accident",
        )
    return Result(Status.PASS, "deletion-protection", f"{name} exists ({status}); {field}")


# The run -------------------------------------------------------------------------------------------

Check = Callable[[Clients, AigwConfig], Result]


@dataclass(frozen=True)
class Step:
    name: str
    check: Check
    # What the caller needs for it (named when the check could not run).
    actions: tuple[str, ...]


def steps(assembly: Path | None, cdk_json: Path = ROOT / "cdk.json") -> list[Step]:
    """The checks after the credentials', in the order they print."""
    return [
        Step("organization", check_organization, ("organizations:DescribeOrganization",)),
        Step("service-monitor", check_service_monitor, ("ce:GetAnomalyMonitors",)),
        Step("lambda-concurrency", check_lambda_concurrency, ("lambda:GetAccountSettings",)),
        Step("certificate", check_certificate, ("acm:DescribeCertificate",)),
        Step(
            "bedrock-models",
            check_bedrock_models,
            ("bedrock:GetFoundationModel", "bedrock:GetFoundationModelAvailability", "bedrock:GetInferenceProfile"),
        ),
        Step("endpoint-service", check_endpoint_service, ("ec2:DescribeVpcEndpointServices",)),
        Step("cost-tag", check_cost_tag, ("ce:ListCostAllocationTags",)),
        Step("deletion-protection", check_deletion_protection, ("cloudformation:DescribeStacks",)),
        Step(
            "cdk-bootstrap",
            functools.partial(check_bootstrap, assembly=assembly, cdk_json=cdk_json),
            ("cloudformation:DescribeStacks",),
        ),
    ]


def run_step(step: Step, clients: Clients, config: AigwConfig) -> Result:
    """One check; an AWS error it did not expect is that check's FAIL, not the end of the run."""
    try:
        return step.check(clients, config)
    except ClientError as error:
        code = error_code(error)
        need = f": the caller needs {', '.join(step.actions)}" if code in ACCESS_DENIED_CODES else ""
        return Result(Status.FAIL, step.name, f"could not check ({code}: {error_message(error)}){need}")
    except BotoCoreError as error:
        return Result(Status.FAIL, step.name, f"could not check ({type(error).__name__}: {error})")


def preflight(
    clients: Clients, config: AigwConfig, checks: Iterable[Step], emit: Callable[[Result], None]
) -> list[Result]:
    """Credentials first (stopping there if they cannot answer for the environment), then every check."""
    results = [check_credentials(clients, config)]
    emit(results[0])
    if results[0].stops_the_run:
        return results
    for step in checks:
        results.append(run_step(step, clients, config))
        emit(results[-1])
    return results


def parse_context(pairs: Sequence[str]) -> dict[str, str]:
    context = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals:
            raise SystemExit(f"-c {pair}: expected KEY=VALUE")
        context[key] = value
    return context


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--env", default="dev", help="environment: config/<env>.yaml (default: dev)")
    parser.add_argument("--assembly", type=Path, help="the cloud assembly `cdk deploy` will use (e.g. cdk.out)")
    parser.add_argument(
        "-c", "--context", action="append", default=[], metavar="KEY=VALUE", help="as given to `cdk synth`"
    )
    args = parser.parse_args(argv)
    try:
        config = with_context(load_config(args.env), parse_context(args.context))
    except ConfigError as error:
        print(f"aigw: bad configuration, nothing was checked:\n{error}", file=sys.stderr)
        return 2
    if args.assembly is not None and not (args.assembly / "manifest.json").is_file():
        print(f"aigw: {args.assembly} is not a cloud assembly (no manifest.json): run `make synth`", file=sys.stderr)
        return 2

    def emit(result: Result) -> None:
        print(result.line(), flush=True)

    try:
        session = boto3.Session()
    except ProfileNotFound as error:
        emit(no_credentials(f"the AWS profile could not be found ({error})"))
        return 1
    results = preflight(Clients(session, config.region), config, steps(args.assembly), emit)
    failed = [result.check for result in results if result.status is Status.FAIL]
    warned = [result.check for result in results if result.status is Status.WARN]
    print(
        f"preflight {config.environment}: {len(failed)} FAIL, {len(warned)} WARN"
        + (": fix each FAIL before `make deploy`" if failed else ""),
        file=sys.stderr,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
