"""Run the gateway on 127.0.0.1 (HTTPS, with a local CA's certificate) against the fake vendor and a local OIDC
IdP, and print a curl line and the Claude Code settings that work against it, with a token or through /login.
Ctrl-C stops them all.

    python scripts/gateway_local.py [--env dev] [--port 8080] [--check]

`--check` runs the printed curl line once and exits with its result (what the tests do).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.settings import TEAM_PROFILES_VARIABLE, team_profiles_variable  # noqa: E402
from local import harness, token_issuer  # noqa: E402
from local.harness import MODEL, prompt  # noqa: E402
from local.tls import make_local_tls  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--env", default="dev")
    parser.add_argument("--port", type=int, default=None, help="gateway port (default: a free one)")
    parser.add_argument("--check", action="store_true", help="run the curl line once and exit")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="aigw-gateway-") as scratch:
        workdir = Path(scratch)
        keys = token_issuer.KeyFolder(workdir / "keys")
        kid = keys.add("local")
        vendor = harness.start_vendor(workdir)
        issuer = harness.start_issuer(workdir, keys.folder)
        redis = harness.RedisServer(workdir).start()  # the shared counters of the rate limits
        processes = [vendor, issuer]
        try:
            port = args.port or harness.free_port()
            url = f"https://127.0.0.1:{port}"
            tls = make_local_tls(workdir / "tls")
            settings = harness.settings_for(
                workdir, vendor.url, issuer.url, environment=args.env, signin=harness.signin(url, issuer.url),
                **redis.settings(),
            )  # fmt: skip
            # As on an instance: each team's application inference profile ids (stand-ins here) by environment.
            profiles = {TEAM_PROFILES_VARIABLE: team_profiles_variable(harness.team_profile_ids(args.env))}
            gateway = harness.start_gateway(workdir, settings, port=port, env=profiles, tls=tls)
            processes.append(gateway)
            token = keys.token(kid, user="you@example.com", team="platform")
            body = json.dumps(prompt("Say hello."))
            curl = (
                f"curl -sS --cacert {shlex.quote(str(tls.ca))} -X POST {gateway.url}/model/{MODEL}/invoke "
                f"-H {shlex.quote('Authorization: Bearer ' + token)} -H 'Content-Type: application/json' "
                f"-d {shlex.quote(body)}"
            )
            print(f"gateway  {gateway.url}   (settings: config/{args.env}.yaml, rendered)")
            print(f"vendor   {vendor.url}   (fake Bedrock, checks SigV4)")
            print(f"issuer   {issuer.url}{token_issuer.JWKS_PATH}")
            print(f"redis    127.0.0.1:{redis.port}   (rate limits and budgets)")
            print(f"audit    {settings.audit.path}")
            print(f"models   {', '.join(route.id for route in settings.vendor.models)}")
            print("\nTry it:\n")
            print(curl + "\n")
            print("Or point Claude Code at it, from another shell (README, 'Pointing Claude Code at aigw'):\n")
            print(f"export NODE_EXTRA_CA_CERTS={shlex.quote(str(tls.ca))}   # trust the local CA")
            print(f"export CLAUDE_CODE_USE_BEDROCK=1 AWS_REGION={settings.vendor.region}")
            print(f"export ANTHROPIC_BEDROCK_BASE_URL={gateway.url} CLAUDE_CODE_SKIP_BEDROCK_AUTH=1")
            print(f"export ANTHROPIC_CUSTOM_HEADERS={shlex.quote('Authorization: Bearer ' + token)}")
            print("claude -p 'Say hello.'\n")
            print("Or sign in from Claude Code's /login (the local IdP signs in dev@example.com, team payments):")
            print("as IT would push to a laptop, in /etc/claude-code/managed-settings.json (Linux):\n")
            print(json.dumps({"forceLoginMethod": "gateway", "forceLoginGatewayUrl": url}, indent=2) + "\n", flush=True)
            if args.check:
                completed = subprocess.run(curl, shell=True, capture_output=True, text=True, check=False)
                print(completed.stdout)
                return 0 if completed.returncode == 0 and '"content"' in completed.stdout else 1
            print("Ctrl-C to stop.", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                gateway.popen.wait()
            return 0
        finally:
            for process in reversed(processes):
                process.stop()
            redis.kill()


if __name__ == "__main__":
    sys.exit(main())
