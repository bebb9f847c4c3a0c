"""Pure cost-anomaly detection: no AWS, no clock, no environment. The handler, the CLI and the benchmark share it.

Three checks:

* spend far above the team's own robust baseline (`evaluate`, `detect_spikes`): each point is compared with the
  median and MAD of the same seasonal slot (hour of day on weekdays, or on weekends; for daily data weekdays vs
  weekends) over a trailing window. It fires when the excess over the median is above k robust SDs *and* at least
  an absolute USD floor, so tiny teams never page anyone. Hourly data is checked twice: each hour alone (short
  bursts) and the day's spend so far (sustained level shifts too small to see in one noisy hour);
* a projected month-end spend above the team's monthly cap (`project_month_end`, `projection_finding`);
* concentration: the top three teams' share of month-to-date spend above a threshold (`concentration_finding`).
"""

from __future__ import annotations

import calendar
import math
import statistics
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

# Defaults shared by the handler's settings and the CLI (tuned on scripts/bench_cost.py's labelled set).
DEFAULT_K = 12.0
DEFAULT_FLOOR_USD = 5.0
DEFAULT_BASELINE_DAYS = 28
DEFAULT_MIN_SAMPLES = 8
DEFAULT_CONCENTRATION_SHARE = 0.5
RUN_RATE_DAYS = 7
TOP_N = 3

# A normal distribution's SD from its MAD; from its mean absolute deviation when the MAD is 0 (Iglewicz-Hoaglin).
MAD_TO_SD = 1.4826
MEAN_AD_TO_SD = 1.2533

Check = Literal["hour", "day_to_date", "day"]
Kind = Literal["spike", "projection", "concentration"]


@dataclass(frozen=True)
class SpikeParams:
    k: float = DEFAULT_K
    floor_usd: float = DEFAULT_FLOOR_USD
    baseline_days: int = DEFAULT_BASELINE_DAYS
    # Fewer like-for-like samples than this and a point is not judged (a new team has no baseline yet).
    min_samples: int = DEFAULT_MIN_SAMPLES


@dataclass(frozen=True)
class Series:
    """Spend in consecutive buckets of `step` (HOUR or DAY) from `start` (the first bucket's start, UTC)."""

    start: datetime
    step: timedelta
    values: Sequence[float]

    def time(self, index: int) -> datetime:
        return self.start + index * self.step

    @property
    def end(self) -> datetime:
        return self.time(len(self.values))

    def between(self, start: datetime, end: datetime) -> float:
        """Spend of the buckets starting in [start, end)."""
        first = max(0, math.ceil((start - self.start) / self.step))
        last = min(len(self.values), math.ceil((end - self.start) / self.step))
        return math.fsum(self.values[first:last]) if last > first else 0.0


def series_from_points(points: Mapping[datetime, float], step: timedelta, end: datetime) -> Series | None:
    """A dense series from the first point to `end` (exclusive); a missing bucket is no spend (no requests).

    Buckets before the first point are not zeros: the team did not exist yet, and zeros would make its
    first day look like a spike."""
    times = [t for t in points if t < end]
    if not times:
        return None
    start = min(times)
    count = math.ceil((end - start) / step)
    values = [0.0] * count
    for t in times:
        values[int((t - start) / step)] += points[t]
    return Series(start=start, step=step, values=values)


@dataclass(frozen=True)
class Baseline:
    median: float
    sd: float  # robust SD: from the MAD, or from the mean absolute deviation when the MAD is 0
    samples: int


def robust_baseline(values: Sequence[float]) -> Baseline:
    median = statistics.median(values)
    deviations = [abs(v - median) for v in values]
    mad = statistics.median(deviations)
    sd = MAD_TO_SD * mad if mad > 0 else MEAN_AD_TO_SD * statistics.fmean(deviations)
    return Baseline(median=median, sd=sd, samples=len(values))


