"""Config validation: every bad value stops synth with the file, the field and what is allowed."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from config import ConfigError, load_config
from config.settings import CONFIG_DIR, instance_vcpus

ROOT = Path(__file__).resolve().parents[2]
DEV: dict[str, Any] = yaml.safe_load((CONFIG_DIR / "dev.yaml").read_text())


def write(tmp_path: Path, change: Callable[[dict[str, Any]], None], name: str = "dev") -> Path:
    raw = copy.deepcopy(DEV)
    raw["environment"] = name
    change(raw)
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(raw))
    return tmp_path


def error_for(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> str:
    directory = write(tmp_path, change)
    with pytest.raises(ConfigError) as raised:
        load_config("dev", directory)
    message = str(raised.value)
    assert message.startswith(f"{tmp_path.name}/dev.yaml: "), message
    return message


def test_shipped_environments_load_with_field_report_defaults() -> None:
    dev, prod = load_config("dev"), load_config("prod")
    assert len(dev.availability_zones) == 3 and len(prod.availability_zones) == 3
    assert (prod.fleet.instance_type, prod.fleet.min_instances, prod.fleet.max_instances) == ("c6i.xlarge", 2, 6)
    assert (prod.limits.user_per_hour, prod.limits.team_per_hour, prod.limits.org_per_hour) == (120, 800, 5000)
    assert prod.limits.org_cap == "soft"
    assert prod.budgets.org_monthly_usd == 41_000
    assert len(prod.teams) == 14
    assert prod.network.egress is False and dev.network.egress is False
    assert prod.vendor.service == "bedrock-runtime" and prod.vendor.private_dns_enabled


def test_fewer_than_two_azs(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda c: c.update(availability_zones=["eu-west-1a"]))
    assert "availability_zones: 1 given; at least 2 AZs are required" in message


def test_az_outside_the_region(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda c: c.update(availability_zones=["eu-west-1a", "us-east-1b"]))
    assert "availability_zones: 'us-east-1b' is not an AZ of region eu-west-1" in message


def test_repeated_az(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda c: c.update(availability_zones=["eu-west-1a", "eu-west-1a"]))
    assert "availability_zones: each AZ may appear once" in message


def test_min_instances_above_max(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda c: c.update(fleet={"min_instances": 4, "max_instances": 3}))
    assert "fleet: min_instances (4) must not exceed max_instances (3)" in message


@pytest.mark.parametrize(
    ("instance_type", "vcpus"),
    [
        ("c6i.xlarge", 4),
        ("c7i.large", 2),
        ("m6a.2xlarge", 8),
        ("r7i.12xlarge", 48),
        ("t3.medium", 2),
        ("x1e.metal", None),
    ],
)
def test_workers_default_to_the_instance_types_vcpus(instance_type: str, vcpus: int | None) -> None:
    assert instance_vcpus(instance_type) == vcpus


def test_an_instance_type_of_unknown_size_needs_workers_named(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda c: c.update(fleet={"instance_type": "c6i.metal"}))
    assert "fleet: workers_per_instance: aigw does not know how many vCPUs a c6i.metal has" in message
    assert "set workers_per_instance (1 to 64)" in message


def test_single_instance_fleet(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda c: c.update(fleet={"min_instances": 1}))
    assert "fleet.min_instances: Input should be greater than or equal to 2" in message


@pytest.mark.parametrize("field", ["user_per_hour", "team_per_hour", "org_per_hour"])
@pytest.mark.parametrize("value", [0, -5])
def test_rate_limit_not_positive(tmp_path: Path, field: str, value: int) -> None:
    message = error_for(tmp_path, lambda c: c.update(limits={field: value}))
    assert f"limits.{field}: Input should be greater than 0" in message


def test_org_cap_names_allowed_values(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda c: c.update(limits={"org_cap": "sometimes"}))
    assert "limits.org_cap: Input should be 'soft' or 'hard'" in message


def test_budget_for_unknown_team(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda c: c["budgets"]["team_monthly_usd"].update(frontend=100))
    assert "budgets.team_monthly_usd: unknown team frontend; teams are: payments, platform, mobile, data" in message


def test_repeated_team(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda c: c.update(teams=["payments", "payments"]))
    assert "teams: listed more than once: payments" in message


@pytest.mark.parametrize(
    "service",
    [
        "com.amazonaws.vpce.eu-west-1.vpce-svc-XYZ",
        "com.amazonaws.vpce.eu-west-1.vpce-svc-0123",
        "com.amazonaws.vpce.vpce-svc-0123456789abcdef0",
    ],
)
def test_malformed_endpoint_service_name(tmp_path: Path, service: str) -> None:
    message = error_for(tmp_path, lambda c: c.update(vendor={"service": service}))
    assert f"vendor.service: malformed endpoint service name {service!r}: expected com.amazonaws.vpce." in message


VENDOR = {"url": "https://api.vendor.example", "api_key_secret_id": "aigw/dev/vendor-key"}


def test_endpoint_service_in_another_region(tmp_path: Path) -> None:
    service = "com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0"
    message = error_for(tmp_path, lambda c: c.update(vendor={"service": service, **VENDOR}))
    assert "vendor.service: endpoint service is in us-east-1, the environment in eu-west-1" in message


def test_vendor_endpoint_service_is_accepted_without_models(tmp_path: Path) -> None:
    service = "com.amazonaws.vpce.eu-west-1.vpce-svc-0123456789abcdef0"
    config = load_config("dev", write(tmp_path, lambda c: c.update(vendor={"service": service, **VENDOR})))
    assert config.vendor.is_endpoint_service and not config.vendor.is_bedrock
    assert config.vendor.private_dns_enabled is False
    assert config.vendor.endpoint_url(config.region) == "https://api.vendor.example"


@pytest.mark.parametrize(
    ("missing", "message"),
    [("url", "vendor: url: a vendor endpoint service needs"), ("api_key_secret_id", "vendor: api_key_secret_id:")],
)
def test_vendor_endpoint_service_needs_url_and_key(tmp_path: Path, missing: str, message: str) -> None:
    service = "com.amazonaws.vpce.eu-west-1.vpce-svc-0123456789abcdef0"
    vendor = {"service": service, **VENDOR}
    del vendor[missing]
    assert message in error_for(tmp_path, lambda c: c.update(vendor=vendor))


def test_unsupported_aws_service(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda c: c["vendor"].update(service="sagemaker-runtime"))
    assert "vendor.service: 'sagemaker-runtime' is not supported; allowed: bedrock-runtime" in message


def test_every_model_needs_a_price(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda c: c["vendor"]["models"].update({"eu.anthropic.claude-opus-5-5": {}}))
    assert "vendor.models.eu.anthropic.claude-opus-5-5.input_per_1k_usd: Field required" in message


EU_ALLOWED = (
    "eu.anthropic.claude-haiku-4-5-20251001-v1:0, eu.anthropic.claude-opus-5-5, "
    "eu.anthropic.claude-sonnet-4-5-20250929-v1:0, global.anthropic.claude-haiku-4-5-20251001-v1:0, "
    "global.anthropic.claude-opus-5-5, global.anthropic.claude-sonnet-4-5-20250929-v1:0, "
    "anthropic.claude-haiku-4-5-20251001-v1:0"
)
PRICE = {"input_per_1k_usd": 0.001, "output_per_1k_usd": 0.005}
MODEL_SONNET = "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"


@pytest.mark.parametrize(
    ("model", "why"),
    [
        ("anthropic.claude-opus-4-1-20250805-v1:0", "not in the model catalog"),
        ("us.anthropic.claude-opus-5-5", "this profile cannot be called from eu-west-1 (only from us-east-1"),
        (
            "anthropic.claude-opus-5-5",
            "this model cannot be invoked on demand by its id in eu-west-1: name an inference",
        ),
        ("arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-opus-5-5", "name models by id, not ARN"),
    ],
)
def test_a_model_this_region_cannot_use_is_refused_with_the_ids_it_can(tmp_path: Path, model: str, why: str) -> None:
    message = error_for(tmp_path, lambda c: c["vendor"]["models"].update({model: PRICE}))
    assert f"vendor.models: {model!r}: {why}" in message
    assert message.endswith(f"; usable in eu-west-1: {EU_ALLOWED}")


def test_an_environment_extends_the_model_catalog(tmp_path: Path) -> None:
    catalog = {
        "foundation_models": {"anthropic.claude-sonnet-5-5": {"max_output_tokens": 128000}},
        "inference_profiles": {
            "eu.anthropic.claude-sonnet-5-5": {
                "model": "anthropic.claude-sonnet-5-5",
                "sources": ["eu-west-1"],
                "destinations": ["eu-west-1", "eu-central-1"],
            }
        },
    }

    def extend(c: dict[str, Any]) -> None:
        c["vendor"]["catalog"] = catalog
        c["vendor"]["models"]["eu.anthropic.claude-sonnet-5-5"] = PRICE

    config = load_config("dev", write(tmp_path, extend))
    route = next(m for m in config.models if m.id == "eu.anthropic.claude-sonnet-5-5")
    assert route.kind == "inference-profile" and route.foundation_model == "anthropic.claude-sonnet-5-5"
    assert route.arn == "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-sonnet-5-5"
    assert route.model_arns == (
        "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-sonnet-5-5",
        "arn:aws:bedrock:eu-central-1::foundation-model/anthropic.claude-sonnet-5-5",
    )


def test_a_profile_from_a_source_outside_its_destinations_also_reaches_that_source(tmp_path: Path) -> None:
    def london(c: dict[str, Any]) -> None:
        c.update(region="eu-west-2", availability_zones=["eu-west-2a", "eu-west-2b"])

    route = load_config("dev", write(tmp_path, london)).models[0]
    regions = [arn.split(":")[3] for arn in route.model_arns]
    assert regions == ["eu-central-1", "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-3", "eu-west-2"]


def test_a_global_profile_names_its_model_in_every_region_as_aws_requires(tmp_path: Path) -> None:
    def global_opus(c: dict[str, Any]) -> None:
        c["vendor"]["models"] = {"global.anthropic.claude-opus-5-5": PRICE}
        c["gateway"].pop("managed_settings")  # its rules name the models this replaces

    (route,) = load_config("dev", write(tmp_path, global_opus)).models
    assert route.model_arns == (
        "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-opus-5-5",
        "arn:aws:bedrock:::foundation-model/anthropic.claude-opus-5-5",
    )


def test_a_model_still_invocable_on_demand_is_named_by_its_id(tmp_path: Path) -> None:
    def haiku(c: dict[str, Any]) -> None:
        c["vendor"]["models"] = {"anthropic.claude-haiku-4-5-20251001-v1:0": PRICE}
        c["gateway"].pop("managed_settings")  # its rules name the models this replaces

    (route,) = load_config("dev", write(tmp_path, haiku)).models
    assert route.kind == "foundation-model"
    assert route.arn == "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0"
    assert route.model_arns == (route.arn,)


def test_the_old_model_arns_field_says_what_replaced_it(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda c: c["vendor"].update(model_arns=["arn:aws:bedrock:eu-west-1::x/y"]))
    assert "vendor: model_arns and prices are now one map, models" in message


def test_a_catalog_profile_must_say_where_it_routes(tmp_path: Path) -> None:
    profile = {"model": "anthropic.claude-opus-5-5", "sources": ["eu-west-1"]}
    message = error_for(
        tmp_path, lambda c: c["vendor"].update(catalog={"inference_profiles": {"eu.acme.coder-1": profile}})
    )
    assert "inference_profiles.eu.acme.coder-1: list the Regions it routes to (destinations)" in message


def test_a_rule_that_is_not_re2_names_the_rule(tmp_path: Path) -> None:
    rule = {"id": "backref", "pattern": r"(a+)\1", "action": "block"}
    message = error_for(tmp_path, lambda c: c["gateway"]["policy"].update(rules=[rule]))
    assert "gateway.policy.rules.0: rule backref: pattern: '(a+)\\\\1' is not a valid RE2 pattern" in message


def test_shipped_rules_apply_unless_an_environment_sets_its_own(tmp_path: Path) -> None:
    assert len(load_config("dev").gateway.policy.rules) >= 15
    rule = {"id": "only-this", "pattern": "x", "action": "log"}
    config = load_config("dev", write(tmp_path, lambda c: c["gateway"]["policy"].update(rules=[rule])))
    assert [r.id for r in config.gateway.policy.rules] == ["only-this"]


def test_clock_leeway_is_bounded(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda c: c["gateway"]["auth"].update(leeway_seconds=3600))
    assert "gateway.auth.leeway_seconds: Input should be less than or equal to 300" in message


def test_bedrock_needs_models(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda c: c.update(vendor={"service": "bedrock-runtime"}))
    assert "vendor: models: Bedrock needs at least one model id" in message


def test_unknown_field_lists_allowed_fields(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda c: c.update(fleet={"min_instance": 2}))
    assert "fleet.min_instance: unknown field; allowed here: instance_type, min_instances, max_instances" in message


def test_log_retention_lists_allowed_values(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda c: c["network"].update(flow_log_retention_days=100))
    assert "network.flow_log_retention_days: 100 is not a CloudWatch Logs retention; allowed: 1, 3, 5" in message


def test_unquoted_account_id(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda c: c.update(account=123456789012))
    assert "account: quote the account id" in message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    def break_two(raw: dict[str, Any]) -> None:
        raw["availability_zones"] = ["eu-west-1a"]
        raw["limits"] = {"user_per_hour": 0}

    message = error_for(tmp_path, break_two)
    assert "availability_zones:" in message and "limits.user_per_hour:" in message


def test_environment_must_match_file_name(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda c: c.update(environment="prod"))
    assert "environment: 'prod' must match the file name ('dev')" in message


def test_unknown_environment_lists_available_ones() -> None:
    with pytest.raises(ConfigError, match=r"config/staging.yaml: no such environment 'staging'; available: dev, prod"):
        load_config("staging")
    with pytest.raises(ConfigError, match=r"no such environment 'policy-rules'"):
        load_config("policy-rules")


def test_bad_config_stops_synth_before_any_template(tmp_path: Path) -> None:
    """The real entry point: `python app.py -c env=…` exits non-zero, says why, and writes no template."""
    outdir = tmp_path / "cdk.out"
    completed = subprocess.run(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env={**os.environ, "CDK_OUTDIR": str(outdir), "CDK_CONTEXT_JSON": '{"env": "staging"}'},
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode != 0
    assert "bad configuration, nothing was synthesized" in completed.stderr
    assert "config/staging.yaml: no such environment" in completed.stderr
    assert not list(outdir.glob("*.template.json"))


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [("fail_mode", "maybe", "'open' or 'closed'"), ("budget_mode", "no", "'enforce' or 'warn'")],
)
def test_limit_modes_name_allowed_values(tmp_path: Path, field: str, value: str, allowed: str) -> None:
    message = error_for(tmp_path, lambda c: c.update(limits={field: value}))
    assert f"limits.{field}: Input should be {allowed}" in message


def test_gateway_settings_render_from_the_same_config() -> None:
    from config.render import gateway_settings

    config = load_config("prod")
    rendered = gateway_settings(config)
    assert rendered.limits == config.limits and rendered.fleet_min_instances == config.fleet.min_instances
    assert rendered.team_budgets_usd == config.budgets.team_monthly_usd
    assert list(rendered.vendor.models) == config.models and rendered.vendor.kind == "bedrock"
    assert [route.id for route in rendered.vendor.models] == list(config.vendor.models)
    assert rendered.vendor.account == config.account and rendered.vendor.team_profiles == {}
    assert rendered.upstream.first_byte_timeout_seconds == 12 and rendered.policy == config.gateway.policy


def test_load_balancer_refuses_the_whole_internet(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda c: c["load_balancer"].update(client_cidrs=["0.0.0.0/0"]))
    assert "load_balancer.client_cidrs: 0.0.0.0/0 is not a corporate network" in message


def test_load_balancer_needs_an_acm_certificate_arn(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda c: c["load_balancer"].update(certificate_arn="my-cert"))
    assert "load_balancer.certificate_arn: String should match pattern" in message


def test_certificate_may_come_from_the_synth_context() -> None:
    from config import with_context

    config = load_config("dev")
    arn = "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-1111-2222-3333-444444444444"
    assert with_context(config, {"certificate_arn": arn}).load_balancer.certificate_arn == arn
    assert with_context(config, {"certificate_arn": None}) is config


def test_audit_retention_shorter_than_the_hot_period(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda c: c.update(audit={"hot_days": 90, "retention_days": 30}))
    assert "audit: retention_days (30) must not be shorter than hot_days (90)" in message


def test_seats_for_unknown_team(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda c: c["licensed_seats"].update(frontend=5))
    assert "licensed_seats: unknown team frontend; teams are: payments, platform, mobile, data" in message


@pytest.mark.parametrize(
    ("field", "value", "bound"),
    [
        ("delivery_buffer_mib", 0, "greater than or equal to 1"),
        ("delivery_buffer_seconds", 901, "less than or equal to 900"),
    ],
)
def test_audit_delivery_buffering_within_firehose_bounds(tmp_path: Path, field: str, value: int, bound: str) -> None:
    message = error_for(tmp_path, lambda c: c.update(audit={field: value}))
    assert f"audit.{field}: Input should be {bound}" in message


def test_teams_without_a_budget_share_what_the_named_teams_leave() -> None:
    config = load_config("dev")
    per_team = config.budgets.per_team(config.teams)
    named = config.budgets.team_monthly_usd
    unnamed = [team for team in config.teams if team not in named]
    assert {team: per_team[team] for team in named} == named
    share = (config.budgets.org_monthly_usd - sum(named.values())) / len(unnamed)
    assert all(per_team[team] == round(share, 2) for team in unnamed)


def test_named_budgets_that_leave_nothing_for_the_other_teams(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda c: c["budgets"].update(org_monthly_usd=3000))
    assert (
        "budgets.team_monthly_usd: the named teams' budgets ($3,500) leave nothing of org_monthly_usd ($3,000)"
        in message
    )
    assert "for mobile, data; give them amounts" in message


# --- Production refuses placeholders; monitors and the corporate link refuse contradictions -----------------------


def production(raw: dict[str, Any]) -> None:
    raw["production"] = True


def test_production_refuses_every_placeholder_naming_the_field(tmp_path: Path) -> None:
    message = error_for(tmp_path, production)  # dev.yaml is full of placeholders, on purpose
    lines = message.splitlines()
    assert all(line.startswith(f"{tmp_path.name}/dev.yaml: ") for line in lines)
    for field in (
        "account: 123456789012",
        "load_balancer.certificate_arn:",
        "load_balancer.domain_name: aigw.dev.example.com",
        "alerts.emails.0: platform-oncall@example.com",
        "gateway.auth.issuer: https://idp.dev.example.com/",
        "gateway.auth.jwks_url:",
        "operations.runbook_url: docs/runbook.md is not a link on-call can open",
    ):
        assert any(line.split(": ", 1)[1].startswith(field) for line in lines), (field, message)
    assert "production: true refuses placeholders" in message


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda c: c["alerts"].update(emails=["oncall@fenwick.bank", "sre@ops.example.org"]), "alerts.emails.1"),
        (lambda c: c["gateway"]["auth"].update(issuer="https://login.test/"), "gateway.auth.issuer"),
        (lambda c: c["gateway"]["auth"].update(jwks_url="https://127.0.0.1/keys"), "gateway.auth.jwks_url"),
        (
            lambda c: c["gateway"]["signin"]["oidc"].update(token_endpoint="https://idp.example.com/t"),
            "gateway.signin.oidc.token_endpoint",
        ),
        (lambda c: c["operations"].update(runbook_url="http://wiki/aigw#runbook"), "operations.runbook_url"),
    ],
)
def test_production_refuses_a_single_placeholder(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], field: str
) -> None:
    def real_then(raw: dict[str, Any]) -> None:
        raw.update(production=True, account="210987654321")
        raw["load_balancer"].update(
            domain_name="aigw.fenwick.bank",
            certificate_arn="arn:aws:acm:eu-west-1:210987654321:certificate/7c2b9e41-5d3a-4f86-b0e2-93a1c4d8f615",
        )
        raw["alerts"]["emails"] = ["oncall@fenwick.bank"]
        raw["operations"] = {"runbook_url": "https://git.fenwick.bank/platform/aigw/-/blob/main/docs/runbook.md"}
        raw["gateway"]["auth"].update(issuer="https://fenwick.okta.com/oauth2/x", jwks_url="https://fenwick.okta.com/k")
        raw["gateway"]["signin"] = {
            "public_url": "https://aigw.fenwick.bank",
            "oidc": {
                "issuer": "https://fenwick.okta.com/oauth2/x",
                "authorization_endpoint": "https://fenwick.okta.com/oauth2/x/v1/authorize",
                "token_endpoint": "https://fenwick.okta.com/oauth2/x/v1/token",
                "client_id": "aigw-signin",
                "redirect_uris": ["https://aigw.fenwick.bank/oauth/callback"],
            },
        }
        change(raw)

    message = error_for(tmp_path, real_then)
    assert [line.split(": ", 2)[1] for line in message.splitlines()] == [field]


def test_the_shipped_production_environment_has_no_placeholders() -> None:
    prod = load_config("prod")
    assert prod.production and not load_config("dev").production


def test_the_canary_names_a_configured_model_or_the_cheapest(tmp_path: Path) -> None:
    dev = load_config("dev")
    assert dev.canary_model == "eu.anthropic.claude-haiku-4-5-20251001-v1:0"  # $0.0011 + $0.0055 per 1k tokens
    message = error_for(tmp_path, lambda raw: raw.update(operations={"canary": {"model": "claude-haiku"}}))
    assert "operations.canary.model: claude-haiku is not a configured model; configured: eu.anthropic." in message


def test_a_long_environment_name_asks_for_a_canary_name(tmp_path: Path) -> None:
    def long_name(raw: dict[str, Any]) -> None:
        raw["environment"] = "production"

    directory = write(tmp_path, long_name)
    (directory / "dev.yaml").rename(directory / "production.yaml")
    with pytest.raises(ConfigError, match=r"operations.canary.name: 'aigw-production-canary' has 22 characters"):
        load_config("production", directory)
    assert load_config("dev").canary_name == "aigw-dev-canary"


def test_no_team_may_take_the_canarys_name(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda raw: raw["teams"].append("canary"))
    assert "teams: 'canary' is the availability canary's team; give the team another name" in message


def test_the_slo_is_a_percentage_below_100(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda raw: raw.update(operations={"slo": {"target_percent": 100}}))
    assert "operations.slo.target_percent: Input should be less than 100" in message


def test_a_team_monitor_needs_teams(tmp_path: Path) -> None:
    def no_teams(raw: dict[str, Any]) -> None:
        raw.update(teams=[], licensed_seats={}, budgets={"org_monthly_usd": 1000})
        raw["cost_anomalies"] = {"team_monitor": True}
        raw["gateway"].pop("managed_settings")  # its rules name teams

    message = error_for(tmp_path, no_teams)
    assert "cost_anomalies.team_monitor: true, but no teams are configured" in message


def test_monitor_defaults_suit_a_member_account() -> None:
    anomalies = load_config("dev").cost_anomalies
    assert anomalies.service_monitor is True and anomalies.team_monitor is False


def test_transit_gateway_id_format(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda c: c["network"].update(transit_gateway={"id": "vpc-0123456789abcdef0"}))
    assert "network.transit_gateway.id: String should match pattern '^tgw-[0-9a-f]{8,17}$'" in message


def test_transit_gateway_clients_must_be_outside_the_vpc(tmp_path: Path) -> None:
    def inside(raw: dict[str, Any]) -> None:
        raw["network"]["transit_gateway"] = {"id": "tgw-0c4f1a9e27b5d3816"}
        raw["load_balancer"]["client_cidrs"] = ["10.40.8.0/24", "172.16.0.0/12"]

    message = error_for(tmp_path, inside)
    assert "load_balancer.client_cidrs: 10.40.8.0/24 lies inside the VPC (10.40.0.0/16)" in message


def test_a_client_range_containing_the_vpc_is_routable() -> None:
    prod = load_config("prod")  # 10.0.0.0/8 contains the VPC: the VPC's local route is more specific and wins
    assert prod.network.transit_gateway is not None
    assert any(prod.network.cidr.subnet_of(cidr) for cidr in prod.load_balancer.client_cidrs)


def test_load_balancer_needs_a_domain_name(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda c: c["load_balancer"].update(domain_name="not a name"))
    assert "load_balancer.domain_name: String should match pattern" in message


def test_messages_api_names_come_from_the_catalog_and_configured_aliases(tmp_path: Path) -> None:
    def two_opus_and_an_alias(c: dict[str, Any]) -> None:
        c["vendor"]["models"]["global.anthropic.claude-opus-5-5"] = PRICE
        c["vendor"]["aliases"] = {"opus": "global.anthropic.claude-opus-5-5", "claude-haiku-4-5": MODEL_SONNET}
        c["vendor"]["catalog"] = {
            "foundation_models": {
                "anthropic.claude-sonnet-4-5-20250929-v1:0": {
                    "max_output_tokens": 64000,
                    "anthropic_ids": ["claude-sonnet-4-5-20250929"],
                    "count_tokens_regions": ["eu-west-1"],
                }
            }
        }

    routes = {route.id: route for route in load_config("dev", write(tmp_path, two_opus_and_an_alias)).models}
    # The first configured route of a model takes its Anthropic ids; a configured alias may take one from any.
    assert routes["eu.anthropic.claude-opus-5-5"].aliases == ("claude-opus-5-5",)
    assert routes["global.anthropic.claude-opus-5-5"].aliases == ("opus",)
    assert routes[MODEL_SONNET].aliases == ("claude-sonnet-4-5-20250929", "claude-haiku-4-5")
    assert routes["eu.anthropic.claude-haiku-4-5-20251001-v1:0"].aliases == ("claude-haiku-4-5-20251001",)
    assert routes[MODEL_SONNET].count_tokens and not routes["eu.anthropic.claude-opus-5-5"].count_tokens
    assert routes["eu.anthropic.claude-opus-5-5"].display_name == "Claude Opus 5.5"


def test_an_alias_must_name_a_configured_model(tmp_path: Path) -> None:
    message = error_for(tmp_path, lambda c: c["vendor"].update(aliases={"opus": "us.anthropic.claude-opus-5-5"}))
    assert "vendor: aliases.opus: 'us.anthropic.claude-opus-5-5' is not one of models (" in message
    message = error_for(tmp_path, lambda c: c["vendor"].update(aliases={"Opus Large": "eu.anthropic.claude-opus-5-5"}))
    assert "vendor.aliases.Opus Large" in message
