"""Typed configuration: one YAML file per environment, validated before any construct exists.

Defaults are the field report's numbers (see DESIGN.md); a YAML file names only what differs.
Every model forbids unknown keys, so a typo stops synth instead of silently keeping a default.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from config.models import ANTHROPIC_ID, SHIPPED_CATALOG, Catalog, resolve_models, shipped_catalog
from gateway.settings import CANARY_TEAM, GatewayOptions, ModelPrice, ModelRoute, RateLimits

CONFIG_DIR = Path(__file__).resolve().parent
DEFAULT_POLICY_RULES = CONFIG_DIR / "policy-rules.yaml"
# The files beside the environments that every environment shares: none of them is an environment.
SHARED_FILES = (DEFAULT_POLICY_RULES.name, SHIPPED_CATALOG.name)

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip


def _log_retention(value: int) -> int:
    if value not in LOG_RETENTION_DAYS:
        raise ValueError(
            f"{value} is not a CloudWatch Logs retention; allowed: {', '.join(map(str, LOG_RETENTION_DAYS))}"
        )
    return value


LogRetentionDays = Annotated[int, AfterValidator(_log_retention)]

ENDPOINT_SERVICE_RE = re.compile(r"^com\.amazonaws\.vpce\.(?P<region>[a-z0-9-]+)\.vpce-svc-[0-9a-f]{8,17}$")
NAME_RE = r"^[a-z][a-z0-9-]{0,62}$"
HOSTNAME_RE = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"

# Values that only ever stand in for real ones (RFC 2606/6761 names, AWS's documentation account, the
# certificate id the shipped dev.yaml uses): an environment marked `production: true` may not use them.
PLACEHOLDER_DOMAINS = ("example.com", "example.net", "example.org", "example", "test", "invalid", "localhost")
PLACEHOLDER_ACCOUNTS = ("123456789012", "000000000000", "111111111111")
PLACEHOLDER_CERTIFICATE_IDS = ("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "00000000-0000-0000-0000-000000000000")

# The services whose models the endpoint policy pins (InvokeModel and friends).
BEDROCK_SERVICES = frozenset({"bedrock-runtime"})


class ConfigError(Exception):
    """Bad configuration: the message names the file, the field and what is allowed."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Tags(_Model):
    """Cost-allocation tags put on every taggable resource."""

    project: Annotated[str, Field(min_length=1, max_length=256)] = "aigw"
    cost_center: Annotated[str, Field(alias="cost-center", min_length=1, max_length=256)]


class TransitGatewayConfig(_Model):
    """How the corporate network reaches the internal load balancer: an attachment to the company's
    Transit Gateway (shared with this account through AWS RAM if it lives in another one)."""

    id: Annotated[str, Field(pattern=r"^tgw-[0-9a-f]{8,17}$")]


