"""GatewayStack: the way to the vendor (its PrivateLink endpoint, each team's inference profiles) and the
proxy fleet behind its internal load balancer, with its shared counters and alarms.

The endpoint's policy, the proxies' role and the gateway all name the teams' profiles, whose ARNs exist only
once deployed: one stack keeps them in step without cross-stack exports (which could not be deleted while
imported, so a team could not be removed)."""

from __future__ import annotations

from aws_cdk import ArnFormat
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct
from constructs.access_token_key import AccessTokenKey
from constructs.availability_canary import CanaryCredential
from constructs.fleet_alarms import FleetAlarms
from constructs.gateway_bundle import PORT, GatewayBundle
from constructs.gateway_load_balancer import GatewayLoadBalancer
from constructs.idp_keys_mirror import IdpKeysMirror
from constructs.model_access import invoke_statements
from constructs.proxy_fleet import FleetSizing, ProxyFleet
from constructs.shared_counters import SharedCounters
from constructs.team_inference_profiles import TeamInferenceProfiles
from constructs.vendor_endpoint import VendorEndpoint

from config import AigwConfig
from config.render import gateway_settings
from gateway.settings import CANARY_TOKEN_VARIABLE, TEAM_PROFILES_VARIABLE, GatewaySettings, team_profiles_variable
from stacks.audit_stack import AuditStack
from stacks.environment_stack import EnvironmentStack
from stacks.network_stack import NetworkStack


