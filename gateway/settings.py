"""The gateway's settings: rendered from `config/<env>.yaml` (see `config/render.py`) into one JSON file
that the service reads at start. The same models validate the YAML at synth, so a bad rule or timeout
stops `cdk synth`, not a proxy instance at boot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import re2
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, field_validator, model_validator

from gateway.audit import MAX_RECORD_BYTES, MIN_RECORD_BYTES
from gateway.managed_settings import ManagedSettingsRules

RULE_ID = r"^[a-z][a-z0-9-]{1,62}$"
# The load balancer's idle timeout is the stream cap plus this, so it never cuts a stream short.
STREAM_MARGIN_SECONDS = 30
# The gateway keeps an idle connection open this much longer than the load balancer would: see keep_alive_seconds.
KEEP_ALIVE_MARGIN_SECONDS = 30
# Each team's application inference profile ids, known only once deployed: see team_profiles_variable.
TEAM_PROFILES_VARIABLE = "AIGW_TEAM_PROFILES"
CANARY_TOKEN_VARIABLE = "AIGW_CANARY_TOKEN_SECRET_ID"
# The availability canary's identity (gateway.auth.CANARY): no configured team may take its team's name.
CANARY_USER, CANARY_TEAM = "aigw-canary", "canary"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def compile_pattern(pattern: str, what: str) -> Any:
    """Compile with RE2 (linear time, no backtracking), or say which pattern is wrong and why."""
    options = re2.Options()
    options.log_errors = False  # the error is raised to the caller, with the rule id, instead
    try:
        return re2.compile(pattern, options)
    except re2.error as error:
        reason = error.args[0].decode() if error.args and isinstance(error.args[0], bytes) else str(error)
        raise ValueError(f"{what}: {pattern!r} is not a valid RE2 pattern ({reason})") from error


class AuthSettings(_Model):
    """Tokens from the company IdP: checked against its JWKS."""

    issuer: str
    audience: str
    jwks_url: str
    algorithms: tuple[Literal["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"], ...] = ("RS256",)
    user_claim: str = "email"
    team_claim: str = "team"
    # The claim listing a user's IdP groups (managed settings may be chosen by them); a string is one group.
    groups_claim: str = "groups"
    # Bounded: laptops drift, but a generous leeway would quietly lengthen the 8-hour token lifetime.
    leeway_seconds: Annotated[int, Field(ge=0, le=300)] = 60
    # Refetch the JWKS on an unknown key id at most this often (a flood of made-up kids costs one fetch).
    jwks_min_refresh_seconds: Annotated[float, Field(ge=1, le=3600)] = 30
    # Each fetch or parameter read; also how long a request waits for a refresh it asked the mirror for.
    jwks_timeout_seconds: Annotated[float, Field(gt=0, le=30)] = 5
    # The VPC has no route out, so in AWS the keys come from the SSM parameter that the IdP-keys function (outside
    # the VPC) mirrors the JWKS into, and that function is asked for a refresh on an unknown kid. The gateway stack
    # fills both in; left unset (local runs), the gateway fetches jwks_url itself.
    jwks_parameter: str | None = None
    jwks_refresh_function: str | None = None
    # The alternative: a corporate HTTP(S) proxy through which the gateway fetches jwks_url (then no mirror exists).
    jwks_proxy: str | None = None
    # The availability canary's bearer token (a random secret, not a JWT): a Secrets Manager secret in AWS (the
    # gateway stack makes it), an environment variable locally. Unset: no canary identity.
    canary_token_secret_id: str | None = None
    canary_token_env: str | None = None
    # A token whose issuer lets it live longer (exp - iat) is refused: the field report's tokens lived 8 h.
    max_token_lifetime_seconds: Annotated[int, Field(ge=300, le=7 * 86_400)] = 12 * 3600
    # Larger Authorization headers are refused before any parsing (a real IdP token is a few KiB).
    max_token_bytes: Annotated[int, Field(ge=1024, le=65_536)] = 16_384
    # What an expired-token answer tells people to do: the top support ticket was expiry after laptop sleep.
    refresh_hint: str = "Sign in again to get a new token (your IDE plugin's 'sign in', or `aigw login`)."

    @model_validator(mode="after")
    def _one_way_to_the_keys(self) -> AuthSettings:
        if self.jwks_proxy is not None and self.jwks_parameter is not None:
            raise ValueError("set jwks_proxy or jwks_parameter, not both: they are two ways to reach the IdP's keys")
        if self.jwks_refresh_function is not None and self.jwks_parameter is None:
            raise ValueError("jwks_refresh_function refreshes jwks_parameter: set that too")
        if self.jwks_proxy is not None and not re2.match(r"^https?://[^/\s]+/?$", self.jwks_proxy):
            raise ValueError(f"jwks_proxy must be a proxy URL (http://proxy.example.com:3128), not {self.jwks_proxy!r}")
        return self

    @property
    def jwks_proxy_port(self) -> int | None:
        """The corporate proxy's TCP port (the proxies' security group must let it out), if there is one."""
        return proxy_port(self.jwks_proxy)


def proxy_port(proxy: str | None) -> int | None:
    if proxy is None:
        return None
    scheme, _, rest = proxy.partition("://")
    _, colon, port = rest.rstrip("/").rpartition(":")
    return int(port) if colon and port.isdigit() else {"http": 80, "https": 443}[scheme]


class PolicyRule(_Model):
    id: Annotated[str, Field(pattern=RULE_ID)]
    description: str = ""
    pattern: str
    applies_to: Literal["prompt", "completion", "both"] = "both"
    action: Literal["block", "redact", "log"]
    # Known fixtures (test SSNs, test card numbers) that must not count: fixture data caused 29 false blocks.
    allowlist: tuple[str, ...] = ()
    # Only count digit runs that pass the Luhn check (card numbers).
    luhn: bool = False

    @model_validator(mode="after")
    def _compiles(self) -> PolicyRule:
        compile_pattern(self.pattern, f"rule {self.id}: pattern")
        for allowed in self.allowlist:
            compile_pattern(allowed, f"rule {self.id}: allowlist")
        return self


class BlockedRepository(_Model):
    policy: Annotated[str, Field(pattern=RULE_ID)]
    pattern: str

    @model_validator(mode="after")
    def _compiles(self) -> BlockedRepository:
        compile_pattern(self.pattern, f"blocked repository {self.policy}")
        return self


class PolicySettings(_Model):
    max_request_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 2 * 1024 * 1024
    repository_header: str = "x-aigw-repository"
    # Refuse requests that do not say which repository they are for: everyone (true), or these teams' members.
    require_repository: bool | tuple[str, ...] = False
    blocked_repositories: tuple[BlockedRepository, ...] = ()
    rules: tuple[PolicyRule, ...] = ()
    # Completions are checked as they stream, text held back only while a rule's match may be in progress
    # at its end; at most this much (a secret is far shorter; a longer run is let go from its start).
    stream_hold_max_chars: Annotated[int, Field(ge=1024, le=1024 * 1024)] = 64 * 1024
    # Bodies from this size are checked on worker threads, so one large prompt never holds the event loop
    # that serves everyone else; any body whose check takes longer than the budget is refused (400).
    offload_bytes: Annotated[int, Field(ge=0, le=64 * 1024 * 1024)] = 64 * 1024
    scan_budget_ms: Annotated[int, Field(ge=10, le=60_000)] = 2000
    scan_threads: Annotated[int, Field(ge=1, le=64)] = 2
    # Matches of one rule's pattern checked per request (allowlist, Luhn, counting): each costs Python time, so a
    # body built of near-secrets could otherwise take seconds. Past this the request is blocked (rule
    # `<id>:too-many-matches`) and its unchecked rest kept out of the audit record. A 4,200-line migration
    # full of fixture SSNs and cards has ~4,200 matches per rule.
    max_matches_per_rule: Annotated[int, Field(ge=1000, le=10_000_000)] = 5_000
    # And of every rule together: fifteen rules each just under their own cap would still cost ~0.2 s. Past it the
    # same (each rule with matches left unchecked blocks as `<id>:too-many-matches`). The migration above, with
    # an SSN, a card and an e-mail address on each line, has ~12,600.
    max_matches_per_request: Annotated[int, Field(ge=1000, le=100_000_000)] = 15_000

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, rules: tuple[PolicyRule, ...]) -> tuple[PolicyRule, ...]:
        ids = [rule.id for rule in rules]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"rule ids must be unique: {', '.join(repeated)}")
        return rules


class BreakerSettings(_Model):
    """Open after `failures` timeouts or 5xx within `window_seconds`; probe once after `cooldown_seconds`."""

    failures: PositiveInt = 5
    window_seconds: PositiveFloat = 30
    cooldown_seconds: PositiveFloat = 30


class UpstreamSettings(_Model):
    # The field report: vendor P99 above 30 s for 2.5 h and no breaker meant 94 minutes of 502s.
    first_byte_timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 12
    stream_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 600
    connect_timeout_seconds: Annotated[float, Field(gt=0, le=30)] = 3
    # A streamed answer in the Anthropic Messages format gets a `ping` event after this long without a byte, so no
    # idle timeout on the way (a load balancer's, a client's) cuts a model that is still thinking.
    stream_ping_seconds: Annotated[float, Field(gt=0, le=300)] = 15
    # Per process: beyond this, requests get 503 at once instead of queueing (the February 11 incident).
    max_concurrency: Annotated[int, Field(ge=1, le=10_000)] = 256
    queue_wait_seconds: Annotated[float, Field(ge=0, le=5)] = 0.05
    breaker: BreakerSettings = BreakerSettings()

    @model_validator(mode="after")
    def _stream_outlasts_first_byte(self) -> UpstreamSettings:
        if self.stream_timeout_seconds < self.first_byte_timeout_seconds:
            raise ValueError("stream_timeout_seconds must not be shorter than first_byte_timeout_seconds")
        return self

    @property
    def load_balancer_idle_seconds(self) -> int:
        """The load balancer's idle timeout (and deregistration delay): the longest stream plus a margin.
        At most 3,630 s, within the ALB's 4,000 s."""
        return math.ceil(self.stream_timeout_seconds) + STREAM_MARGIN_SECONDS

    @property
    def keep_alive_seconds(self) -> int:
        """How long the gateway keeps an idle client connection (the load balancer's) open: longer than the
        load balancer's idle timeout, so the load balancer always closes first. Were the gateway to close
        first, the load balancer could send a request on the closing connection and answer it 502 (AWS's
        ALB guide, "Connection idle timeout"). The margin costs nothing: idle connections still close at
        the load balancer's timeout; it covers the two timers starting a little apart."""
        return self.load_balancer_idle_seconds + KEEP_ALIVE_MARGIN_SECONDS


