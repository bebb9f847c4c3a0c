"""Managed settings per team and IdP group: how rules combine, what config refuses, and what a running gateway
serves at /managed/settings (ETag and 304 as Claude Code computes them) and enforces itself."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from config import load_config
from gateway.managed_settings import ManagedSettingsRules, checksum, settings_for
from local.harness import MODEL, prompt
from tests.config.test_settings import error_for
from tests.gateway.conftest import GatewayFactory, RunningGateway

URL = "https://aigw.example.com"
RULES = ManagedSettingsRules.model_validate(
    {
        "pci": {"teams": ["payments"], "repositories": ["card-vault"]},
        "rules": [
            {
                "settings": {
                    "availableModels": ["claude-opus-5-5", "claude-haiku-4-5-20251001"],
                    "permissions": {"deny": ["Read(//**/.env)"], "allow": ["Bash(npm test)"]},
                    "env": {"DISABLE_UPDATES": "1", "OTEL_METRICS_EXPORTER": "none"},
                }
            },
            {
                "match": {"teams": ["mobile"]},
                "settings": {
                    "availableModels": ["claude-haiku-4-5-20251001"],
                    "permissions": {"deny": ["Edit(//**/*.tf)"], "allow": ["Bash(gradle test)"]},
                    "env": {"MOBILE": "1"},
                },
            },
            {"match": {"groups": ["sre"]}, "settings": {"permissions": {"ask": ["Bash(kubectl:*)"]}}},
        ],
    }
)


def test_later_rules_replace_allow_lists_and_combine_deny_lists() -> None:
    mobile = settings_for(RULES, "mobile", ("sre",), URL)
    assert mobile["availableModels"] == ["claude-haiku-4-5-20251001"]  # replaced
    assert mobile["permissions"]["allow"] == ["Bash(gradle test)"]  # replaced
    assert mobile["permissions"]["deny"] == ["Read(//**/.env)", "Edit(//**/*.tf)"]  # combined
    assert mobile["permissions"]["ask"] == ["Bash(kubectl:*)"]  # the group's rule
    # env merged key by key; a policy's own value wins over the telemetry defaults
    assert mobile["env"]["DISABLE_UPDATES"] == "1" and mobile["env"]["MOBILE"] == "1"
    assert mobile["env"]["OTEL_METRICS_EXPORTER"] == "none"
    assert mobile["env"]["CLAUDE_CODE_ENABLE_TELEMETRY"] == "1" and mobile["env"]["OTEL_LOGS_EXPORTER"] == "otlp"
    # No endpoint: a signed-in session exports to the gateway anyway, and an endpoint needs each person's approval.
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in mobile["env"]
    platform = settings_for(RULES, "platform", (), URL)
    assert platform["availableModels"] == ["claude-opus-5-5", "claude-haiku-4-5-20251001"]
    assert "ask" not in platform["permissions"] and "MOBILE" not in platform["env"]


def test_a_pci_scoped_team_gets_every_file_tool_denied_in_its_pci_repositories() -> None:
    payments = settings_for(RULES, "payments", (), URL)["permissions"]["deny"]
    # Read and Edit rules are the ones Claude Code checks paths against: together they cover every file tool.
    assert {"Read(//**/card-vault/**)", "Edit(//**/card-vault/**)"} <= set(payments)
    assert not any("card-vault" in rule for rule in settings_for(RULES, "platform", (), URL)["permissions"]["deny"])


def test_the_checksum_is_the_one_claude_code_computes_from_the_settings() -> None:
    settings = {"b": [1, {"z": "é", "a": True}], "a": None}
    # Keys sorted at every depth, no spaces, non-ASCII as itself: JavaScript's JSON.stringify of the sorted object.
    expected = hashlib.sha256('{"a":null,"b":[1,{"a":true,"z":"é"}]}'.encode()).hexdigest()
    assert checksum(settings) == f"sha256:{expected}"


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"availableModel": ["claude-opus-5-5"]}, "availableModel"),
        ({"permissions": {"deny": ["Read(./.env"]}}, "permissions.deny.0"),
        ({"permissions": {"defaultMode": "yolo"}}, "defaultMode"),
        ({"env": {"1BAD": "x"}}, "env.1BAD"),
        ({"forceLoginMethod": "gateway"}, "forceLoginMethod"),
        ({"permissions": {"deny": ["Write(//**/*.tf)"]}}, "never matched by Claude Code: use Edit"),
        ({"model": "claude-opus-5-5", "availableModels": ["claude-haiku-4-5-20251001"]}, "not in availableModels"),
    ],
)
def test_config_refuses_a_settings_shape_claude_code_would_not_take(settings: dict[str, Any], said: str) -> None:
    with pytest.raises(ValidationError, match=said.replace(".", r"\.").replace("(", r"\(")):
        ManagedSettingsRules.model_validate({"rules": [{"settings": settings}]})


def test_config_names_the_file_field_and_allowed_values(tmp_path: Path) -> None:
    def unknown_team(c: dict[str, Any]) -> None:
        c["gateway"]["managed_settings"]["rules"].append({"match": {"teams": ["treasury"]}, "settings": {}})

    assert "gateway.managed_settings: treasury not in teams (payments, platform, mobile, data)" in error_for(
        tmp_path, unknown_team
    )

    def unserved_model(c: dict[str, Any]) -> None:
        c["gateway"]["managed_settings"]["rules"][0]["settings"]["availableModels"].append("claude-opus-4-7")
        c["gateway"]["managed_settings"]["rules"][0]["settings"]["model"] = "claude-opus-4-7"

    message = error_for(tmp_path, unserved_model)
    assert "models claude-opus-4-7 are not served here; served: " in message and "claude-opus-5-5" in message

    def unknown_key(c: dict[str, Any]) -> None:
        c["gateway"]["managed_settings"]["rules"][0]["settings"]["permission"] = {}

    assert "gateway.managed_settings.rules.0.settings.permission" in error_for(tmp_path, unknown_key)


def test_the_shipped_rules_carry_the_field_report_s_governance() -> None:
    for env in ("dev", "prod"):
        config = load_config(env)
        managed = config.gateway.managed_settings
        for team in config.teams:
            settings = settings_for(managed, team, (), "https://aigw.example.com")
            deny = settings["permissions"]["deny"]
            assert "Edit(//**/*.tf)" in deny and "Read(//**/.env)" in deny  # IaC and secret files
            assert settings["availableModels"] and "claude-haiku-4-5-20251001" in settings["availableModels"]
            assert settings["env"]["CLAUDE_CODE_ENABLE_TELEMETRY"] == "1"
            pci = managed.pci is not None and team in managed.pci.teams
            assert pci == ("Read(//**/card-vault/**)" in deny), (env, team)


# -- a running gateway ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(make_stack: GatewayFactory) -> RunningGateway:
    return make_stack()


def fetch(stack: RunningGateway, token: str, **headers: str) -> httpx.Response:
    return httpx.get(stack.gateway.url + "/managed/settings", headers={"authorization": f"Bearer {token}", **headers})


def test_settings_are_served_by_team_with_an_etag_and_304(stack: RunningGateway) -> None:
    payments = fetch(stack, stack.token(team="Payments"))
    assert payments.status_code == 200
    body = payments.json()
    assert set(body) == {"uuid", "checksum", "settings"} and body["uuid"] == body["checksum"]
    assert payments.headers["etag"] == f'"{body["checksum"]}"' == f'"{checksum(body["settings"])}"'
    assert "Read(//**/card-vault/**)" in body["settings"]["permissions"]["deny"]
    unchanged = fetch(stack, stack.token(team="payments"), **{"if-none-match": payments.headers["etag"]})
    assert (unchanged.status_code, unchanged.content) == (304, b"")
    assert stack.audit(unchanged.headers["x-request-id"])["outcome"] == "not_modified"
    mobile = fetch(stack, stack.token(team="mobile"), **{"if-none-match": payments.headers["etag"]})
    assert mobile.status_code == 200
    assert mobile.json()["settings"]["availableModels"] == ["claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"]
    assert fetch(stack, "not-a-token").status_code == 401


def test_the_gateway_enforces_a_team_s_model_allowlist_on_every_path(stack: RunningGateway) -> None:
    mobile = stack.token(team="mobile")
    refused = httpx.post(
        stack.gateway.url + "/v1/messages",
        json={"model": "claude-opus-5-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {mobile}"},
    )
    assert refused.status_code == 400 and "not among the models your team's settings allow" in refused.json()["message"]
    bedrock = stack.call(model="eu.anthropic.claude-opus-5-5", token=mobile)
    assert (bedrock.status_code, bedrock.json()["outcome"]) == (400, "model_not_allowed")
    assert stack.call(model=MODEL, token=mobile).status_code == 200  # Sonnet is on the team's list
    assert stack.call(model="eu.anthropic.claude-opus-5-5", body=prompt("hi")).status_code == 200  # payments: all
    assert json.loads(refused.text)["error"]["type"] == "invalid_request_error"
