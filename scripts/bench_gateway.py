"""Benchmark: the fake vendor answering at once, called directly, through the gateway with limits off,
and through the gateway with limits on (a real redis-server), in the same run; plus the content
policy's scan speed on a 1 MiB prompt with every shipped rule.

    python scripts/bench_gateway.py [--requests 2000] [--concurrency 32] [--rounds 3]

Rounds alternate between the two paths so machine noise hits both alike; the ratios are the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import load_config  # noqa: E402
from gateway.policy import Policy  # noqa: E402
from local import fake_vendor, harness  # noqa: E402
from local.harness import MODEL, prompt  # noqa: E402

SEQUENTIAL = 300
BODY = json.dumps(prompt("Write a haiku about private networks.")).encode()


def signed_headers(url: str) -> dict[str, str]:
    request = AWSRequest(method="POST", url=url, data=BODY, headers={"content-type": "application/json"})
    SigV4Auth(Credentials(fake_vendor.ACCESS_KEY, fake_vendor.SECRET_KEY), "bedrock", fake_vendor.REGION).add_auth(
        request
    )
    return dict(request.headers.items())


async def run(url: str, headers: dict[str, str], requests: int, concurrency: int) -> tuple[float, list[float]]:
    """Requests per second and each request's latency (ms)."""
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                started = time.perf_counter()
                response = await client.post(url, content=BODY, headers=headers)
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise SystemExit(f"{url}: {response.status_code} {response.text[:200]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return requests / (time.perf_counter() - started), latencies


def audit_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def policy_speed(rounds: int = 5) -> float:
    """MB/s of one scan of a 1 MiB prompt (source code with a few findings) with all shipped rules."""
    policy = Policy(load_config("dev").gateway.policy)
    line = "def charge(card, amount):  # see docs at https://docs.example.com/payments for details\n"
    text = (line * ((1 << 20) // len(line)))[: 1 << 20]
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        policy.scan(text, "prompt")
        timings.append(time.perf_counter() - started)
    return (len(text.encode()) / (1 << 20)) / statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with harness.bench() as local:
        # Limits far above what the run sends: every request takes the full check, none is refused.
        common: dict[str, Any] = {
            "upstream__max_concurrency": 1024,
            "limits__user_per_hour": 10**9,
            "limits__team_per_hour": 10**9,
            "limits__org_per_hour": 10**9,
        }
        gateways = {}
        for name, limits in (
            ("gateway, limits off", {"limits__enabled": False}),
            ("gateway, limits on", {"limits__enabled": True, **local.redis.settings()}),
        ):
            gateways[name], settings = local.gateway(name.replace(", ", "-").replace(" ", "-"), **common, **limits)
            limits_audit = settings.audit.path
        direct = f"{local.vendor.url}/model/{MODEL}/invoke"
        auth = {"authorization": f"Bearer {local.token()}", "content-type": "application/json"}
        # Signed once and reused (valid for minutes): the client does no more work on this path.
        targets = {"direct": (direct, signed_headers(direct))}
        targets.update({name: (f"{g.url}/model/{MODEL}/invoke", auth) for name, g in gateways.items()})
        for url, headers in targets.values():  # warm up
            asyncio.run(run(url, headers, 200, args.concurrency))
        results: dict[str, list[tuple[float, list[float]]]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, (url, headers) in targets.items():
                results[name].append(asyncio.run(run(url, headers, args.requests, args.concurrency)))
        # One at a time: the check's own cost, without waiting for a busy event loop.
        asyncio.run(run(*targets["gateway, limits on"], SEQUENTIAL, 1))
        local.stop()  # flushes the audit files
        checks = [r["limits"]["check_ms"] for r in audit_records(limits_audit) if r.get("limits")]
        loaded, alone = checks[:-SEQUENTIAL], checks[-SEQUENTIAL:]

    summary = {}
    for path, rounds in results.items():
        latencies = [latency for _, round_latencies in rounds for latency in round_latencies]
        summary[path] = (
            statistics.median(rps for rps, _ in rounds),
            percentile(latencies, 0.5),
            percentile(latencies, 0.99),
        )
    print(f"{args.rounds} rounds x {args.requests} InvokeModel requests, {args.concurrency} concurrent, loopback")
    print(f"{'':28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for path, (rps, p50, p99) in summary.items():
        print(f"{path:28}{rps:10.0f}{p50:10.2f}{p99:10.2f}")
    (d_rps, d_p50, d_p99), (g_rps, g_p50, g_p99), (_, l_p50, l_p99) = summary.values()
    print(f"{'ratio gateway/direct':28}{g_rps / d_rps:10.2f}{g_p50 / d_p50:10.2f}{g_p99 / d_p99:10.2f}")
    print(f"{'limits on - off, client':28}{'':10}{l_p50 - g_p50:10.2f}{l_p99 - g_p99:10.2f}")
    for label, sample in (("limit check, under load", loaded), ("limit check, one at a time", alone)):
        print(f"{label:28}{'':10}{percentile(sample, 0.5):10.2f}{percentile(sample, 0.99):10.2f}")
    print("  (limit check: the rate-limit script and the budget reservation on Redis, timed inside the gateway)")
    rules = len(load_config("dev").gateway.policy.rules)
    print(f"policy scan, 1 MiB prompt, {rules} shipped rules: {policy_speed():.1f} MB/s")


if __name__ == "__main__":
    main()
