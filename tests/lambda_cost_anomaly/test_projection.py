"""Month-end projection against a cap, and concentration of spend in the top three teams."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from detection import (
    DAY,
    HOUR,
    Finding,
    Series,
    concentration_finding,
    merge_findings,
    month_bounds,
    project_month_end,
    projection_finding,
)

NOV_1 = datetime(2026, 11, 1, tzinfo=UTC)


def test_month_bounds() -> None:
    assert month_bounds(datetime(2026, 2, 14, 9, tzinfo=UTC)) == (
        datetime(2026, 2, 1, tzinfo=UTC),
        datetime(2026, 3, 1, tzinfo=UTC),
    )
    assert month_bounds(datetime(2026, 12, 31, 23, tzinfo=UTC))[1] == datetime(2027, 1, 1, tzinfo=UTC)


def test_projection_is_month_to_date_plus_the_weeks_run_rate() -> None:
    # $100 a day through October, $200 a day from November 1st; judged at the end of November 10th.
    start = datetime(2026, 10, 1, tzinfo=UTC)
    days = [100.0] * 31 + [200.0] * 10
    projection = project_month_end(Series(start, DAY, days), NOV_1 + 10 * DAY)
    assert projection.month_to_date_usd == 2000
    assert projection.run_rate_usd_per_day == 200  # last 7 days, all in November
    assert projection.days_left == 20
    assert projection.projected_usd == 6000


def test_projection_on_the_first_reaches_into_last_month_for_the_run_rate() -> None:
    start = datetime(2026, 10, 1, tzinfo=UTC)
    projection = project_month_end(Series(start, DAY, [70.0] * 31), NOV_1)
    assert projection.month_to_date_usd == 0
    assert projection.run_rate_usd_per_day == 70
    assert projection.projected_usd == 70 * 30


def test_projection_of_hourly_data_counts_partial_days() -> None:
    series = Series(NOV_1, HOUR, [1.0] * 36)  # $1 an hour for a day and a half
    projection = project_month_end(series, NOV_1 + 36 * HOUR)
    assert projection.month_to_date_usd == 36
    assert projection.run_rate_usd_per_day == 24  # 36 dollars over 1.5 days of history
    assert projection.days_left == pytest.approx(28.5)


def test_a_few_busy_hours_are_not_taken_for_a_day() -> None:
    projection = project_month_end(Series(NOV_1, HOUR, [50.0] * 3), NOV_1 + 3 * HOUR)
    assert projection.run_rate_usd_per_day == 150  # over one day, not 150 x 8 per day


def test_projection_finding_fires_above_the_cap_only() -> None:
    projection = project_month_end(Series(NOV_1, DAY, [100.0] * 10), NOV_1 + 10 * DAY)  # projects $3,000
    assert projection_finding("payments", projection, 3000.0, "gateway metrics") is None
    finding = projection_finding("payments", projection, 2500.0, "gateway metrics")
    assert finding is not None
    assert finding.id == "projection#payments#2026-11"
    assert finding.figure_usd == 3000 and finding.baseline_usd == 2500
    assert "cap $2,500.00" in finding.reason and "120%" in finding.reason
    assert finding.details["source"] == "gateway metrics"


def field_report_month() -> dict[str, float]:
    """14 teams, three of them 58% of the spend (the field report's figure)."""
    heavy = {"payments": 8400.0, "risk": 7900.0, "ledger": 7480.0}
    rest = {f"team{i}": (41000 - sum(heavy.values())) / 11 for i in range(11)}
    return {**heavy, **rest}


def test_concentration_of_the_field_report_fires_at_half() -> None:
    finding = concentration_finding(field_report_month(), 0.5, "2026-11", "Cost Explorer")
    assert finding is not None
    assert finding.id == "concentration#top3#2026-11"
    assert finding.details["teams"] == ["payments", "risk", "ledger"]
    assert finding.details["share"] == pytest.approx(0.58, abs=0.001)
    assert "58%" in finding.reason and "above 50%" in finding.reason


def test_concentration_below_the_threshold_does_not_fire() -> None:
    assert concentration_finding(field_report_month(), 0.6, "2026-11", "Cost Explorer") is None


def test_concentration_needs_more_teams_than_the_top_three() -> None:
    three = {"a": 1.0, "b": 1.0, "c": 1.0, "idle": 0.0}
    assert concentration_finding(three, 0.1, "2026-11", "gateway metrics") is None


def test_merge_keeps_the_worse_of_two_sources() -> None:
    def finding(figure: float, source: str) -> Finding:
        return Finding("projection", "payments", "2026-11", figure, 1000.0, "f", "b", "r", {"source": source})

    merged = merge_findings([finding(1200, "gateway metrics"), finding(1500, "Cost Explorer"), finding(900, "x")])
    assert len(merged) == 1 and merged[0].details["source"] == "Cost Explorer"