@dataclass(frozen=True)
class Evaluation:
    """One point judged against its baseline."""

    timestamp: datetime
    check: Check
    cost_usd: float
    baseline: Baseline
    weekend: bool
    params: SpikeParams

    @property
    def excess_usd(self) -> float:
        return self.cost_usd - self.baseline.median

    @property
    def score(self) -> float:
        """Robust SDs above the median; infinite when every earlier sample was identical and this one is higher."""
        if self.baseline.sd > 0:
            return self.excess_usd / self.baseline.sd
        return math.inf if self.excess_usd > 0 else 0.0

    @property
    def fired(self) -> bool:
        excess = self.excess_usd
        return excess > 0 and excess >= self.params.floor_usd and excess > self.params.k * self.baseline.sd

    @property
    def what(self) -> str:
        t = self.timestamp
        return {
            "hour": f"${self.cost_usd:,.2f} spent in the hour from {t:%Y-%m-%d %H:00} UTC",
            "day_to_date": f"${self.cost_usd:,.2f} spent on {t:%Y-%m-%d} up to {t.hour + 1:02d}:00 UTC",
            "day": f"${self.cost_usd:,.2f} spent on {t:%Y-%m-%d}",
        }[self.check]

    @property
    def reason(self) -> str:
        like = {
            "hour": "that hour",
            "day_to_date": "the same part of the day",
            "day": "the whole day",
        }[self.check]
        days = "weekend days" if self.weekend else "weekdays"
        score = "infinitely many" if math.isinf(self.score) else f"{self.score:.1f}"
        return (
            f"{self.what} is {score} robust SDs (${self.baseline.sd:,.2f} each)"
            f" above the median ${self.baseline.median:,.2f}"
            f" of {like} on {self.baseline.samples} earlier {days} of the last {self.params.baseline_days} days;"
            f" fires above {self.params.k:g} SDs when also at least ${self.params.floor_usd:,.2f} above the median"
        )

    def record(self, team: str) -> dict[str, object]:
        """The CLI's JSON line (an infinite score is null: JSON has no infinity)."""
        return {
            "timestamp": self.timestamp.isoformat().replace("+00:00", "Z"),
            "team": team,
            "check": self.check,
            "cost_usd": round(self.cost_usd, 6),
            "baseline_usd": round(self.baseline.median, 6),
            "score": None if math.isinf(self.score) else round(self.score, 3),
            "reason": self.reason,
        }


def is_weekend(t: datetime) -> bool:
    return t.weekday() >= 5


def _day_to_date(series: Series) -> list[float | None]:
    """The day's spend up to and including each hour; None for a day the series does not cover from 00:00
    (a partial first day would look unusually cheap and stand in the history as an outlier)."""
    out: list[float | None] = []
    running: float | None = None
    for i, value in enumerate(series.values):
        if series.time(i).hour == 0:
            running = 0.0
        if running is not None:
            running += value
        out.append(running)
    return out


def evaluate(series: Series, params: SpikeParams, evaluate_from: datetime | None = None) -> list[Evaluation]:
    """Every point from `evaluate_from` (default: all) that has enough like-for-like history, judged.

    The history of a point is the same check's values in the same slot ((weekend, hour of day) for hourly data,
    weekend for daily data) strictly before it and within `baseline_days`."""
    if series.step == HOUR:
        checks: list[tuple[Check, Sequence[float | None]]] = [
            ("hour", series.values),
            ("day_to_date", _day_to_date(series)),
        ]
    elif series.step == DAY:
        checks = [("day", series.values)]
    else:
        raise ValueError(f"a series must be hourly or daily, not every {series.step}")
    window = timedelta(days=params.baseline_days)
    out: list[Evaluation] = []
    for check, measures in checks:
        slots: dict[tuple[bool, int], tuple[list[datetime], list[float]]] = {}
        for i, value in enumerate(measures):
            if value is None:
                continue
            t = series.time(i)
            weekend = is_weekend(t)
            times, values = slots.setdefault((weekend, t.hour), ([], []))
            if evaluate_from is None or t >= evaluate_from:
                history = values[bisect_left(times, t - window) :]
                if len(history) >= params.min_samples:
                    baseline = robust_baseline(history)
                    out.append(Evaluation(t, check, value, baseline, weekend, params))
            times.append(t)
            values.append(value)
    out.sort(key=lambda e: (e.timestamp, e.check))
    return out


def detect_spikes(series: Series, params: SpikeParams, evaluate_from: datetime | None = None) -> list[Evaluation]:
    return [e for e in evaluate(series, params, evaluate_from) if e.fired]


@dataclass(frozen=True)
class Finding:
    """What one alert says. `id` is stable, so the same finding is recognised on every later run."""

    kind: Kind
    team: str
    period: str  # the day (spike) or month (projection, concentration) the finding is about
    figure_usd: float
    baseline_usd: float
    figure: str  # what the figure is, in words
    baseline: str  # what the baseline is, in words
    reason: str
    details: Mapping[str, object] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.kind}#{self.team}#{self.period}"

    @property
    def severity(self) -> float:
        """The figure as a multiple of its baseline (comparable across sources whose totals differ)."""
        return self.figure_usd / self.baseline_usd if self.baseline_usd > 0 else math.inf


