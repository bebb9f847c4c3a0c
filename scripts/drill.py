"""Replay the field report's three incidents against local gateways, and say what clients saw and which alarms
the emitted metrics would set off. No AWS: the fake vendor, the local token issuer, Redis, two gateway processes
and a local round robin standing in for the load balancer (local/round_robin.py).

    python scripts/drill.py [--only vendor-slow|pathological-prompt|gateway-killed] [--seconds-scale 1.0]

1. vendor-slow: the fake vendor answers after 35 s (past the 12 s first-byte timeout) for a minute, then recovers.
2. pathological-prompt: a 4,200-line SQL migration full of fixture SSNs and cards, sent while others work.
3. gateway-killed: one of the two gateway processes is killed (as an instance or AZ lost) and started again.

The alarm conditions are the deployed alarms' own thresholds (constructs/fleet_alarms.py, config/slo.py), applied
to what the drill measured: the balancer's counts, the clients' latencies and the gateways' metrics lines.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config.slo import BURN_RATE_ALERTS, BurnRateAlert, firing_minutes  # noqa: E402
from gateway.settings import GatewaySettings  # noqa: E402
from local import harness  # noqa: E402
from local.adversarial import migration  # noqa: E402
from local.harness import (  # noqa: E402
    MODEL,
    percentile,
    prompt,
)
from local.round_robin import RoundRobin  # noqa: E402

SLO_TARGET = 99.5
# The fleet alarms' thresholds (constructs/fleet_alarms.py defaults).
ERROR_RATE_PERCENT, SLOW_SECONDS = 1.0, 8.0


@dataclass
class Answer:
    at: float  # seconds since the incident began
    status: int
    seconds: float
    kind: str = "ordinary"


@dataclass
class Outcome:
    name: str
    answers: list[Answer] = field(default_factory=list)
    requests: int = 0
    elb_5xx: int = 0
    target_5xx: int = 0
    unhealthy_marks: int = 0
    unhealthy_seconds: float = 0.0  # time with fewer healthy targets than targets
    min_healthy: int = 2
    metrics: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Fleet:
    bench: harness.Bench
    gateways: list[tuple[harness.Process, GatewaySettings]]
    balancer: RoundRobin
    token: str

    def metrics_lines(self) -> list[dict[str, Any]]:
        return self._lines(lambda settings: settings.metrics.path)

    def audit_records(self) -> list[dict[str, Any]]:
        return self._lines(lambda settings: settings.audit.path)

    def _lines(self, path_of: Callable[[GatewaySettings], Path]) -> list[dict[str, Any]]:
        lines = []
        for _, settings in self.gateways:
            path = path_of(settings)
            if path.exists():
                lines += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return lines


@contextmanager
def fleet() -> Iterator[Fleet]:
    with harness.bench() as bench:
        gateways = [
            bench.gateway(f"gateway-{i}", limits__enabled=True, limits__user_per_hour=100_000,
                          limits__team_per_hour=100_000, limits__org_per_hour=100_000, **bench.redis.settings())
            for i in range(2)
        ]  # fmt: skip
        balancer = RoundRobin([process.url for process, _ in gateways]).start()
        try:
            yield Fleet(bench, gateways, balancer, bench.token())
        finally:
            balancer.stop()


def load(
    fleet: Fleet,
    seconds: float,
    rate: float,
    events: dict[float, Callable[[], None]],
    extra: Callable[[], Answer] | None = None,
) -> list[Answer]:
    """Ordinary requests at `rate` a second for `seconds`, running `events` at their times (seconds from the
    start); `extra` runs once alongside at the start (the pathological prompt)."""
    answers: list[Answer] = []
    started = time.monotonic()
    lock = threading.Lock()

    def one(kind: str = "ordinary", body: bytes | None = None) -> Answer:
        sent = time.monotonic()
        try:
            response = httpx.post(
                f"{fleet.balancer.url}/model/{MODEL}/invoke",
                content=body if body is not None else json.dumps(prompt("Say hello.")).encode(),
                headers={"authorization": f"Bearer {fleet.token}", "content-type": "application/json"},
                timeout=60,
            )
            status = response.status_code
        except httpx.HTTPError:
            status = 599  # no answer at all
        answer = Answer(round(sent - started, 2), status, time.monotonic() - sent, kind)
        with lock:
            answers.append(answer)
        return answer

    pending = sorted(events.items())
    with ThreadPoolExecutor(max_workers=int(rate * 15) + 4) as pool:
        if extra is not None:
            pool.submit(lambda: answers.append(extra()))
        n = 0
        while (elapsed := time.monotonic() - started) < seconds:
            while pending and pending[0][0] <= elapsed:
                pending.pop(0)[1]()
            pool.submit(one)
            n += 1
            time.sleep(max(0.0, started + n / rate - time.monotonic()))
    return sorted(answers, key=lambda a: a.at)


def measure(fleet: Fleet, outcome: Outcome, run: Callable[[], list[Answer]]) -> Outcome:
    before = (fleet.balancer.counts.requests, fleet.balancer.counts.elb_5xx, fleet.balancer.counts.target_5xx)
    marks_before = sum(len(t.marked_unhealthy_at) for t in fleet.balancer.targets)
    checks_before = len(fleet.balancer.counts.healthy)
    lines_before = len(fleet.metrics_lines())
    outcome.answers = run()
    time.sleep(2)  # the gateways' metrics writers are asynchronous
    counts = fleet.balancer.counts
    outcome.requests, outcome.elb_5xx, outcome.target_5xx = (
        counts.requests - before[0], counts.elb_5xx - before[1], counts.target_5xx - before[2],
    )  # fmt: skip
    outcome.unhealthy_marks = sum(len(t.marked_unhealthy_at) for t in fleet.balancer.targets) - marks_before
    checks = counts.healthy[checks_before:]
    outcome.min_healthy = min((h for _, h in checks), default=len(fleet.balancer.targets))
    outcome.unhealthy_seconds = fleet.balancer.interval * sum(1 for _, h in checks if h < len(fleet.balancer.targets))
    outcome.metrics = fleet.metrics_lines()[lines_before:]
    return outcome


# -- the incidents -----------------------------------------------------------------------------------------------


def vendor_slow(fleet: Fleet, scale: float) -> Outcome:
    """The vendor's answers take 35 s (P99 > 30 s in the report) for a minute, then it recovers."""
    control = fleet.bench.vendor.url + "/_control"

    def slow() -> None:
        httpx.post(control, json={"delay_seconds": 35}).raise_for_status()

    def recover() -> None:
        httpx.post(control, json={"delay_seconds": 0}).raise_for_status()

    outcome = Outcome("vendor-slow")
    outcome.notes.append(f"vendor slow from {10 * scale:g} s to {70 * scale:g} s, then recovered")
    return measure(fleet, outcome, lambda: load(fleet, 110 * scale, 4, {10 * scale: slow, 70 * scale: recover}))


