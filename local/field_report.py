"""The field report's eight weeks as per-minute request series, for the burn-rate alerts (config/slo.py) to judge.

From the report: 98.8 % availability over the eight weeks, weeks at 96.2 % and 97.1 %, and the incidents below.
Not in the report, and assumed here: the other six weekly figures (chosen so that the eight average 98.8 %), the
traffic shape (140 engineers: 60 requests a minute in working hours on weekdays, 4 otherwise, every week alike)
and where in its week each incident fell. Outside its incidents, a week's failures are spread evenly over its
requests: the least alarming way a week can reach its figure.
"""

from __future__ import annotations

from dataclasses import dataclass

MINUTES_PER_WEEK = 7 * 1440
BUSY, QUIET = 60.0, 4.0  # requests a minute, weekdays 08:00-19:00 and otherwise


@dataclass(frozen=True)
class Incident:
    what: str
    day: int  # 0: Monday
    start: str  # "HH:MM"
    minutes: int
    failing: float  # the share of requests that failed meanwhile

    def minute_range(self) -> range:
        hours, minutes = map(int, self.start.split(":"))
        first = self.day * 1440 + hours * 60 + minutes
        return range(first, first + self.minutes)


@dataclass(frozen=True)
class Week:
    number: int
    availability_percent: float
    incidents: tuple[Incident, ...] = ()
    from_report: bool = False


WEEKS = (
    Week(1, 99.7),
    Week(2, 99.4),
    Week(
        3, 96.2, from_report=True,
        incidents=(Incident("vendor P99 above 30 s for 2.5 h: 94 minutes of 502s", 1, "10:05", 94, 1.0),),
    ),
    Week(4, 99.6),
    Week(
        5, 97.1, from_report=True,
        incidents=(
            Incident("single-AZ proxy: its AZ's outage", 2, "14:20", 47, 1.0),
            Incident("a PII regex backtracking on a 4,200-line file: one of two instances at 100 % CPU", 3, "11:00",
                     11, 0.5),
        ),
    ),
    Week(6, 99.6),
    Week(7, 99.4),
    Week(8, 99.4),
)  # fmt: skip


def traffic(minute: int) -> float:
    day, minute_of_day = divmod(minute % MINUTES_PER_WEEK, 1440)
    return BUSY if day < 5 and 8 * 60 <= minute_of_day < 19 * 60 else QUIET


def week_series(week: Week) -> tuple[list[float], list[float]]:
    """Bad and total requests for each minute of `week`, meeting its availability exactly."""
    total = [traffic(minute) for minute in range(MINUTES_PER_WEEK)]
    bad = [0.0] * MINUTES_PER_WEEK
    in_incidents: set[int] = set()
    for incident in week.incidents:
        for minute in incident.minute_range():
            bad[minute] = total[minute] * incident.failing
            in_incidents.add(minute)
    allowed_bad = sum(total) * (1 - week.availability_percent / 100)
    rest = allowed_bad - sum(bad)
    rest_total = sum(t for minute, t in enumerate(total) if minute not in in_incidents)
    if rest < 0:
        raise ValueError(
            f"week {week.number}: its incidents alone fail more than {100 - week.availability_percent:g} %"
        )
    for minute in range(MINUTES_PER_WEEK):
        if minute not in in_incidents:
            bad[minute] = total[minute] * rest / rest_total
    return bad, total


def eight_weeks() -> tuple[list[float], list[float]]:
    bad: list[float] = []
    total: list[float] = []
    for week in WEEKS:
        week_bad, week_total = week_series(week)
        bad += week_bad
        total += week_total
    return bad, total