class GatewayStack(EnvironmentStack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: AigwConfig, audit: AuditStack, network: NetworkStack
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            config=config,
            description="aigw gateway: vendor endpoint, team inference profiles, proxy fleet, load balancer, alarms",
        )
        vpc, subnets, proxies = network.network.vpc, network.network.workload_subnets, network.proxy_security_group
        settings = gateway_settings(config)
        # The stream cap plus margin; the gateway's keep-alive derives from the same setting and is longer.
        stream_seconds = settings.upstream.load_balancer_idle_seconds

        key, alerts = audit.key.key, audit.alerts.topic
        signin = settings.signin
        models = config.models
        self.team_profiles = TeamInferenceProfiles(
            self, "TeamProfiles", environment=config.environment, teams=config.teams, models=models
        )
        self.vendor_endpoint = VendorEndpoint(
            self,
            "VendorEndpoint",
            vpc=vpc,
            subnets=network.network.endpoint_subnets,
            clients=proxies,
            service=config.vendor.service,
            model_statements=[
                statement
                for route in models
                for statement in invoke_statements(
                    route, self.team_profiles.arns_for(route.id), endpoint_account=config.account
                )
            ],
            private_dns=config.vendor.private_dns_enabled,
        )
        # Named, so the project key's policy can name it without the audit stack depending on this one.
        proxy_role_name = f"aigw-{config.environment}-proxy-{config.region}"
        audit.key.allow_role_through_service(
            "ProxyInstancesReadSecrets",
            self.format_arn(service="iam", region="", resource="role", resource_name=proxy_role_name),
            "secretsmanager",
            ["kms:Decrypt"],
        )
        self.counters = SharedCounters(self, "Counters", vpc=vpc, subnets=subnets, clients=proxies, key=key)
        # The availability canary's token (its canary lives in the operations stack, which depends on this one).
        self.canary_token = (
            CanaryCredential(self, "CanaryToken", key=key, secret_name=f"aigw-{config.environment}-canary-token").secret
            if config.operations.canary.enabled
            else None
        )
        # The VPC has no route out: a function outside it mirrors the IdP's keys into SSM for the gateway, unless
        # the config names a corporate proxy the gateway fetches them through.
        self.idp_keys = (
            None
            if config.gateway.auth.jwks_proxy
            else IdpKeysMirror(
                self,
                "IdpKeys",
                key=audit.key,
                topic=alerts,
                environment=config.environment,
                issuer=config.gateway.auth.issuer,
                log_retention_days=config.operations.log_retention_days,
                # Sign-in's code exchange goes out through it too, unless a corporate proxy is configured for it.
                token_endpoint=signin.oidc.token_endpoint if signin and not signin.oidc.proxy else None,
            )
        )
        if self.idp_keys is not None:  # the bundled settings only: local runs keep fetching jwks_url
            mirror = {
                "jwks_parameter": self.idp_keys.parameter_name,
                "jwks_refresh_function": self.idp_keys.function_name,
            }
            settings = settings.model_copy(update={"auth": settings.auth.model_copy(update=mirror)})
        # aigw's own access tokens, after a sign-in: signed with a KMS key made here (unless config names one), and
        # the code exchange with the IdP through the mirror function (unless config names a proxy for it).
        self.access_token_key = None
        signin_statements: list[iam.PolicyStatement] = []
        if signin is not None:
            signing, oidc = signin.signing, signin.oidc
            if signing.kind == "kms" and signing.kms_key_id is None:
                alias = f"alias/aigw-{config.environment}-access-tokens"
                self.access_token_key = AccessTokenKey(
                    self, "AccessTokenKey", alias=alias, description=f"aigw-{config.environment}: signs access tokens"
                )
                signing = signing.model_copy(update={"kms_key_id": alias})
                signin_statements = self.access_token_key.gateway_statements
            if self.idp_keys is not None and oidc.proxy is None:
                oidc = oidc.model_copy(update={"exchange_function": self.idp_keys.function_name})
            signin = signin.model_copy(update={"signing": signing, "oidc": oidc})
            settings = settings.model_copy(update={"signin": signin})
        self.fleet = ProxyFleet(
            self,
            "Fleet",
            vpc=vpc,
            subnets=subnets,
            security_group=proxies,
            bundle=GatewayBundle(self, "Bundle", settings=settings),
            alerts=alerts,
            log_groups={
                str(settings.audit.path): audit.audit_logs.log_group,
                str(settings.metrics.path): audit.metrics_logs.log_group,
                str(settings.telemetry.path): audit.telemetry_logs.log_group,
            },
            metrics_namespace=settings.metrics_namespace,
            model_statements=[invoke_statements(route, self.team_profiles.arns_for(route.id)) for route in models],
            secret_arns=[
                self.counters.auth_token.secret_arn,
                *([self.canary_token.secret_arn] if self.canary_token else []),
                *self._vendor_key_arns(config),
                *signin_secret_arns(settings),
            ],
            secret_keys=[key],
            environment={
                "AIGW_REDIS_HOST": self.counters.address,
                "AIGW_REDIS_PORT": str(self.counters.port),
                "AIGW_REDIS_AUTH_SECRET_ID": self.counters.auth_token.secret_arn,
                TEAM_PROFILES_VARIABLE: team_profiles_variable(self.team_profiles.ids),
                **({CANARY_TOKEN_VARIABLE: self.canary_token.secret_arn} if self.canary_token else {}),
            },
            drain_seconds=stream_seconds,
            role_name=proxy_role_name,
            extra_statements=[
                *(self.idp_keys.gateway_statements if self.idp_keys is not None else ()),
                *signin_statements,
            ],
            image=config.fleet.ami,
            sizing=FleetSizing(
                instance_type=config.fleet.instance_type,
                min_instances=config.fleet.min_instances,
                max_instances=config.fleet.max_instances,
                cpu_target_percent=config.fleet.cpu_target_percent,
                health_check_grace_seconds=config.fleet.health_check_grace_seconds,
            ),
        )
        self.load_balancer = GatewayLoadBalancer(
            self,
            "LoadBalancer",
            vpc=vpc,
            subnets=subnets,
            certificate_arn=config.load_balancer.certificate_arn,
            client_cidrs=[str(cidr) for cidr in config.load_balancer.client_cidrs],
            target_port=PORT,
            stream_seconds=stream_seconds,
            deletion_protection=config.load_balancer.deletion_protection,
        )
        self.fleet.serve(self.load_balancer.target_group, config.fleet.requests_per_instance_per_minute)
        # Rules that name this stack's groups live in this stack (remote_rule): NetworkStack must not depend on it.
        balancer_group = self.load_balancer.security_group
        proxies.add_ingress_rule(
            balancer_group, ec2.Port.tcp(PORT), "the gateway's port from the load balancer", remote_rule=True
        )
        balancer_group.add_egress_rule(proxies, ec2.Port.tcp(PORT), "the gateway's port on the proxy fleet")
        proxies.add_egress_rule(
            self.counters.security_group, ec2.Port.tcp(self.counters.port), "Redis (TLS)", remote_rule=True
        )
        # Only the VPC's endpoints answer on 443 here: the subnets have no route to the internet.
        proxies.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to the VPC and S3 gateway endpoints")
        proxy_ports = {config.gateway.auth.jwks_proxy_port, signin.oidc.proxy_port if signin else None} - {None}
        for port in sorted(p for p in proxy_ports if p is not None):  # the IdP's keys or sign-in, through a proxy
            proxies.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(port), "the corporate proxy to the IdP")
        FleetAlarms(
            self,
            "Alarms",
            group=self.fleet.group,
            load_balancer=self.load_balancer.load_balancer,
            target_group=self.load_balancer.target_group,
            availability_zones=config.availability_zones,
            min_instances=config.fleet.min_instances,
            namespace=settings.metrics_namespace,
            environment=config.environment,
            topic=alerts,
        )

    def _vendor_key_arns(self, config: AigwConfig) -> list[str]:
        """A vendor endpoint service's API key secret (Secrets Manager appends 6 characters to its name)."""
        name = config.vendor.api_key_secret_id
        if name is None:
            return []
        if name.startswith("arn:"):
            return [name]
        return [
            self.format_arn(
                service="secretsmanager",
                resource="secret",
                resource_name=f"{name}-??????",
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
        ]


def signin_secret_arns(settings: GatewaySettings) -> list[str]:
    """The secrets sign-in reads (a signing secret, the IdP client's secret), when config names them."""
    signin = settings.signin
    if signin is None:
        return []
    named = (signin.signing.secret_id if signin.signing.kind == "secret" else None, signin.oidc.client_secret_secret_id)
    return [arn for arn in named if arn is not None]
