"""Render the gateway's settings file from an environment's config: the one source of truth.

    python -m config.render --env dev [--out FILE]      (stdout without --out)

The fleet ships this file to every proxy instance; the service reads it at start.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from config.settings import AigwConfig, ConfigError, load_config
from gateway.settings import GatewaySettings, VendorSettings


def gateway_settings(config: AigwConfig) -> GatewaySettings:
    vendor = config.vendor
    return GatewaySettings(
        environment=config.environment,
        vendor=VendorSettings(
            kind="endpoint_service" if vendor.is_endpoint_service else "bedrock",
            url=vendor.endpoint_url(config.region),
            region=config.region,
            account=config.account,
            models=tuple(config.models),
            api_key_secret_id=vendor.api_key_secret_id,
        ),
        limits=config.limits,
        team_budgets_usd=config.budgets.team_monthly_usd,
        teams=config.teams,
        fleet_min_instances=config.fleet.min_instances,
        workers=config.fleet.workers,
        **dict(config.gateway),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m config.render", description=__doc__.split("\n")[0] if __doc__ else None
    )
    parser.add_argument("--env", default="dev")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    try:
        rendered = gateway_settings(load_config(args.env)).model_dump_json(indent=2)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    if args.out:
        args.out.write_text(rendered + "\n")
    else:
        print(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main())
