"""The cost-anomaly function's settings, read once from the environment (the variables are listed in handler.py)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from detection import (
    DEFAULT_BASELINE_DAYS,
    DEFAULT_CONCENTRATION_SHARE,
    DEFAULT_FLOOR_USD,
    DEFAULT_K,
    SpikeParams,
)

# CloudWatch keeps hourly datapoints for 455 days; four weeks hold the 8 weekend days a baseline needs at least.
MAX_BASELINE_DAYS = 455
MIN_BASELINE_DAYS = 28


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    namespace: str
    environment: str
    team_caps: Mapping[str, float]
    table_name: str
    topic_arn: str
    concentration_share: float
    spike_k: float
    floor_usd: float
    baseline_days: int
    cost_tag_key: str

    @property
    def spike_params(self) -> SpikeParams:
        return SpikeParams(k=self.spike_k, floor_usd=self.floor_usd, baseline_days=self.baseline_days)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def required(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise SettingsError(f"{name} is required")
            return value

        def number(name: str, default: float, low: float, high: float, *, low_open: bool = False) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise SettingsError(f"{name}={raw!r} is not a number") from None
            if not math.isfinite(value) or value < low or value > high or (low_open and value == low):
                bound = "(" if low_open else "["
                raise SettingsError(f"{name}={raw!r} is outside {bound}{low:g}, {high:g}]")
            return value

        days = number("BASELINE_DAYS", DEFAULT_BASELINE_DAYS, MIN_BASELINE_DAYS, MAX_BASELINE_DAYS)
        if days != int(days):
            raise SettingsError(f"BASELINE_DAYS={env['BASELINE_DAYS']!r} is not a whole number of days")
        return cls(
            namespace=env.get("METRICS_NAMESPACE", "").strip() or "aigw",
            environment=required("ENVIRONMENT"),
            team_caps=_team_caps(env.get("TEAM_CAPS_JSON", "").strip() or "{}"),
            table_name=required("TABLE_NAME"),
            topic_arn=required("TOPIC_ARN"),
            concentration_share=number("CONCENTRATION_SHARE", DEFAULT_CONCENTRATION_SHARE, 0, 1, low_open=True),
            spike_k=number("SPIKE_MAD_MULTIPLIER", DEFAULT_K, 0, math.inf, low_open=True),
            floor_usd=number("ABSOLUTE_FLOOR_USD", DEFAULT_FLOOR_USD, 0, math.inf),
            baseline_days=int(days),
            cost_tag_key=env.get("COST_TAG_KEY", "").strip() or "team",
        )


def _team_caps(raw: str) -> dict[str, float]:
    try:
        caps = json.loads(raw)
    except json.JSONDecodeError as error:
        raise SettingsError(f"TEAM_CAPS_JSON is not JSON: {error}") from None
    if not isinstance(caps, dict):
        raise SettingsError("TEAM_CAPS_JSON must be a JSON object of team -> monthly cap in USD")
    out: dict[str, float] = {}
    for team, cap in caps.items():
        # bool is an int in Python; a cap of `true` is a mistake, not $1.
        if isinstance(cap, bool) or not isinstance(cap, int | float) or not math.isfinite(cap) or cap < 0:
            raise SettingsError(f"TEAM_CAPS_JSON: the cap of team {team!r} must be a non-negative number, not {cap!r}")
        out[str(team)] = float(cap)
    return out