class ModelPrice(_Model):
    input_per_1k_usd: Annotated[float, Field(ge=0)]
    output_per_1k_usd: Annotated[float, Field(ge=0)]


def partition_of(region: str) -> str:
    """The AWS partition a Region belongs to: ARNs name it."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


class ModelRoute(_Model):
    """One model clients may name, as config resolved it for this environment's Region and account."""

    # What clients name in `/model/{id}/…`: a system inference profile's id (`eu.anthropic.…`) or a model's.
    id: str
    kind: Literal["inference-profile", "foundation-model"]
    name: str
    foundation_model: str
    # What a request for this id invokes when its team has no profile of its own: the system profile or the model.
    arn: str
    # The model in every Region the profile may route to (what Bedrock authorises a cross-Region call against).
    model_arns: tuple[str, ...]
    price: ModelPrice
    # A request asking for more output tokens is refused (400) before any budget is reserved.
    max_output_tokens: Annotated[int, Field(ge=1, le=1_000_000)]
    # The names `/v1/messages` takes for it (the first is what `/v1/models` lists), and its name for people.
    aliases: tuple[str, ...] = ()
    display_name: str = ""
    # Whether bedrock-runtime's CountTokens counts for its model here (by the bare model id).
    count_tokens: bool = False

    @property
    def home_model_arn(self) -> str:
        """The model in this Region: what CountTokens names."""
        _, partition, service, region, _account, _ = self.arn.split(":", 5)
        return f"arn:{partition}:{service}:{region}::foundation-model/{self.foundation_model}"


