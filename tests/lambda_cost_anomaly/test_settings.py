"""Settings from the environment: defaults, and a clear error naming the variable."""

from __future__ import annotations

import pytest
from settings import Settings, SettingsError

REQUIRED = {"ENVIRONMENT": "prod", "TABLE_NAME": "findings", "TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:t"}


def test_defaults() -> None:
    settings = Settings.from_env(REQUIRED)
    assert settings.namespace == "aigw"
    assert settings.team_caps == {}
    assert settings.concentration_share == 0.5
    assert settings.spike_k == 12
    assert settings.floor_usd == 5
    assert settings.baseline_days == 28
    assert settings.cost_tag_key == "team"


def test_every_variable_is_read() -> None:
    settings = Settings.from_env(
        {
            **REQUIRED,
            "METRICS_NAMESPACE": "gw",
            "TEAM_CAPS_JSON": '{"payments": 9000, "risk": 2500.5}',
            "CONCENTRATION_SHARE": "0.58",
            "SPIKE_MAD_MULTIPLIER": "8",
            "ABSOLUTE_FLOOR_USD": "20",
            "BASELINE_DAYS": "56",
            "COST_TAG_KEY": "cost-team",
        }
    )
    assert settings.namespace == "gw"
    assert settings.team_caps == {"payments": 9000.0, "risk": 2500.5}
    assert (settings.concentration_share, settings.spike_k, settings.floor_usd) == (0.58, 8.0, 20.0)
    assert settings.baseline_days == 56 and settings.cost_tag_key == "cost-team"
    assert settings.spike_params.k == 8 and settings.spike_params.baseline_days == 56


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"ENVIRONMENT": ""}, "ENVIRONMENT"),
        ({"TABLE_NAME": " "}, "TABLE_NAME"),
        ({"CONCENTRATION_SHARE": "0"}, "CONCENTRATION_SHARE"),
        ({"CONCENTRATION_SHARE": "1.5"}, "CONCENTRATION_SHARE"),
        ({"SPIKE_MAD_MULTIPLIER": "six"}, "SPIKE_MAD_MULTIPLIER"),
        ({"ABSOLUTE_FLOOR_USD": "-1"}, "ABSOLUTE_FLOOR_USD"),
        ({"BASELINE_DAYS": "7"}, "BASELINE_DAYS"),
        ({"BASELINE_DAYS": "30.5"}, "BASELINE_DAYS"),
        ({"TEAM_CAPS_JSON": "[1]"}, "TEAM_CAPS_JSON"),
        ({"TEAM_CAPS_JSON": '{"payments": "lots"}'}, "TEAM_CAPS_JSON"),
        ({"TEAM_CAPS_JSON": '{"payments": true}'}, "TEAM_CAPS_JSON"),
        ({"TEAM_CAPS_JSON": "{payments: 1}"}, "TEAM_CAPS_JSON"),
    ],
)
def test_bad_values_name_the_variable(overrides: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError, match=names):
        Settings.from_env({**REQUIRED, **overrides})