def pathological_prompt(fleet: Fleet, scale: float) -> Outcome:
    """The 4,200-line migration full of fixture PII, while others keep working."""
    text = migration(4200)
    body = json.dumps(prompt(text)).encode()
    outcome = Outcome("pathological-prompt")
    outcome.notes.append(f"one prompt of {len(text.splitlines()):,} lines ({len(body) / 1024:,.0f} KiB)")

    request_ids = []

    def big() -> Answer:
        sent = time.monotonic()
        response = httpx.post(
            f"{fleet.balancer.url}/model/{MODEL}/invoke", content=body, timeout=60,
            headers={"authorization": f"Bearer {fleet.token}", "content-type": "application/json"},
        )  # fmt: skip
        request_ids.append(response.headers.get("x-request-id"))
        return Answer(0.0, response.status_code, time.monotonic() - sent, "migration")

    measure(fleet, outcome, lambda: load(fleet, 20 * scale, 8, {}, extra=big))
    for record in fleet.audit_records():
        if record["request_id"] in request_ids:
            prompt_policy = record["policy"].get("prompt", {})
            outcome.notes.append(
                f"the migration: {record['status']} {record['outcome']}, policy {prompt_policy.get('action')} "
                f"with matches {prompt_policy.get('matches')}"
            )
    return outcome


def gateway_killed(fleet: Fleet, scale: float) -> Outcome:
    """One of the two gateways dies (kill -9, as an instance lost with its AZ) and is back 20 s later."""
    process, settings = fleet.gateways[0]
    outcome = Outcome("gateway-killed")

    def kill() -> None:
        process.popen.kill()

    def restart() -> None:  # as Auto Scaling's replacement would, on the same address
        again = harness.start_gateway(settings.audit.path.parent, settings, port=_port(process.url))
        fleet.bench.processes.append(again)
        fleet.gateways[0] = (again, settings)

    outcome.notes.append(f"gateway-0 killed at {10 * scale:g} s, started again at {30 * scale:g} s")
    return measure(fleet, outcome, lambda: load(fleet, 45 * scale, 10, {10 * scale: kill, 30 * scale: restart}))


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


INCIDENTS: dict[str, Callable[[Fleet, float], Outcome]] = {
    "vendor-slow": vendor_slow,
    "pathological-prompt": pathological_prompt,
    "gateway-killed": gateway_killed,
}


# -- what it means ---------------------------------------------------------------------------------------------------


def minutes_to_page(alert: BurnRateAlert, error_rate: float, target: float = SLO_TARGET) -> int | None:
    """How many minutes at `error_rate` (after a window without errors) until `alert` fires; None: never."""
    calm = [0.0] * alert.long_minutes
    bad = calm + [error_rate] * (alert.long_minutes + alert.short_minutes)
    firing = firing_minutes(alert, bad, [1.0] * len(bad), target)
    return firing[0] - alert.long_minutes + 1 if firing else None