class VendorSettings(_Model):
    kind: Literal["bedrock", "endpoint_service"]
    # Bedrock: the regional runtime URL (private DNS resolves it to the endpoint). A vendor: its private URL.
    url: str
    region: str
    account: str | None = None
    # Bedrock: the models clients may name; empty means the vendor decides (a vendor endpoint service).
    models: tuple[ModelRoute, ...] = ()
    # Each team's application inference profile per model id (team -> model id -> profile ARN): its usage is
    # tagged with the team, so AWS's own cost tools see each team. Known only once deployed (AIGW_TEAM_PROFILES).
    team_profiles: dict[str, dict[str, str]] = Field(default_factory=dict)
    # A vendor endpoint service: its API key, from Secrets Manager (or, locally, an environment variable).
    api_key_secret_id: str | None = None
    api_key_env: str | None = None
    api_key_header: str = "x-api-key"


class LongContextPricing(_Model):
    """The 1M-token context beta: above `above_input_tokens`, every token of the request costs more."""

    beta_prefix: str = "context-1m"
    above_input_tokens: PositiveInt = 200_000
    input_factor: Annotated[float, Field(ge=1)] = 2.0
    output_factor: Annotated[float, Field(ge=1)] = 1.5


class CostOptions(_Model):
    """What a request may ask of the vendor that changes its price, and by how much (from AWS's price list;
    check yours). A tier or latency not listed, or the long-context beta when it is None, is refused (400)."""

    service_tiers: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: {"default": 1.0, "flex": 0.5, "priority": 1.75}
    )
    latency: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: {"standard": 1.0, "optimized": 1.25}
    )
    long_context: LongContextPricing | None = LongContextPricing()