class NetworkConfig(_Model):
    cidr: ipaddress.IPv4Network = ipaddress.IPv4Network("10.40.0.0/16")
    # Off by default: the proxies reach the vendor and AWS only through endpoints.
    egress: bool = False
    flow_log_retention_days: LogRetentionDays = 365
    # None: the network team connects the VPC another way (see README, "Reaching the gateway").
    transit_gateway: TransitGatewayConfig | None = None

    @field_validator("cidr")
    @classmethod
    def _cidr_size(cls, value: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        if not 16 <= value.prefixlen <= 20:
            raise ValueError(f"prefix /{value.prefixlen} not allowed: use /16 to /20 (room for 3 AZs x 2 tiers)")
        return value


class VendorConfig(_Model):
    """The AI vendor behind PrivateLink: Amazon Bedrock, or a vendor's endpoint service."""

    service: str = "bedrock-runtime"
    # Bedrock only: the ids clients may name (system inference profiles such as eu.anthropic.…, or models that
    # may still be invoked on demand by their id), each with its price in US dollars per 1,000 tokens. Only
    # these pass the gateway, the proxies' role and the endpoint policy.
    models: dict[str, ModelPrice] = Field(default_factory=dict)
    # Entries added to the shipped table of models and inference profiles (config/bedrock-models.yaml).
    catalog: Catalog = Catalog()
    # More names for `/v1/messages` (Anthropic Messages API clients), each to one of `models`; a model's own
    # Anthropic ids (from the table of models) need not be listed.
    aliases: dict[Annotated[str, Field(pattern=ANTHROPIC_ID)], str] = Field(default_factory=dict)
    # None: on for AWS services, off for vendor endpoint services (their provider must verify a name).
    private_dns: bool | None = None
    # Where the gateway sends requests. Bedrock: its regional URL (private DNS points it at the
    # endpoint). A vendor endpoint service: the private DNS name the vendor gives you (required).
    url: Annotated[str, Field(pattern=r"^https://[A-Za-z0-9.-]+(:\d+)?(/.*)?$")] | None = None
    # A vendor endpoint service: the Secrets Manager secret holding its API key (required).
    api_key_secret_id: str | None = None

    @property
    def is_endpoint_service(self) -> bool:
        return self.service.startswith("com.amazonaws.vpce.")

    @property
    def is_bedrock(self) -> bool:
        return self.service in BEDROCK_SERVICES

    @property
    def private_dns_enabled(self) -> bool:
        return (not self.is_endpoint_service) if self.private_dns is None else self.private_dns

    def endpoint_url(self, region: str) -> str:
        return self.url or f"https://bedrock-runtime.{region}.amazonaws.com"

    @model_validator(mode="before")
    @classmethod
    def _renamed_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("model_arns" in data or "prices" in data):
            raise ValueError(
                "model_arns and prices are now one map, models: each id clients name (an inference profile such as "
                "eu.anthropic.claude-sonnet-4-5-20250929-v1:0, not an ARN) with its input_per_1k_usd and "
                "output_per_1k_usd"
            )
        return data

    @field_validator("service")
    @classmethod
    def _service_name(cls, value: str) -> str:
        if value.startswith("com."):
            if not ENDPOINT_SERVICE_RE.match(value):
                raise ValueError(
                    f"malformed endpoint service name {value!r}: "
                    "expected com.amazonaws.vpce.<region>.vpce-svc-<8 to 17 hex digits>"
                )
        elif value not in BEDROCK_SERVICES:
            allowed = ", ".join(sorted(BEDROCK_SERVICES))
            raise ValueError(
                f"{value!r} is not supported; allowed: {allowed}, or com.amazonaws.vpce.<region>.vpce-svc-…"
            )
        return value

    @model_validator(mode="after")
    def _per_kind(self) -> VendorConfig:
        if self.is_bedrock:
            if not self.models:
                raise ValueError("models: Bedrock needs at least one model id (the policies never allow '*')")
            for name, target in self.aliases.items():
                if target not in self.models:
                    raise ValueError(f"aliases.{name}: {target!r} is not one of models ({', '.join(self.models)})")
        else:
            if self.models:
                raise ValueError(f"models: only used with Bedrock, not with {self.service!r}")
            if not self.url:
                raise ValueError("url: a vendor endpoint service needs the vendor's private URL (https://…)")
            if not self.api_key_secret_id:
                raise ValueError("api_key_secret_id: a vendor endpoint service needs the secret holding its API key")
        return self


class FleetConfig(_Model):
    instance_type: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")] = "c6i.xlarge"
    # At least 2: one instance is one AZ, and one AZ was a 47-minute outage.
    min_instances: Annotated[int, Field(ge=2)] = 2
    max_instances: PositiveInt = 6
    # Target tracking: average CPU, and ALB requests per instance per minute.
    cpu_target_percent: Annotated[int, Field(ge=10, le=90)] = 60
    requests_per_instance_per_minute: PositiveInt = 600
    health_check_grace_seconds: Annotated[int, Field(ge=60, le=3600)] = 300
    # Gateway worker processes per instance: by default one per vCPU of instance_type (a Python process uses one
    # core; with one process, three of a c6i.xlarge's four vCPUs sat idle and the CPU target could never be met).
    workers_per_instance: Annotated[int, Field(ge=1, le=64)] | None = None
    # The instances' image. An AMI id is pinned: only a change here replaces the fleet. An SSM parameter name
    # (e.g. a dated public one) is resolved at every deploy: the default, Amazon Linux 2023's latest, replaces
    # every instance on the first deploy after AWS publishes a new AMI, whatever else that deploy changes.
    ami: str = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"

    @field_validator("ami")
    @classmethod
    def _ami_id_or_parameter(cls, value: str) -> str:
        if not re.fullmatch(r"ami-(?:[0-9a-f]{8}|[0-9a-f]{17})|/[A-Za-z0-9_.\-/]{1,1010}", value):
            raise ValueError(
                f"{value!r} is neither an AMI id (ami- and 8 or 17 lowercase hex digits) "
                "nor an SSM parameter name (/path/to/parameter)"
            )
        return value

    @model_validator(mode="after")
    def _min_le_max(self) -> FleetConfig:
        if self.min_instances > self.max_instances:
            raise ValueError(
                f"min_instances ({self.min_instances}) must not exceed max_instances ({self.max_instances})"
            )
        if self.workers_per_instance is None and instance_vcpus(self.instance_type) is None:
            raise ValueError(
                f"workers_per_instance: aigw does not know how many vCPUs a {self.instance_type} has; "
                "set workers_per_instance (1 to 64) to that number"
            )
        return self

    @property
    def workers(self) -> int:
        """The gateway's worker processes on each instance."""
        return self.workers_per_instance or instance_vcpus(self.instance_type) or 1


# vCPUs by instance size, as EC2's current x86 families (c, m, r: c6i, m7i, r6a ...) have them; the burstable t
# family has 2 up to large. Anything else needs fleet.workers_per_instance.
SIZE_VCPUS = {"large": 2, "xlarge": 4}
BURSTABLE_VCPUS = {"nano": 2, "micro": 2, "small": 2, "medium": 2, "large": 2, "xlarge": 4, "2xlarge": 8}


def instance_vcpus(instance_type: str) -> int | None:
    """How many vCPUs an instance type has, from its size; None when aigw cannot tell."""
    family, _, size = instance_type.partition(".")
    if family.startswith("t"):
        return BURSTABLE_VCPUS.get(size)
    if size in SIZE_VCPUS:
        return SIZE_VCPUS[size]
    multiple = re.fullmatch(r"([1-9][0-9]?)xlarge", size)
    return 4 * int(multiple[1]) if multiple else None


class Budgets(_Model):
    """Monthly US-dollar budgets: the organisation's and any team's (a team not named here gets an
    even share of what the named teams leave of the organisation's)."""

    org_monthly_usd: PositiveFloat = 41_000
    team_monthly_usd: dict[str, PositiveFloat] = Field(default_factory=dict)

    def per_team(self, teams: Sequence[str]) -> dict[str, float]:
        unnamed = [team for team in teams if team not in self.team_monthly_usd]
        share = (self.org_monthly_usd - sum(self.team_monthly_usd.values())) / len(unnamed) if unnamed else 0.0
        return {team: self.team_monthly_usd.get(team, round(share, 2)) for team in teams}


class CostAnomalies(_Model):
    """Both anomaly detectors: AWS Cost Anomaly Detection (the slow backstop) and aigw's own hourly
    detector on the gateway's usage metrics (the fast alarm)."""

    # AWS's own monitors. An account may hold only one monitor by AWS service: switch ours off when one
    # exists (`make preflight` finds it). A monitor over a cost-allocation tag can only be created in the
    # organisation's management (payer) account, so the team monitor is off unless you deploy there.
    service_monitor: bool = True
    team_monitor: bool = False
    # AWS's detector alerts when an anomaly's total impact reaches both figures.
    aws_impact_usd: PositiveFloat = 100
    aws_impact_percent: PositiveFloat = 20
    # aigw's detector: a team's hour (or day so far) far above its own median, by k robust SDs and by at
    # least the floor in dollars (so tiny teams page nobody); a projected month-end over the team's
    # budget; the top three teams' share of spend above `concentration_share`.
    # k = 12 scored best (F1 0.84) on `make bench-cost`'s labelled set; 6 fired on noise (F1 0.65).
    spike_mad_multiplier: PositiveFloat = 12
    spike_floor_usd: PositiveFloat = 5
    baseline_days: Annotated[int, Field(ge=28, le=455)] = 28  # at least four of each weekday
    concentration_share: Annotated[float, Field(gt=0, lt=1)] = 0.5


class LoadBalancerConfig(_Model):
    """The internal ALB clients connect to."""

    # The name clients connect to (the certificate must cover it; `make preflight` checks).
    domain_name: Annotated[str, Field(max_length=253, pattern=HOSTNAME_RE)]
    certificate_arn: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$")]
    # Where the IDE plugins connect from (corporate networks, VPN); nothing else reaches the gateway.
    client_cidrs: Annotated[tuple[ipaddress.IPv4Network, ...], Field(min_length=1)]
    # Off for an environment's first deploy: a protected load balancer cannot be deleted, so a failed
    # first create would end in ROLLBACK_FAILED. Turn it on after the first successful deploy (README).
    deletion_protection: bool = False

    @field_validator("client_cidrs")
    @classmethod
    def _not_everyone(cls, value: tuple[ipaddress.IPv4Network, ...]) -> tuple[ipaddress.IPv4Network, ...]:
        if any(cidr.prefixlen == 0 for cidr in value):
            raise ValueError("0.0.0.0/0 is not a corporate network: list the networks the IDE plugins connect from")
        return value


class AlertsConfig(_Model):
    emails: tuple[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")], ...] = ()


class AuditConfig(_Model):
    # The field report kept 90 days of prompts and completions immediately queryable.
    hot_days: LogRetentionDays = 90
    # PCI DSS v4.0.1 10.5.1: 12 months of audit history, the latest 3 immediately available.
    retention_days: PositiveInt = 365
    # Firehose writes an object to the audit bucket when either fills (Firehose's own bounds).
    delivery_buffer_mib: Annotated[int, Field(ge=1, le=128)] = 64
    delivery_buffer_seconds: Annotated[int, Field(ge=0, le=900)] = 300

    @model_validator(mode="after")
    def _retention_covers_hot_period(self) -> AuditConfig:
        if self.retention_days < self.hot_days:
            raise ValueError(
                f"retention_days ({self.retention_days}) must not be shorter than hot_days ({self.hot_days})"
            )
        return self


class SloConfig(_Model):
    """The availability objective, measured from the client's side (config/slo.py)."""

    # The field report's target; the service achieved 98.8 % over eight weeks, with weeks at 96.2 and 97.1 %.
    target_percent: Annotated[float, Field(ge=90, lt=100)] = 99.5
    window_days: Annotated[int, Field(ge=7, le=90)] = 28


class CanaryConfig(_Model):
    """A synthetic client inside the VPC: /healthz and one tiny authenticated request through the load balancer."""

    enabled: bool = True
    every_minutes: Annotated[int, Field(ge=1, le=60)] = 1
    # The model its request names (a configured id); default: the configured model with the lowest price.
    model: str | None = None
    # Its name (default aigw-<environment>-canary): at most 21 characters, as its function is cwsyn-<name>-<id>.
    name: Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,21}$")] | None = None
    # CloudWatch Synthetics' Python runtime (AWS retires old ones: a retired runtime cannot create a canary).
    runtime: Annotated[str, Field(pattern=r"^syn-python-selenium-\d+\.\d+$")] = "syn-python-selenium-14.0"


class OperationsConfig(_Model):
    slo: SloConfig = SloConfig()
    canary: CanaryConfig = CanaryConfig()
    # Where on-call reads docs/runbook.md: each alarm's description links `<runbook_url>#<its entry>`. A
    # production environment names the copy its on-call can open (https).
    runbook_url: Annotated[str, Field(min_length=1, max_length=512)] = "docs/runbook.md"
    # The functions' and the audit delivery's own logs (errors, runs): a year, as Control Tower's CT.CLOUDWATCH.PR.2
    # and PCI DSS 10.5.1 ask; they are small.
    log_retention_days: LogRetentionDays = 365


TeamName = Annotated[str, Field(pattern=NAME_RE)]


class AigwConfig(_Model):
    environment: Annotated[str, Field(pattern=NAME_RE)]
    # A production environment refuses placeholder values (example.com addresses, the sample
    # certificate, an example IdP): `cdk deploy` must never ship them to real users.
    production: bool = False
    account: Annotated[str, Field(pattern=r"^\d{12}$")]
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")]
    availability_zones: tuple[str, ...]
    tags: Tags
    network: NetworkConfig = NetworkConfig()
    vendor: VendorConfig
    fleet: FleetConfig = FleetConfig()
    limits: RateLimits = RateLimits()
    teams: tuple[TeamName, ...] = ()
    budgets: Budgets = Budgets()
    cost_anomalies: CostAnomalies = CostAnomalies()
    # Licensed seats of the AI assistant per team: the adoption queries report weekly active users against them.
    licensed_seats: dict[TeamName, PositiveInt] = Field(default_factory=dict)
    gateway: GatewayOptions
    load_balancer: LoadBalancerConfig
    alerts: AlertsConfig = AlertsConfig()
    audit: AuditConfig = AuditConfig()
    operations: OperationsConfig = OperationsConfig()

    @property
    def canary_name(self) -> str:
        return self.operations.canary.name or f"aigw-{self.environment}-canary"

    @property
    def canary_model(self) -> str | None:
        """The model the canary's request names: the configured one, or the cheapest (None: no model priced)."""
        prices = self.vendor.models
        if self.operations.canary.model is not None or not prices:
            return self.operations.canary.model
        return min(prices, key=lambda name: (prices[name].input_per_1k_usd + prices[name].output_per_1k_usd, name))

    @property
    def models(self) -> list[ModelRoute]:
        """The configured models as this Region and account invoke them (empty for a vendor endpoint service)."""
        return self._resolved_models()

    def _resolved_models(self) -> list[ModelRoute]:
        if not self.vendor.is_bedrock:
            return []
        catalog = shipped_catalog().extended_by(self.vendor.catalog)
        try:
            return resolve_models(self.vendor.models, catalog, self.region, self.account, self.vendor.aliases)
        except ValueError as error:
            raise ValueError(f"vendor.models: {error}") from error

    @field_validator("account", mode="before")
    @classmethod
    def _account_is_text(cls, value: Any) -> Any:
        if isinstance(value, int):
            raise ValueError('quote the account id ("012345678901"): YAML reads it as a number and drops leading zeros')
        return value

    @field_validator("availability_zones")
    @classmethod
    def _two_azs_at_least(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) < 2:
            raise ValueError(
                f"{len(value)} given; at least 2 AZs are required (a single-AZ proxy caused a 47-minute outage)"
            )
        if len(set(value)) != len(value):
            raise ValueError(f"each AZ may appear once: {', '.join(value)}")
        return value

    @field_validator("teams")
    @classmethod
    def _unique_teams(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if CANARY_TEAM in value:
            raise ValueError(f"{CANARY_TEAM!r} is the availability canary's team; give the team another name")
        duplicates = sorted({t for t in value if value.count(t) > 1})
        if duplicates:
            raise ValueError(f"listed more than once: {', '.join(duplicates)}")
        return value

    @model_validator(mode="after")
    def _cross_field(self) -> AigwConfig:
        for az in self.availability_zones:
            if not re.fullmatch(re.escape(self.region) + r"[a-z]", az):
                raise ValueError(
                    f"availability_zones: {az!r} is not an AZ of region {self.region} (e.g. {self.region}a)"
                )
        models = self._resolved_models()  # refuses an id this Region cannot use, naming the ones it can
        signin = self.gateway.signin
        if signin is not None:
            host = urlsplit(signin.public_url).hostname
            if host != self.load_balancer.domain_name:
                raise ValueError(
                    f"gateway.signin.public_url: {signin.public_url} must be the load balancer's name, "
                    f"https://{self.load_balancer.domain_name}"
                )
            if self.gateway.auth.jwks_proxy is not None and signin.oidc.proxy is None:
                raise ValueError(
                    "gateway.signin.oidc.proxy: with auth.jwks_proxy there is no out-of-VPC function to exchange "
                    "sign-in codes through; name the corporate proxy here too"
                )
        managed = self.gateway.managed_settings
        unknown_teams = sorted(managed.teams_named() - set(self.teams))
        if unknown_teams:
            raise ValueError(
                f"gateway.managed_settings: {', '.join(unknown_teams)} not in teams ({', '.join(self.teams)})"
            )
        served = [name for route in models for name in route.aliases]
        unknown_models = sorted(managed.models_named() - set(served))
        if unknown_models and self.vendor.is_bedrock:
            raise ValueError(
                f"gateway.managed_settings: models {', '.join(unknown_models)} are not served here; "
                f"served: {', '.join(served)}"
            )
        if self.vendor.is_endpoint_service:
            match = ENDPOINT_SERVICE_RE.match(self.vendor.service)
            if match and match["region"] != self.region:
                raise ValueError(
                    f"vendor.service: endpoint service is in {match['region']}, the environment in {self.region}"
                )
        for field, per_team in (
            ("budgets.team_monthly_usd", self.budgets.team_monthly_usd),
            ("licensed_seats", self.licensed_seats),
        ):
            unknown = sorted(set(per_team) - set(self.teams))
            if unknown:
                allowed = ", ".join(self.teams) or "(no teams configured)"
                raise ValueError(f"{field}: unknown team {', '.join(unknown)}; teams are: {allowed}")
        if self.cost_anomalies.team_monitor and not self.teams:
            raise ValueError("cost_anomalies.team_monitor: true, but no teams are configured for it to watch")
        if self.network.transit_gateway is not None:
            # A route may contain the VPC's range (the VPC's own local route is more specific and wins),
            # but not sit inside it: AWS refuses a route more specific than the local one.
            inside = [str(c) for c in self.load_balancer.client_cidrs if c.subnet_of(self.network.cidr)]
            if inside:
                raise ValueError(
                    f"load_balancer.client_cidrs: {', '.join(inside)} lies inside the VPC ({self.network.cidr}); "
                    "clients reached through the Transit Gateway must be outside it"
                )
        if self.operations.canary.enabled and len(self.canary_name) > 21:
            raise ValueError(
                f"operations.canary.name: {self.canary_name!r} has {len(self.canary_name)} characters, a canary's name "
                "at most 21 (its function is cwsyn-<name>-<id>); name it here"
            )
        canary_model = self.operations.canary.model
        if canary_model is not None and canary_model not in self.vendor.models:
            raise ValueError(
                f"operations.canary.model: {canary_model} is not a configured model; "
                f"configured: {', '.join(self.vendor.models) or '(none)'}"
            )
        named = sum(self.budgets.team_monthly_usd.values())
        unnamed = [team for team in self.teams if team not in self.budgets.team_monthly_usd]
        if unnamed and named >= self.budgets.org_monthly_usd:
            raise ValueError(
                f"budgets.team_monthly_usd: the named teams' budgets (${named:,.0f}) leave nothing of "
                f"org_monthly_usd (${self.budgets.org_monthly_usd:,.0f}) for {', '.join(unnamed)}; give them amounts"
            )
        return self


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def _is_placeholder_host(host: str) -> bool:
    return host in ("127.0.0.1", "::1") or any(
        host == domain or host.endswith(f".{domain}") for domain in PLACEHOLDER_DOMAINS
    )


def placeholders(config: AigwConfig) -> list[str]:
    """Each field of `config` that still holds a placeholder, as `field: why`."""
    found = []
    if config.account in PLACEHOLDER_ACCOUNTS:
        found.append(f"account: {config.account} is a documentation/sample account id")
    certificate_id = config.load_balancer.certificate_arn.rsplit("/", 1)[-1]
    if certificate_id in PLACEHOLDER_CERTIFICATE_IDS:
        found.append(f"load_balancer.certificate_arn: {config.load_balancer.certificate_arn} is the sample certificate")
    if _is_placeholder_host(config.load_balancer.domain_name):
        found.append(f"load_balancer.domain_name: {config.load_balancer.domain_name} is a reserved example name")
    for index, email in enumerate(config.alerts.emails):
        if _is_placeholder_host(email.rpartition("@")[2].lower()):
            found.append(f"alerts.emails.{index}: {email} is an example address: nobody would get the alerts")
    auth = config.gateway.auth
    for field, url in (("issuer", auth.issuer), ("jwks_url", auth.jwks_url)):
        if _is_placeholder_host(_host(url)):
            found.append(f"gateway.auth.{field}: {url} is an example IdP, not the company's")
    signin = config.gateway.signin
    if signin is not None:
        oidc = signin.oidc
        for field, url in (
            ("issuer", oidc.issuer), ("authorization_endpoint", oidc.authorization_endpoint),
            ("token_endpoint", oidc.token_endpoint), *(("redirect_uris", uri) for uri in oidc.redirect_uris),
        ):  # fmt: skip
            if _is_placeholder_host(_host(url)):
                found.append(f"gateway.signin.oidc.{field}: {url} is an example IdP, not the company's")
    if urlsplit(config.operations.runbook_url).scheme != "https":
        found.append(
            f"operations.runbook_url: {config.operations.runbook_url} is not a link on-call can open from an alarm "
            "(an https URL of the runbook)"
        )
    return found


def _describe(error: Any, model: type[BaseModel]) -> str:
    location = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = f"unknown field; allowed here: {', '.join(_allowed_fields(model, error['loc'][:-1]))}"
    return f"{location}: {message}" if location else message


def _allowed_fields(model: type[BaseModel], path: tuple[Any, ...]) -> list[str]:
    for part in path:
        annotation = model.model_fields[str(part)].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return [field.alias or name for name, field in model.model_fields.items()]


def _default_policy_rules(raw: dict[str, Any]) -> None:
    """An environment that sets no rules of its own gets the shipped ones (config/policy-rules.yaml)."""
    gateway = raw.get("gateway")
    if not isinstance(gateway, dict):
        return
    policy = gateway.get("policy", {})
    if isinstance(policy, dict) and "rules" not in policy:
        gateway["policy"] = {**policy, "rules": yaml.safe_load(DEFAULT_POLICY_RULES.read_text())["rules"]}


def load_config(environment: str, directory: Path = CONFIG_DIR) -> AigwConfig:
    """Read and validate `<directory>/<environment>.yaml`, or raise ConfigError saying what is wrong."""
    path = directory / f"{environment}.yaml"
    shown = f"{directory.name}/{path.name}"
    if not path.is_file() or path.name in SHARED_FILES:
        environments = (p.stem for p in directory.glob("*.yaml") if p.name not in SHARED_FILES)
        available = ", ".join(sorted(environments)) or "none"
        raise ConfigError(f"{shown}: no such environment {environment!r}; available: {available}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{shown}: not valid YAML: {error}") from error
    if not isinstance(raw, dict):
        raise ConfigError(f"{shown}: expected a mapping of settings at the top level")
    _default_policy_rules(raw)
    if raw.get("environment", environment) != environment:
        raise ConfigError(f"{shown}: environment: {raw['environment']!r} must match the file name ({environment!r})")
    try:
        config = AigwConfig.model_validate(raw)
    except ValidationError as error:
        problems = "\n".join(f"{shown}: {_describe(e, AigwConfig)}" for e in error.errors())
        raise ConfigError(problems) from error
    if config.production and (found := placeholders(config)):
        raise ConfigError("\n".join(f"{shown}: {problem} (production: true refuses placeholders)" for problem in found))
    return config


def with_context(config: AigwConfig, context: Mapping[str, Any]) -> AigwConfig:
    """The few settings a synth may take from `-c KEY=VALUE` instead of the file: `certificate_arn`,
    which `make deploy-local` uses for the self-signed certificate it imports into the emulator."""
    certificate = context.get("certificate_arn")
    if not certificate:
        return config
    load_balancer = config.load_balancer.model_copy(update={"certificate_arn": str(certificate)})
    return config.model_copy(update={"load_balancer": load_balancer})