def per_minute(outcome: Outcome) -> tuple[list[float], list[float]]:
    """The drill's 5xx and requests by minute, as the load balancer would count them."""
    minutes = int(max((a.at for a in outcome.answers), default=0) // 60) + 1
    bad, total = [0.0] * minutes, [0.0] * minutes
    for answer in outcome.answers:
        total[int(answer.at // 60)] += 1
        bad[int(answer.at // 60)] += answer.status >= 500
    return bad, total


def lasted(seconds: float, needed: float) -> str:
    return "met" if seconds >= needed else f"not met: it lasted {seconds:.0f} s of the {needed:.0f} s the alarm needs"


def alarm_conditions(outcome: Outcome) -> list[str]:
    """What each alarm concerned would do with the drill's measurements: met, or why not, and at the incident's
    rate how long it would have to last."""
    said = []
    duration = max((a.at for a in outcome.answers), default=0.0) or 1.0
    fivexx = outcome.elb_5xx + outcome.target_5xx
    rate = fivexx / outcome.requests if outcome.requests else 0.0
    if rate:
        # Two 5-minute periods above 1 %: the incident's 5xx within its period's requests at the drill's pace.
        period_rate = fivexx / (outcome.requests / duration * 300) if duration < 300 else rate
        verdict = (
            "above it in that period, the first of the two the alarm needs"
            if 100 * period_rate > ERROR_RATE_PERCENT
            else "not met"
        )
        if 100 * rate > ERROR_RATE_PERCENT:
            verdict += f"; at the incident's {100 * rate:.1f} % for 10 min, met"
        said.append(
            f"ErrorRate (5xx above {ERROR_RATE_PERCENT:g} % in two 5-min periods running): "
            f"{100 * period_rate:.2f} % of the 5-min period holding the incident, {verdict}"
        )
    slow = [a for a in outcome.answers if a.seconds > SLOW_SECONDS]
    if slow:
        span = max(a.at + a.seconds for a in slow) - min(a.at for a in slow)
        said.append(
            f"SlowAnswers (p99 above {SLOW_SECONDS:g} s for 5 min): {len(slow)} answers slower; {lasted(span, 300)}"
        )
    opened = sum(1 for line in outcome.metrics if line.get("BreakerOpen"))
    if opened:
        said.append(f"BreakerOpen (any minute): met, {opened} requests answered while a breaker was open")
    if any(line.get("LimitFailOpen") or line.get("Outcome") == "limits_unavailable" for line in outcome.metrics):
        said.append("RedisUnreachable (any minute): met")
    if outcome.unhealthy_seconds:
        said.append(f"UnhealthyHosts (3 min running): {lasted(outcome.unhealthy_seconds, 180)}")
        said.append(f"InServiceBelowMinimum (3 min running, 2 instances): {lasted(outcome.unhealthy_seconds, 180)}")
    bad, total = per_minute(outcome)
    for alert in BURN_RATE_ALERTS:
        if not rate:
            break
        fired = firing_minutes(alert, [0.0] * alert.long_minutes + bad, [1.0 * max(total)] * alert.long_minutes + total,
                               SLO_TARGET)  # fmt: skip
        sustained = minutes_to_page(alert, rate)
        said.append(
            f"SLO {alert.name} ({alert.severity}, {100 * alert.error_rate_threshold(SLO_TARGET):.1f} % over "
            f"{alert.long_minutes} and {alert.short_minutes} min): "
            + ("met" if fired else "not met")
            + (f"; at the incident's {100 * rate:.1f} % it fires after {sustained} min" if sustained else "")
        )
    return said


def report(outcome: Outcome) -> str:
    lines = [f"== {outcome.name}", *(f"   {note}" for note in outcome.notes)]
    for kind in sorted({a.kind for a in outcome.answers}):
        answers = [a for a in outcome.answers if a.kind == kind]
        seconds = [a.seconds for a in answers]
        statuses = ", ".join(
            f"{status}: {count}" for status, count in sorted(Counter(a.status for a in answers).items())
        )
        lines.append(
            f"   clients ({kind}, {len(answers)} requests): {statuses}; latency p50 "
            f"{statistics.median(seconds):.2f} s, p99 {percentile(seconds, 0.99):.2f} s, max {max(seconds):.2f} s"
        )
    timeline = Counter((int(a.at // 10) * 10, a.status) for a in outcome.answers if a.kind == "ordinary")
    for start in sorted({s for s, _ in timeline}):
        statuses = ", ".join(f"{status}: {n}" for (s, status), n in sorted(timeline.items()) if s == start)
        lines.append(f"     sent {start:>3}-{start + 10:<3} s  {statuses}")
    lines.append(
        f"   load balancer: {outcome.requests} requests, {outcome.elb_5xx} of its own 5xx, {outcome.target_5xx} "
        f"from the gateways; fewest healthy targets {outcome.min_healthy} of 2"
    )
    conditions = alarm_conditions(outcome)
    lines.append("   alarms:" if conditions else "   alarms: no alarm's metric moved")
    lines += [f"     - {condition}" for condition in conditions]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(INCIDENTS), action="append")
    parser.add_argument("--seconds-scale", type=float, default=1.0, help="shorten (or lengthen) every incident")
    args = parser.parse_args(argv)
    for name in args.only or list(INCIDENTS):
        with fleet() as running:
            print(report(INCIDENTS[name](running, args.seconds_scale)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
