"""The IdP-keys function's settings, read once from the environment (the variables are listed in
idp_keys_handler.py)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from idp_keys import KeySetError, checked_url, discovery_url


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    issuer: str
    parameter_name: str
    discovery_url: str
    min_refresh: timedelta
    http_timeout_seconds: float
    token_endpoint: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def required(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise SettingsError(f"{name} is required")
            return value

        def seconds(name: str, default: float, low: float, high: float) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise SettingsError(f"{name}={raw!r} is not a number") from None
            if not math.isfinite(value) or not low <= value <= high:
                raise SettingsError(f"{name}={raw!r} is outside [{low:g}, {high:g}]")
            return value

        issuer = required("ISSUER")
        token_endpoint = env.get("CODE_EXCHANGE_URL", "").strip() or None
        try:
            checked_url(issuer, "ISSUER")
            discovery = checked_url(env.get("DISCOVERY_URL", "").strip() or discovery_url(issuer), "DISCOVERY_URL")
            if token_endpoint is not None:
                checked_url(token_endpoint, "CODE_EXCHANGE_URL")
        except KeySetError as error:
            raise SettingsError(str(error)) from None
        return cls(
            issuer=issuer,
            parameter_name=required("PARAMETER_NAME"),
            discovery_url=discovery,
            min_refresh=timedelta(seconds=seconds("MIN_REFRESH_SECONDS", 60, 1, 3600)),
            http_timeout_seconds=seconds("HTTP_TIMEOUT_SECONDS", 5, 0.1, 30),
            token_endpoint=token_endpoint,
        )
