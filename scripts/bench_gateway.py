"""Benchmark: the gateway against the fake vendor it forwards to, loaded by wrk (a C load generator), in one run.

    python scripts/bench_gateway.py [--seconds 5] [--rounds 3] [--connections 32]

Targets, every request an InvokeModel with the same body, limits (a real redis-server), content policy and audit
all on:
- the fake vendor called directly (signed once; the baseline);
- the gateway as one process (one worker);
- the gateway as an instance runs it: one worker per CPU sharing the port (SO_REUSEPORT).
Rounds alternate between targets so machine noise hits them alike. Then one request at a time: the overhead over
direct at p50, and the limit check as the gateway times it (one script, one round trip to Redis).

Everything runs on this machine, the load generator and the vendor stub too: the figures are ratios and
differences measured side by side, comparable across changes on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from local import fake_vendor, harness  # noqa: E402
from local.harness import MODEL, percentile, prompt  # noqa: E402

BODY = json.dumps(prompt("Write a haiku about private networks.")).encode()
# The goals, printed beside the figures.
GOAL_PER_WORKER = 1000
GOAL_SHARE_OF_DIRECT = 0.4
GOAL_OVERHEAD_MS = 1.0
GOAL_LIMIT_CHECK_P99_MS = 1.0


@dataclass
class Run:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def signed_headers(url: str) -> dict[str, str]:
    request = AWSRequest(method="POST", url=url, data=BODY, headers={"content-type": "application/json"})
    credentials = Credentials(fake_vendor.ACCESS_KEY, fake_vendor.SECRET_KEY)
    SigV4Auth(credentials, "bedrock", fake_vendor.REGION).add_auth(request)
    return dict(request.headers.items())


def wrk_script(folder: Path, name: str, headers: dict[str, str]) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(BODY.decode())}"]
    lines += [
        f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}"
        for k, v in headers.items()
        if k.lower() not in ("content-length", "host")
    ]
    path = folder / f"{name}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def wrk(url: str, script: Path, connections: int, seconds: float) -> Run:
    threads = str(min(2, connections))
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout

    def milliseconds(percentile: str) -> float:
        found = re.search(rf"{percentile}%\s+([\d.]+)(us|ms|s)\b", out)
        if found is None:
            raise SystemExit(f"wrk printed no {percentile}th percentile:\n{out}")
        return float(found[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found[2]]

    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if rate is None:
        raise SystemExit(f"wrk printed no rate:\n{out}")
    count = (int(failed[1]) if failed else 0) + (sum(int(n) for n in errors.groups()) if errors else 0)
    return Run(float(rate[1]), milliseconds("50"), milliseconds("99"), count)


def median_run(runs: list[Run]) -> Run:
    return Run(
        statistics.median(r.requests_per_second for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
        sum(r.errors for r in runs),
    )


def check_ms(files: list[Path]) -> list[float]:
    """The limit check of every request the files record, in order."""
    records = [json.loads(line) for path in files if path.exists() for line in path.read_text().splitlines()]
    return [r["limits"]["check_ms"] for r in records if r.get("limits")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="default: one per CPU")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `make install` installs it (Debian's wrk package)")
    with harness.bench() as local, tempfile.TemporaryDirectory(prefix="aigw-wrk-") as scratch:
        folder = Path(scratch)
        big = 10**9  # limits far above what the run sends: every request takes the full check, none is refused
        changes: dict[str, Any] = {
            "upstream__max_concurrency": 1024,
            "limits__enabled": True,
            "limits__user_per_hour": big,
            "limits__team_per_hour": big,
            "limits__org_per_hour": big,
            **local.redis.settings(),
        }
        one, one_settings = local.gateway("one-worker", **changes)
        every_folder = local.workdir / "every-worker"
        every_folder.mkdir()
        every_settings = harness.settings_for(
            every_folder, local.vendor.url, local.issuer.url, workers=args.workers, **changes
        )
        port = harness.free_port()
        for index in range(args.workers):
            local.processes.append(harness.start_gateway(every_folder, every_settings, port=port, worker=index))
        every_url = f"http://127.0.0.1:{port}"
        auth = {"authorization": f"Bearer {local.token()}", "content-type": "application/json"}
        direct = f"{local.vendor.url}/model/{MODEL}/invoke"
        through = wrk_script(folder, "gateway", auth)
        targets = {
            "vendor stub, direct": (direct, wrk_script(folder, "direct", signed_headers(direct))),
            "gateway, 1 worker": (f"{one.url}/model/{MODEL}/invoke", through),
            f"gateway, {args.workers} workers": (f"{every_url}/model/{MODEL}/invoke", through),
        }
        for url, script in targets.values():  # warm up
            wrk(url, script, args.connections, 1)
        loaded: dict[str, list[Run]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, (url, script) in targets.items():
                loaded[name].append(wrk(url, script, args.connections, args.seconds))
        one_at_a_time: dict[str, list[Run]] = {name: [] for name in list(targets)[:2]}
        before = len(check_ms([one_settings.audit.path]))
        for _ in range(args.rounds):
            for name in one_at_a_time:
                url, script = targets[name]
                one_at_a_time[name].append(wrk(url, script, 1, args.seconds))
        local.stop()  # flushes the audit files
        alone = check_ms([one_settings.audit.path])[before:]
        under_load = check_ms([every_settings.for_worker(index).audit.path for index in range(args.workers)])

    report(args, {name: median_run(runs) for name, runs in loaded.items()}, one_at_a_time, alone, under_load)


def report(
    args: argparse.Namespace,
    loaded: dict[str, Run],
    one_at_a_time: dict[str, list[Run]],
    alone: list[float],
    under_load: list[float],
) -> None:
    direct, one, every = loaded.values()
    print(f"wrk, {args.connections} connections, {args.rounds} rounds of {args.seconds:g} s per target, alternating;")
    print("InvokeModel through the gateway with limits (Redis), content policy and audit on\n")
    print(f"{'':30}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for name, run in loaded.items():
        print(f"{name:30}{run.requests_per_second:10.0f}{run.p50_ms:10.2f}{run.p99_ms:10.2f}{run.errors:8d}")
    per_worker = every.requests_per_second / args.workers
    figures = [
        ("req/s per worker, 1 worker", f"{one.requests_per_second:.0f}", f">= {GOAL_PER_WORKER}"),
        (f"req/s per worker, {args.workers} workers", f"{per_worker:.0f}", f">= {GOAL_PER_WORKER}"),
        (
            f"{args.workers} workers / vendor stub",
            f"{every.requests_per_second / direct.requests_per_second:.2f}",
            f">= {GOAL_SHARE_OF_DIRECT}",
        ),
    ]
    p50 = {name: statistics.median(r.p50_ms for r in runs) for name, runs in one_at_a_time.items()}
    direct_p50, gateway_p50 = p50.values()
    figures.append(("p50 overhead over direct, c=1", f"{gateway_p50 - direct_p50:.2f} ms", f"<= {GOAL_OVERHEAD_MS} ms"))
    figures.append(
        (
            "limit check, one at a time",
            f"p50 {percentile(alone, 0.5):.2f} / p99 {percentile(alone, 0.99):.2f} ms",
            f"p99 <= {GOAL_LIMIT_CHECK_P99_MS} ms",
        )
    )
    figures.append(
        (
            f"limit check, {args.workers} workers loaded",
            f"p50 {percentile(under_load, 0.5):.2f} / p99 {percentile(under_load, 0.99):.2f} ms",
            "",
        )
    )
    print(f"\n{'':38}{'measured':>30}   goal")
    for label, value, goal in figures:
        print(f"{label:38}{value:>30}   {goal}")
    print("\n(limit check: the one rate-limit-and-budget script on Redis, timed inside the gateway; p50 and p99 over")
    print(f" {len(alone)} requests sent one at a time and {len(under_load)} under load)")
    if any(run.errors for run in loaded.values()):
        raise SystemExit("some requests failed: the figures above are not comparable")


if __name__ == "__main__":
    main()