class RateLimits(_Model):
    """Requests per rolling hour, fleet-wide, and what happens when the shared counters are out of reach."""

    enabled: bool = True
    user_per_hour: PositiveInt = 120
    team_per_hour: PositiveInt = 800
    # Soft by default: over it, requests pass and are flagged in the audit record and metrics.
    org_per_hour: PositiveInt = 5000
    org_cap: Literal["soft", "hard"] = "soft"
    # Redis unreachable: "open" falls back to a per-process limiter at each limit / the fleet's
    # minimum size and flags every such decision; "closed" refuses with 503.
    fail_mode: Literal["open", "closed"] = "open"
    # A team at its monthly budget: "enforce" refuses with 402, "warn" lets it through, flagged.
    budget_mode: Literal["enforce", "warn"] = "enforce"
    # A reservation never settled (its process died) stops counting after this long. Longer than a stream.
    reservation_ttl_seconds: Annotated[int, Field(ge=60, le=86_400)] = 900
    # Worst case for a request that names no max_tokens.
    default_max_tokens: PositiveInt = 4096
    # The most output a request may ask for where no model's own limit applies (a vendor endpoint service);
    # a Bedrock model's comes from the table of models. Anything else is refused with 400.
    max_output_tokens: Annotated[int, Field(ge=1, le=1_000_000)] = 128_000


class RedisSettings(_Model):
    """The shared counters (ElastiCache in AWS, a local redis-server in tests)."""

    host: str | None = None  # None: filled in by the fleet from its ElastiCache endpoint
    port: Annotated[int, Field(ge=1, le=65535)] = 6379
    tls: bool = True
    # The AUTH token: a Secrets Manager secret in AWS, an environment variable locally.
    auth_token_secret_id: str | None = None
    auth_token_env: str | None = None
    # Each command's budget; a Redis that does not answer in time counts as unreachable.
    timeout_seconds: Annotated[float, Field(gt=0, le=5)] = 0.25
    # After a failure, requests skip Redis (fail mode) this long before trying it again.
    retry_after_seconds: Annotated[float, Field(ge=0, le=60)] = 1.0


class FileSink(_Model):
    path: Path
    queue_size: Annotated[int, Field(ge=100, le=1_000_000)] = 20_000


