"""Run the gateway: `python -m gateway --settings FILE [--host H] [--port P]`.

On SIGTERM it stops accepting, lets open streams finish (up to the stream cap), then flushes its
audit and metrics files before exiting: an instance leaving the fleet loses no record.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import uvicorn

from gateway.app import create_app
from gateway.settings import GatewaySettings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--settings", type=Path, default=Path("/etc/aigw/gateway.json"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = GatewaySettings.read(args.settings).with_environment(os.environ)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,  # the audit file is the access log
        timeout_graceful_shutdown=int(settings.upstream.stream_timeout_seconds) + 5,
        timeout_keep_alive=75,  # longer than the ALB's idle timeout would cut, never shorter
    )


if __name__ == "__main__":
    main()
