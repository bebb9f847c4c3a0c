"""detect.py run as a command, as a person would run it on an exported series."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.lambda_cost_anomaly.conftest import FUNCTION

START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday


def detect(csv: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(FUNCTION / "detect.py"), str(csv), *options],
        capture_output=True,
        text=True,
        check=False,
    )


def hourly_rows(days: int, spike_at: datetime | None = None) -> list[str]:
    """Two teams' working-hours spend with +-20% noise (seeded), weekends at a third."""
    rng = random.Random(3)
    rows = []
    for h in range(days * 24):
        t = START + timedelta(hours=h)
        for team, usd in (("payments", 20.0), ("search", 8.0)):
            cost = usd * rng.uniform(0.8, 1.2) * (1.0 if 8 <= t.hour < 18 else 0.1) * (0.3 if t.weekday() >= 5 else 1)
            if team == "payments" and t == spike_at:
                cost = 400.0
            rows.append(f"{t:%Y-%m-%dT%H:%M:%SZ},{team},{cost:.4f}")
    return rows


def write(tmp_path: Path, lines: list[str], header: str = "timestamp,team,cost_usd") -> Path:
    path = tmp_path / "series.csv"
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def test_an_hourly_spike_is_printed_as_one_json_line_per_flag(tmp_path: Path) -> None:
    spike = START + timedelta(days=32, hours=14)  # a Friday afternoon
    result = detect(write(tmp_path, hourly_rows(35, spike)))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records, "the spike was not flagged"
    assert {r["team"] for r in records} == {"payments"}
    hour = next(r for r in records if r["check"] == "hour")
    assert hour["timestamp"] == f"{spike:%Y-%m-%dT%H:%M:%S}Z"
    assert hour["cost_usd"] == 400
    assert hour["baseline_usd"] == pytest.approx(20, rel=0.1)
    assert hour["score"] > 12
    assert "robust SDs" in hour["reason"]
    assert set(hour) == {"timestamp", "team", "check", "cost_usd", "baseline_usd", "score", "reason"}


def test_options_change_what_fires(tmp_path: Path) -> None:
    spike = START + timedelta(days=32, hours=14)
    csv = write(tmp_path, hourly_rows(35, spike))
    assert detect(csv).stdout != ""
    assert detect(csv, "--floor", "1000").stdout == ""  # $380 above the median is under a $1,000 floor
    assert detect(csv, "--baseline-days", "2").stdout == ""  # too few like-for-like samples in two days
    assert detect(csv, "--k", "1000").stdout == ""


def test_a_daily_series_is_read_as_daily(tmp_path: Path) -> None:
    rows = [f"{START + timedelta(days=d):%Y-%m-%d},payments,{100 + (d * 7) % 5}" for d in range(40)]
    rows[-1] = f"{START + timedelta(days=39):%Y-%m-%d},payments,900"
    result = detect(write(tmp_path, rows))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["timestamp"], r["check"]) for r in records] == [
        (f"{START + timedelta(days=39):%Y-%m-%d}T00:00:00Z", "day")
    ]


@pytest.mark.parametrize(
    ("header", "lines", "message"),
    [
        ("timestamp,team,usd", ["2026-03-02T00:00:00Z,a,1"], ":1: missing column(s) cost_usd"),
        ("timestamp,team,cost_usd", ["2026-03-02T00:00:00Z,a,1", "yesterday,a,1"], ":3: bad timestamp 'yesterday'"),
        ("timestamp,team,cost_usd", ["2026-03-02T00:00:00Z,a,1", "2026-03-02T01:00:00Z,a,ten"], ":3: cost_usd 'ten'"),
        ("timestamp,team,cost_usd", ["2026-03-02T00:00:00Z,a,-4"], ":2: cost_usd '-4' must be a finite number >= 0"),
        ("timestamp,team,cost_usd", ["2026-03-02T00:00:00Z,,4"], ":2: the team is empty"),
        ("timestamp,team,cost_usd", [], ": no data rows after the header"),
        ("timestamp,team,cost_usd", ["2026-03-02T00:00:00Z,a,1", "2026-03-02T00:30:00Z,a,1"], "hourly or daily"),
    ],
)
def test_a_malformed_file_exits_2_naming_file_line_and_problem(
    tmp_path: Path, header: str, lines: list[str], message: str
) -> None:
    csv = write(tmp_path, lines, header)
    result = detect(csv)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"detect.py: {csv}")
    assert message in result.stderr


def test_an_empty_file_exits_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = detect(empty)
    assert result.returncode == 2
    assert result.stderr.strip() == f"detect.py: {empty}: the file is empty"