class ServerSettings(_Model):
    """Limits on what a connection may hold before its request reaches the gateway: slow or oversized headers
    and bodies, and idle or half-open connections, cost a process memory and a connection slot each."""

    # The request line and headers must arrive within this, from the connection's first byte or the previous
    # response (408 otherwise); uvicorn alone waits for them for ever.
    header_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10
    max_header_bytes: Annotated[int, Field(ge=4096, le=1024 * 1024)] = 32 * 1024
    # The body may pause at most this long between two of its pieces (408 otherwise).
    body_idle_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 30
    # Connections (and requests) per process; beyond, new ones get 503 at once.
    max_connections: Annotated[int, Field(ge=16, le=100_000)] = 2048


HTTPS_URL = r"^https://[A-Za-z0-9.-]+(:\d+)?(/[^\s?#]*)?$"
# Plain http only on loopback, as Claude Code allows it (local runs and tests).
LOOPBACK_URL = r"^http://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?(/[^\s?#]*)?$"


def _web_url(value: str, what: str) -> str:
    if not (re2.match(HTTPS_URL, value) or re2.match(LOOPBACK_URL, value)):
        raise ValueError(f"{what} must be an https:// URL (http:// only on loopback), not {value!r}")
    return value


class OidcSettings(_Model):
    """The corporate IdP that signs people in on the verification page (authorization code with PKCE)."""

    # Its id tokens' `iss`, and its two endpoints (from its discovery document).
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    # The client registered at the IdP for aigw's sign-in, and its secret if it is a confidential client (a
    # Secrets Manager secret in AWS, an environment variable locally); without one, PKCE alone.
    client_id: str
    client_secret_secret_id: str | None = None
    client_secret_env: str | None = None
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    # The gateway's callbacks registered at the IdP (`<public_url>/oauth/callback`); the first is used unless a
    # sign-in names another on this list.
    redirect_uris: Annotated[tuple[str, ...], Field(min_length=1)]
    # The VPC has no route out: the server-side code exchange goes through the out-of-VPC function (the gateway
    # stack fills this in), or through this corporate HTTP(S) proxy. Neither set (local runs): directly.
    exchange_function: str | None = None
    proxy: str | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=30)] = 10

    @property
    def proxy_port(self) -> int | None:
        """The corporate proxy's TCP port, if the code exchange goes through one."""
        return proxy_port(self.proxy)

    @model_validator(mode="after")
    def _urls(self) -> OidcSettings:
        _web_url(self.authorization_endpoint, "oidc.authorization_endpoint")
        _web_url(self.token_endpoint, "oidc.token_endpoint")
        for uri in self.redirect_uris:
            _web_url(uri, "oidc.redirect_uris")
        if self.exchange_function is not None and self.proxy is not None:
            raise ValueError("set oidc.proxy or oidc.exchange_function, not both: they are two ways out to the IdP")
        if self.proxy is not None and not re2.match(r"^https?://[^/\s]+/?$", self.proxy):
            raise ValueError(f"oidc.proxy must be a proxy URL (http://proxy.example.com:3128), not {self.proxy!r}")
        return self


class TokenSigning(_Model):
    """The key aigw signs its own access tokens with, kept in AWS: a KMS asymmetric key (ES256; the private key
    never leaves KMS) or a secret (HS256)."""

    kind: Literal["kms", "secret"] = "kms"
    # KMS: the key's ARN or alias (the gateway stack makes the key and fills this in).
    kms_key_id: str | None = None
    # A secret: Secrets Manager (in AWS) or an environment variable (local runs and tests).
    secret_id: str | None = None
    secret_env: str | None = None


