"""Run the gateway: `python -m gateway --settings FILE [--host H] [--port P] [--worker N --reuse-port]
[--ssl-certfile F --ssl-keyfile K]`.

On an instance, one process per vCPU (`--worker 0` ... `--worker N-1`, from aigw-gateway.target) listens on the
same port with SO_REUSEPORT, the kernel spreading connections across them; each writes its own files.

On SIGTERM it stops accepting, lets open streams finish (up to the stream cap), then flushes its
audit and metrics files before exiting: an instance leaving the fleet loses no record. Idle
connections close at once then, however long their keep-alive (uvicorn closes every connection that
is between requests when shutdown starts).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
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
    parser.add_argument("--worker", type=int, help="this worker's index (its own audit, metrics, telemetry files)")
    parser.add_argument("--reuse-port", action="store_true", help="share the port with the other workers")
    # In AWS the load balancer terminates TLS; locally, the gateway can serve HTTPS itself (Claude Code's /login).
    parser.add_argument("--ssl-certfile", type=Path)
    parser.add_argument("--ssl-keyfile", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = GatewaySettings.read(args.settings).with_environment(os.environ)
    if args.worker is not None:
        settings = settings.for_worker(args.worker)
    config = uvicorn.Config(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
        **server_options(settings),
    )
    server = uvicorn.Server(config)
    server.run(sockets=[shared_socket(args.host, args.port)] if args.reuse_port else None)


def shared_socket(host: str, port: int) -> socket.socket:
    """A listening socket other processes may bind too (SO_REUSEPORT: Linux balances new connections)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


if __name__ == "__main__":
    main()
