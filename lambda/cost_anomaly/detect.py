"""Flag unusual spend in a CSV series with the cost-anomaly function's own detector.

    python lambda/cost_anomaly/detect.py SERIES.csv [--k 6] [--floor 5] [--baseline-days 28]

SERIES.csv has the columns timestamp,team,cost_usd (more columns are ignored): one row per team and hour, or per
team and day; the step is read from the timestamps. Timestamps are ISO 8601, UTC unless they say otherwise. A
team's missing hour (or day) after its first row is no spend. Prints one JSON line per flagged point:
{"timestamp", "team", "check", "cost_usd", "baseline_usd", "score", "reason"}. Exits 2 on a malformed file.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from detection import (
    DAY,
    DEFAULT_BASELINE_DAYS,
    DEFAULT_FLOOR_USD,
    DEFAULT_K,
    DEFAULT_MIN_SAMPLES,
    HOUR,
    SpikeParams,
    detect_spikes,
    series_from_points,
)

COLUMNS = ("timestamp", "team", "cost_usd")


class MalformedFileError(Exception):
    def __init__(self, line: int | None, problem: str) -> None:
        super().__init__(problem)
        self.line = line
        self.problem = problem


def read_series(path: Path) -> tuple[dict[str, dict[datetime, float]], timedelta]:
    """Team -> timestamp -> cost, and the step (HOUR or DAY)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise MalformedFileError(None, f"cannot read it: {error}") from None
    if not text.strip():
        raise MalformedFileError(None, "the file is empty")
    reader = csv.DictReader(text.splitlines())
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [column for column in COLUMNS if column not in header]
    if missing:
        raise MalformedFileError(
            1, f"missing column(s) {', '.join(missing)} (the header must name {', '.join(COLUMNS)})"
        )
    reader.fieldnames = header
    points: dict[str, dict[datetime, float]] = {}
    for row in reader:
        line = reader.line_num
        timestamp = _timestamp(row.get("timestamp"), line)
        team = (row.get("team") or "").strip()
        if not team:
            raise MalformedFileError(line, "the team is empty")
        cost = _cost(row.get("cost_usd"), line)
        if timestamp in points.setdefault(team, {}):
            raise MalformedFileError(line, f"a second row for team {team!r} at {timestamp.isoformat()}")
        points[team][timestamp] = cost
    if not points:
        raise MalformedFileError(None, "no data rows after the header")
    return points, _step(points)


def _timestamp(raw: str | None, line: int) -> datetime:
    try:
        parsed = datetime.fromisoformat((raw or "").strip())
    except ValueError:
        raise MalformedFileError(
            line, f"bad timestamp {raw!r} (expected ISO 8601, e.g. 2026-11-02T14:00:00Z)"
        ) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _cost(raw: str | None, line: int) -> float:
    try:
        cost = float((raw or "").strip())
    except ValueError:
        raise MalformedFileError(line, f"cost_usd {raw!r} is not a number") from None
    if not math.isfinite(cost) or cost < 0:
        raise MalformedFileError(line, f"cost_usd {raw!r} must be a finite number >= 0")
    return cost


def _step(points: dict[str, dict[datetime, float]]) -> timedelta:
    """The smallest gap between a team's timestamps: an hour or a day, with every timestamp on that grid."""
    gaps = [
        later - earlier
        for series in points.values()
        for earlier, later in zip(sorted(series), sorted(series)[1:], strict=False)
    ]
    step = min(gaps, default=None)
    if step not in (HOUR, DAY):
        raise MalformedFileError(
            None, f"timestamps must be hourly or daily; the smallest step is {step or 'undefined'}"
        )
    for series in points.values():
        for t in series:
            if t.minute or t.second or t.microsecond or (step == DAY and t.hour):
                raise MalformedFileError(
                    None, f"timestamp {t.isoformat()} is not on the {'hour' if step == HOUR else 'day'}"
                )
    return step


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("series", type=Path, metavar="SERIES.csv")
    parser.add_argument(
        "--k", type=float, default=DEFAULT_K, help=f"robust SDs above the median (default {DEFAULT_K:g})"
    )
    parser.add_argument(
        "--floor", type=float, default=DEFAULT_FLOOR_USD, help=f"USD above the median (default {DEFAULT_FLOOR_USD:g})"
    )
    parser.add_argument(
        "--baseline-days",
        type=int,
        default=DEFAULT_BASELINE_DAYS,
        help=f"trailing baseline window in days (default {DEFAULT_BASELINE_DAYS})",
    )
    parser.add_argument(
        "--min-samples",
        type=int,
        default=DEFAULT_MIN_SAMPLES,
        help=f"like-for-like samples a point needs to be judged (default {DEFAULT_MIN_SAMPLES})",
    )
    args = parser.parse_args(argv)
    if args.k <= 0 or args.floor < 0 or args.baseline_days < 1 or args.min_samples < 1:
        parser.error("--k must be > 0, --floor >= 0, --baseline-days and --min-samples >= 1")
    try:
        points, step = read_series(args.series)
    except MalformedFileError as error:
        where = f"{args.series}:{error.line}" if error.line else str(args.series)
        print(f"detect.py: {where}: {error.problem}", file=sys.stderr)
        return 2
    params = SpikeParams(k=args.k, floor_usd=args.floor, baseline_days=args.baseline_days, min_samples=args.min_samples)
    records = []
    for team, team_points in points.items():
        series = series_from_points(team_points, step, max(team_points) + step)
        if series is not None:
            records += [flag.record(team) for flag in detect_spikes(series, params)]
    records.sort(key=lambda r: (str(r["timestamp"]), str(r["team"]), str(r["check"])))
    for record in records:
        print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
