"""Benchmark: the content policy's check of one text with every shipped rule, now and as it was before its
prefilter (`local.policy_reference`, the baseline), in the same run, on typical code and prose and on every
adversarial shape of `local.adversarial`.

    python scripts/bench_policy.py [--size 1048576] [--rounds 5] [--baseline-rounds 2]

Timed: `Policy.scan(text, "prompt")` as the gateway calls it on each string of a body (normalise, every rule,
allowlists, Luhn, redaction), in CPU time of this thread (the machine may be busy with other work), best of
the rounds; "first" is the new check's first round, before RE2 has cached automaton states for that shape.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import load_config  # noqa: E402
from gateway.policy import OVER_CAP, Policy, Scan  # noqa: E402
from local import adversarial  # noqa: E402
from local.policy_reference import ReferencePolicy  # noqa: E402

MiB = 1 << 20


def timings(check: Callable[[str], Scan], text: str, rounds: int) -> tuple[float, float, Scan]:
    """(first, best) seconds of CPU time, and the last result."""
    seconds = []
    for _ in range(rounds):
        started = time.thread_time()
        scan = check(text)
        seconds.append(time.thread_time() - started)
    return seconds[0], min(seconds), scan


def same(new: Scan, old: Scan) -> bool:
    return (new.text, new.recorded, dict(new.matches), new.action, new.blocking_rules) == (
        old.text,
        old.recorded,
        dict(old.matches),
        old.action,
        old.blocking_rules,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=MiB, help="bytes of each input (UTF-8)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline-rounds", type=int, default=2)
    args = parser.parse_args()
    settings = load_config("dev").gateway.policy
    policy, baseline = Policy(settings), ReferencePolicy(settings)
    inputs = {
        "typical code": adversarial.typical_code(args.size),
        "typical prose": adversarial.typical_prose(args.size),
        **{shape: adversarial.generate(shape, args.size) for shape in [*adversarial.SHAPES, "mixed"]},
    }
    megabytes = args.size / MiB
    print(f"Policy.scan of {megabytes:g} MiB, {len(settings.rules)} shipped rules, CPU ms (best of rounds)")
    print(
        f"  max_matches_per_rule = {settings.max_matches_per_rule}, max_matches_per_request = "
        f"{settings.max_matches_per_request}; 'capped': blocked past one (rule <id>:{OVER_CAP})"
    )
    print(f"{'input':26}{'new':>9}{'first':>9}{'baseline':>10}{'faster':>8}  result")
    results: dict[str, tuple[float, float]] = {}
    for name, text in inputs.items():
        first, best, scan = timings(lambda t: policy.scan(t, "prompt"), text, args.rounds)
        _, old_best, old_scan = timings(lambda t: baseline.scan(t, "prompt"), text, args.baseline_rounds)
        capped = sorted(rule for rule in scan.matches if rule.endswith(f":{OVER_CAP}"))
        outcome = "same as baseline" if same(scan, old_scan) else "DIFFERS"
        if capped:
            outcome = "capped: " + ", ".join(capped)
        results[name] = (best, old_best)
        print(
            f"{name:26}{best * 1000:9.1f}{first * 1000:9.1f}{old_best * 1000:10.1f}{old_best / best:7.1f}x  "
            f"{scan.action}, {outcome}",
            flush=True,
        )
    print()
    for name in ("typical code", "typical prose"):
        new, old = results[name]
        print(f"{name:26}{megabytes / new:9.1f} MB/s   baseline {megabytes / old:7.1f} MB/s   {old / new:5.1f}x")
    shapes = {name: times for name, times in results.items() if not name.startswith("typical")}
    worst = max(shapes, key=lambda name: shapes[name][0])
    worst_old = max(shapes, key=lambda name: shapes[name][1])
    print(f"{'worst adversarial shape':26}{worst} {shapes[worst][0] * 1000:.1f} ms")
    print(f"{'worst, baseline':26}{worst_old} {shapes[worst_old][1] * 1000:.1f} ms")
    print(f"{'worst ratio':26}{shapes[worst_old][1] / shapes[worst][0]:.1f}x")


if __name__ == "__main__":
    main()
