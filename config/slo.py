"""The availability SLO and its burn-rate alerts, as plain arithmetic: the alarms (constructs/availability_slo.py),
the drills (`make drill`) and the tests all take their thresholds from here.

Multi-window, multi-burn-rate alerts as in Google's SRE workbook (chapter 5, "Alerting on SLOs"): an alert fires
while the error rate over its long window *and* over its short window are both at least `burn_rate` times the
error budget. The long window says enough budget is gone to matter; the short one says it is still going, so the
alert clears soon after the errors stop. The field report's service missed 99.5 % (98.8 % over eight weeks) and
nobody saw the burn as it happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Literal

Severity = Literal["page", "ticket"]


@dataclass(frozen=True)
class BurnRateAlert:
    name: str
    severity: Severity
    burn_rate: float
    long_minutes: int
    short_minutes: int

    def error_rate_threshold(self, target_percent: float) -> float:
        """The error rate (0..1) both windows must reach: burn rate x error budget."""
        return self.burn_rate * error_budget(target_percent)

    def budget_spent(self, window_days: int) -> float:
        """The share of the SLO window's error budget spent by the time the long window alone fires."""
        return self.burn_rate * self.long_minutes / (window_days * 1440)


# The workbook's three: 2 % of a 30-day budget in an hour and 5 % in six hours page; 10 % in three days is a
# ticket (its short window is six hours). With aigw's 28-day window each spends a little more (budget_spent).
BURN_RATE_ALERTS = (
    BurnRateAlert("FastBurn", "page", 14.4, long_minutes=60, short_minutes=5),
    BurnRateAlert("SlowBurn", "page", 6.0, long_minutes=360, short_minutes=30),
    BurnRateAlert("BudgetBurn", "ticket", 1.0, long_minutes=3 * 1440, short_minutes=360),
)


def error_budget(target_percent: float) -> float:
    """The share of requests that may fail (0.005 for 99.5 %)."""
    if not 0 < target_percent < 100:
        raise ValueError(f"an SLO target is a percentage between 0 and 100 (exclusive), not {target_percent}")
    return 1 - target_percent / 100


def error_rate(bad: float, total: float) -> float:
    """Bad over total; no requests is no errors (as the alarms' `IF(total > 0, …, 0)`)."""
    return bad / total if total > 0 else 0.0


def budget_remaining(bad: float, total: float, target_percent: float) -> float:
    """The share of the window's error budget left (negative once the SLO is missed)."""
    return 1 - error_rate(bad, total) / error_budget(target_percent)


def firing_minutes(
    alert: BurnRateAlert, bad: Sequence[float], total: Sequence[float], target_percent: float
) -> list[int]:
    """The minutes (indexes into per-minute series of bad and total requests) at which `alert` fires, judged as
    CloudWatch judges a sliding window: the sums of the last `long_minutes` and of the last `short_minutes`.
    A window that reaches back before the series' start counts only what the series holds."""
    if len(bad) != len(total):
        raise ValueError(f"bad and total must cover the same minutes ({len(bad)} and {len(total)} given)")
    threshold = alert.error_rate_threshold(target_percent)
    bad_sums, total_sums = [0.0, *accumulate(bad)], [0.0, *accumulate(total)]

    def rate(end: int, minutes: int) -> float:
        start = max(0, end - minutes)
        return error_rate(bad_sums[end] - bad_sums[start], total_sums[end] - total_sums[start])

    return [
        minute
        for minute in range(len(bad))
        if rate(minute + 1, alert.long_minutes) >= threshold and rate(minute + 1, alert.short_minutes) >= threshold
    ]


def episodes(minutes: Sequence[int]) -> list[tuple[int, int]]:
    """Firing minutes (ascending) as (first minute, length) of each unbroken run: one page each."""
    runs: list[list[int]] = []
    for minute in minutes:
        if runs and minute == runs[-1][0] + runs[-1][1]:
            runs[-1][1] += 1
        else:
            runs.append([minute, 1])
    return [(start, length) for start, length in runs]
