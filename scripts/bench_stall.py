"""Benchmark: one request must not stall the others.

1. 20 ordinary requests (20 at once) alone, then again while a 2 MiB adversarial prompt (Luhn-valid card
   numbers back to back) is being checked; rounds alternate. Prints both p99s and their ratio (goal ≤ 2).
2. Two gateway processes sharing one redis-server, a burst of 200 requests of one user whose limit is
   100, while both also check adversarial prompts: prints how many were admitted (exactly 100 expected).

    python scripts/bench_stall.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from local import harness  # noqa: E402
from local.harness import MODEL, prompt  # noqa: E402

MIB = 1024 * 1024
ORDINARY = json.dumps(prompt("Write a haiku about private networks.")).encode()
ADVERSARIAL = json.dumps(prompt(("4000 0012 3456 7899, " * (2 * MIB // 21 + 1))[: 2 * MIB])).encode()


def post(url: str, token: str, body: bytes) -> tuple[int, float]:
    started = time.perf_counter()
    response = httpx.post(
        f"{url}/model/{MODEL}/invoke",
        content=body,
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        timeout=60,
    )
    return response.status_code, (time.perf_counter() - started) * 1000


def ordinary_p99(pool: ThreadPoolExecutor, url: str, token: str) -> float:
    results = list(pool.map(lambda _: post(url, token, ORDINARY), range(20)))
    assert all(status == 200 for status, _ in results), results
    return max(latency for _, latency in results)  # the p99 of 20 is their slowest


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with harness.bench() as local:
        common: dict[str, Any] = {"policy__max_request_bytes": 4 * MIB}
        gateway, _ = local.gateway("stall", limits__enabled=False, **common)
        token = local.token()
        alone, loaded, adversarial = [], [], []
        with ThreadPoolExecutor(24) as pool:
            ordinary_p99(pool, gateway.url, token)  # warm up
            for _ in range(args.rounds):
                alone.append(ordinary_p99(pool, gateway.url, token))
                heavy = pool.submit(post, gateway.url, token, ADVERSARIAL)
                time.sleep(0.05)  # the adversarial prompt is being checked
                loaded.append(ordinary_p99(pool, gateway.url, token))
                adversarial.append(heavy.result())

        limited = {"limits__enabled": True, "limits__user_per_hour": 100, **local.redis.settings(), **common}
        pair = [local.gateway(name, **limited)[0] for name in ("a", "b")]
        burst_token, bulk_token = local.token(user="burst@example.com"), local.token(user="bulk@example.com")
        with ThreadPoolExecutor(36) as pool:
            heavy_calls = [pool.submit(post, g.url, bulk_token, ADVERSARIAL) for g in pair * 2]
            burst = list(pool.map(lambda i: post(pair[i % 2].url, burst_token, ORDINARY)[0], range(200)))
            for call in heavy_calls:
                call.result()

    p99_alone, p99_loaded = statistics.median(alone), statistics.median(loaded)
    print(f"{args.rounds} rounds, 20 ordinary InvokeModel requests at once, loopback, one gateway process")
    print(f"{'ordinary p99, alone':44}{p99_alone:10.1f} ms")
    print(f"{'ordinary p99, beside a 2 MiB adversarial':44}{p99_loaded:10.1f} ms")
    print(f"{'ratio (goal <= 2)':44}{p99_loaded / p99_alone:10.2f}")
    outcomes = sorted({status for status, _ in adversarial})
    heavy_ms = statistics.median(ms for _, ms in adversarial)
    print(f"{'the adversarial prompt itself':44}{heavy_ms:10.1f} ms, status {outcomes}")
    print(f"burst of 200 across two processes, limit 100: {burst.count(200)} admitted, {burst.count(429)} refused")


if __name__ == "__main__":
    main()