class SigninSettings(_Model):
    """Sign-in from Claude Code's /login (OAuth device flow) with the corporate IdP, and aigw's own access tokens
    that refresh themselves: expired tokens after laptop sleep were the field report's top support ticket."""

    # Where clients reach this gateway (Claude Code's `forceLoginGatewayUrl`): its discovery document's issuer,
    # and the `iss` of its tokens.
    public_url: str
    oidc: OidcSettings
    signing: TokenSigning = TokenSigning()
    # A client that names itself must be this one (Claude Code names none).
    client_id: str = "claude-code"
    access_token_seconds: Annotated[int, Field(ge=60, le=12 * 3600)] = 3600
    # A refresh token unused this long lapses (a long weekend's sleep must not end a session) ...
    refresh_idle_seconds: Annotated[int, Field(ge=3600, le=90 * 86_400)] = 4 * 86_400
    # ... and a sign-in's refresh tokens all lapse this long after it: how long the IdP is not asked again.
    session_max_seconds: Annotated[int, Field(ge=3600, le=90 * 86_400)] = 7 * 86_400
    # A rotated refresh token presented again within this long is refused without revoking its family: two
    # terminals sharing one stored credential refresh at about the same time. Later, it is taken as stolen.
    reuse_grace_seconds: Annotated[int, Field(ge=0, le=300)] = 30
    device_code_seconds: Annotated[int, Field(ge=60, le=1800)] = 600
    poll_interval_seconds: Annotated[int, Field(ge=1, le=60)] = 5
    # Per client address, per 10 minutes: device codes asked for, and codes typed on the verification page.
    device_authorizations_per_10_min: PositiveInt = 30
    verifications_per_10_min: PositiveInt = 10

    @model_validator(mode="after")
    def _public_url(self) -> SigninSettings:
        _web_url(self.public_url, "signin.public_url")
        if self.public_url.endswith("/"):
            raise ValueError("signin.public_url must not end with '/' (Claude Code resolves fixed paths against it)")
        if self.session_max_seconds < self.refresh_idle_seconds:
            raise ValueError("signin.session_max_seconds must not be shorter than refresh_idle_seconds")
        return self

    @property
    def issuer(self) -> str:
        return self.public_url


class GatewayOptions(_Model):
    """The part of `config/<env>.yaml` (section `gateway`) that is the service's own."""

    auth: AuthSettings
    redis: RedisSettings = RedisSettings()
    policy: PolicySettings = PolicySettings()
    upstream: UpstreamSettings = UpstreamSettings()
    server: ServerSettings = ServerSettings()
    audit: FileSink = FileSink(path=Path("/var/log/aigw/audit.jsonl"))
    metrics: FileSink = FileSink(path=Path("/var/log/aigw/metrics.jsonl"))
    # Claude Code's telemetry events (OTLP logs), one line each, for their own log group.
    telemetry: FileSink = FileSink(path=Path("/var/log/aigw/telemetry.jsonl"))
    metrics_namespace: str = "aigw"
    cost_options: CostOptions = CostOptions()
    # Claude Code's gateway sign-in; None: only the IdP's own tokens are accepted.
    signin: SigninSettings | None = None
    # Claude Code's settings per team and IdP group, served at /managed/settings (see gateway.managed_settings).
    managed_settings: ManagedSettingsRules = ManagedSettingsRules()
    # Each audit record is one line of at most this many bytes, whatever the request: the CloudWatch agent
    # would cut a longer one into invalid JSON. Longer text is cut and the record says so (see gateway/audit.py).
    audit_record_limit_bytes: Annotated[int, Field(ge=MIN_RECORD_BYTES, le=MAX_RECORD_BYTES)] = 200 * 1024

    @property
    def files(self) -> tuple[FileSink, ...]:
        """The JSON-lines files the service appends to (rotated on the instances, shipped by the agent)."""
        return self.audit, self.metrics, self.telemetry


