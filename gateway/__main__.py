"""Run the gateway: `python -m gateway --settings FILE [--host H] [--port P] [--ssl-certfile F --ssl-keyfile K]`.

On SIGTERM it stops accepting, lets open streams finish (up to the stream cap), then flushes its
audit and metrics files before exiting: an instance leaving the fleet loses no record. Idle
connections close at once then, however long their keep-alive (uvicorn closes every connection that
is between requests when shutdown starts).
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

import uvicorn

from gateway.app import create_app
from gateway.server import guarded_protocol
from gateway.settings import GatewaySettings


def server_options(settings: GatewaySettings) -> dict[str, Any]:
    """uvicorn's options that come from the settings (a test reads them without starting a server)."""
    return {
        "access_log": False,  # the audit file is the access log
        "timeout_graceful_shutdown": int(settings.upstream.stream_timeout_seconds) + 5,
        # An idle timeout on a kept-alive connection, restarted after each response: longer than the load
        # balancer's idle timeout (same settings), so it is never the gateway that closes first.
        "timeout_keep_alive": settings.upstream.keep_alive_seconds,
        "http": guarded_protocol(settings.server),
        "limit_concurrency": settings.server.max_connections,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--settings", type=Path, default=Path("/etc/aigw/gateway.json"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--log-level", default="info")
    # In AWS the load balancer terminates TLS; locally, the gateway can serve HTTPS itself (Claude Code's /login).
    parser.add_argument("--ssl-certfile", type=Path)
    parser.add_argument("--ssl-keyfile", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = GatewaySettings.read(args.settings).with_environment(os.environ)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
        **server_options(settings),
    )


if __name__ == "__main__":
    main()