def spike_findings(team: str, flags: Iterable[Evaluation]) -> list[Finding]:
    """At most one finding per team and day (the strongest flag): a level shift flags many hours in a row,
    and one page per day is what a person can act on."""
    best: dict[str, Evaluation] = {}
    for flag in flags:
        day = flag.timestamp.date().isoformat()
        # On a tie the hour itself is the clearer figure (the day so far is the same money at, say, 09:00).
        if day not in best or (flag.score, flag.check == "hour") > (best[day].score, best[day].check == "hour"):
            best[day] = flag
    return [
        Finding(
            kind="spike",
            team=team,
            period=day,
            figure_usd=flag.cost_usd,
            baseline_usd=flag.baseline.median,
            figure=flag.what,
            baseline=(
                f"median ${flag.baseline.median:,.2f}, robust SD ${flag.baseline.sd:,.2f}"
                f" ({flag.baseline.samples} like-for-like samples)"
            ),
            reason=flag.reason,
            details={"check": flag.check, "timestamp": flag.timestamp.isoformat(), "score": _finite(flag.score)},
        )
        for day, flag in sorted(best.items())
    ]


def _finite(value: float) -> float | None:
    return None if math.isinf(value) else round(value, 3)


def month_bounds(t: datetime) -> tuple[datetime, datetime]:
    start = t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=calendar.monthrange(t.year, t.month)[1])


@dataclass(frozen=True)
class Projection:
    as_of: datetime
    month_to_date_usd: float
    run_rate_usd_per_day: float
    days_left: float

    @property
    def projected_usd(self) -> float:
        return self.month_to_date_usd + self.run_rate_usd_per_day * self.days_left


def project_month_end(series: Series, as_of: datetime, run_rate_days: int = RUN_RATE_DAYS) -> Projection:
    """Month-to-date spend plus the recent daily run rate for the rest of the month.

    The run rate is the mean over the last `run_rate_days` (whole weeks keep weekends in proportion; it reaches
    into the previous month on the 1st), over at least one day so a few busy hours are not taken as a day."""
    month_start, month_end = month_bounds(as_of)
    rate_start = max(as_of - timedelta(days=run_rate_days), series.start)
    covered_days = max((as_of - rate_start) / DAY, 1.0)
    return Projection(
        as_of=as_of,
        month_to_date_usd=series.between(month_start, as_of),
        run_rate_usd_per_day=series.between(rate_start, as_of) / covered_days,
        days_left=(month_end - as_of) / DAY,
    )


def projection_finding(team: str, projection: Projection, cap_usd: float, source: str) -> Finding | None:
    projected = projection.projected_usd
    if projected <= cap_usd:
        return None
    month = projection.as_of.strftime("%Y-%m")
    over = "is already" if projection.month_to_date_usd > cap_usd else "is projected to be"
    return Finding(
        kind="projection",
        team=team,
        period=month,
        figure_usd=projected,
        baseline_usd=cap_usd,
        figure=f"projected {month} spend ${projected:,.2f} ({source})",
        baseline=f"monthly cap ${cap_usd:,.2f}",
        reason=(
            f"month-to-date ${projection.month_to_date_usd:,.2f} + run rate ${projection.run_rate_usd_per_day:,.2f}"
            f"/day (last {RUN_RATE_DAYS} days) x {projection.days_left:.1f} days left = ${projected:,.2f};"
            f" spend {over} above the cap ${cap_usd:,.2f} ({projected / cap_usd:.0%} of it)"
        ),
        details={
            "source": source,
            "as_of": projection.as_of.isoformat(),
            "month_to_date_usd": round(projection.month_to_date_usd, 2),
            "run_rate_usd_per_day": round(projection.run_rate_usd_per_day, 2),
        },
    )


def concentration_finding(
    month_to_date: Mapping[str, float],
    share: float,
    month: str,
    source: str,
    top_n: int = TOP_N,
) -> Finding | None:
    """The top `top_n` teams' share of the month's spend above `share`. Not judged with `top_n` teams or fewer:
    their share is always 100%."""
    spending = {team: usd for team, usd in month_to_date.items() if usd > 0}
    if len(spending) <= top_n:
        return None
    total = math.fsum(spending.values())
    top = sorted(spending.items(), key=lambda item: (-item[1], item[0]))[:top_n]
    top_share = math.fsum(usd for _, usd in top) / total
    if top_share <= share:
        return None
    names = ", ".join(f"{team} ({usd / total:.0%})" for team, usd in top)
    return Finding(
        kind="concentration",
        team=f"top{top_n}",
        period=month,
        figure_usd=math.fsum(usd for _, usd in top),
        baseline_usd=total,
        figure=f"top {top_n} teams' {month} spend: {top_share:.0%} of ${total:,.2f} ({source})",
        baseline=f"threshold {share:.0%} of all {len(spending)} spending teams' spend",
        reason=f"{names} together spent {top_share:.0%} of the month-to-date total, above {share:.0%}",
        details={"source": source, "share": round(top_share, 4), "teams": [team for team, _ in top]},
    )


def merge_findings(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per id (the same check on two sources, Cost Explorer and the gateway's metrics): the worse."""
    merged: dict[str, Finding] = {}
    for finding in findings:
        known = merged.get(finding.id)
        if known is None or finding.severity > known.severity:
            merged[finding.id] = finding
    return list(merged.values())