class GatewaySettings(GatewayOptions):
    """Everything the service reads at start: its options plus the environment's vendor."""

    environment: str
    vendor: VendorSettings
    limits: RateLimits = RateLimits()
    # Monthly caps in US dollars, per team (teams without one are not capped).
    team_budgets_usd: dict[str, float] = Field(default_factory=dict)
    # The teams a token's team claim must name (after case, whitespace and Unicode normalisation); empty: any.
    teams: tuple[str, ...] = ()
    fleet_min_instances: Annotated[int, Field(ge=1)] = 2
    # Worker processes on each instance (one per vCPU): each has its own files, named by `worker_path`.
    workers: Annotated[int, Field(ge=1, le=64)] = 1

    @classmethod
    def read(cls, path: Path) -> GatewaySettings:
        return cls.model_validate_json(path.read_text())

    def for_worker(self, index: int) -> GatewaySettings:
        """Worker `index`'s settings: its own audit, metrics and telemetry files."""
        if not 0 <= index < self.workers:
            raise ValueError(f"worker {index} is not one of this instance's {self.workers} (0 to {self.workers - 1})")
        return self.model_copy(
            update={
                name: sink.model_copy(update={"path": worker_path(sink.path, index)})
                for name, sink in (("audit", self.audit), ("metrics", self.metrics), ("telemetry", self.telemetry))
            }
        )

    def worker_files(self) -> list[Path]:
        """Every worker's files (what logrotate rotates and the CloudWatch agent ships)."""
        return [worker_path(sink.path, index) for sink in self.files for index in range(self.workers)]

    def with_environment(self, environ: Mapping[str, str]) -> GatewaySettings:
        """What is known only once the stack is deployed (the counters' endpoint and token secret, the teams'
        inference profile ids) reaches an instance as environment variables; the rest stays as rendered."""
        redis = {
            field: environ[name]
            for field, name in (
                ("host", "AIGW_REDIS_HOST"),
                ("port", "AIGW_REDIS_PORT"),
                ("auth_token_secret_id", "AIGW_REDIS_AUTH_SECRET_ID"),
            )
            if environ.get(name)
        }
        updated = self
        if environ.get(CANARY_TOKEN_VARIABLE):
            auth = self.auth.model_copy(update={"canary_token_secret_id": environ[CANARY_TOKEN_VARIABLE]})
            updated = updated.model_copy(update={"auth": auth})
        if redis:
            merged = RedisSettings.model_validate({**self.redis.model_dump(), **redis})
            updated = updated.model_copy(update={"redis": merged})
        if environ.get(TEAM_PROFILES_VARIABLE):
            profiles = team_profiles_from(environ[TEAM_PROFILES_VARIABLE], self.vendor)
            updated = updated.model_copy(update={"vendor": self.vendor.model_copy(update={"team_profiles": profiles})})
        return updated


def worker_path(path: Path, index: int) -> Path:
    """A worker's own copy of one of the gateway's files: audit.jsonl is audit-0.jsonl, audit-1.jsonl, ..."""
    return path.with_name(f"{path.stem}-{index}{path.suffix}")


def team_profiles_variable(profile_ids: Mapping[tuple[str, str], str]) -> str:
    """AIGW_TEAM_PROFILES's value: `team/model-id=profile-id` pairs, comma-separated. Ids, not ARNs, keep the
    instances' user data small (EC2 allows 16 KiB): the ARN is the same but for the id."""
    return ",".join(f"{team}/{model}={profile}" for (team, model), profile in profile_ids.items())


def team_profiles_from(value: str, vendor: VendorSettings) -> dict[str, dict[str, str]]:
    """Parse AIGW_TEAM_PROFILES into team -> model id -> profile ARN, refusing what config did not render."""
    if vendor.account is None:
        raise ValueError(f"{TEAM_PROFILES_VARIABLE} needs vendor.account to name the profiles' ARNs")
    models = {route.id for route in vendor.models}
    prefix = (
        f"arn:{partition_of(vendor.region)}:bedrock:{vendor.region}:{vendor.account}:application-inference-profile/"
    )
    profiles: dict[str, dict[str, str]] = {}
    for entry in filter(None, value.split(",")):
        key, equals, profile_id = entry.partition("=")
        team, slash, model = key.partition("/")
        if not (equals and slash and team and re2.fullmatch(r"[A-Za-z0-9.:-]{1,64}", profile_id)):
            raise ValueError(f"{TEAM_PROFILES_VARIABLE}: {entry!r} is not team/model-id=profile-id")
        if model not in models:
            raise ValueError(
                f"{TEAM_PROFILES_VARIABLE}: {model!r} is not a configured model ({', '.join(sorted(models))})"
            )
        profiles.setdefault(team, {})[model] = prefix + profile_id
    return profiles
