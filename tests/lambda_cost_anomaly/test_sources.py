"""Reading the APIs' answers: GetMetricData's pages and batches, Cost Explorer's groups, and malformed answers.

These use small stand-in clients: moto's GetMetricData never pages (no NextToken) and takes no 500-query limit."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sources import (
    METRICS,
    CostAnswer,
    MalformedAnswerError,
    fetch_cost_and_usage,
    metric_queries,
    parse_cost_and_usage,
    read_usage,
)

T0 = datetime(2026, 11, 2, tzinfo=UTC)
NOV = (date(2026, 11, 1), date(2026, 11, 3))


class PagedCloudWatch:
    """Answers each query with one datapoint per hour, handing out at most `page` results a call."""

    def __init__(self, page: int) -> None:
        self.page = page
        self.requests: list[dict[str, Any]] = []

    def get_metric_data(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        offset = int(request.get("NextToken", 0))
        queries = request["MetricDataQueries"]
        results = [
            {"Id": q["Id"], "Timestamps": [T0 + timedelta(minutes=30)], "Values": [1.5]}
            for q in queries[offset : offset + self.page]
        ]
        answer: dict[str, Any] = {"MetricDataResults": results}
        if offset + self.page < len(queries):
            answer["NextToken"] = str(offset + self.page)
        return answer


def test_one_query_per_team_and_metric_under_the_gateways_dimensions() -> None:
    queries = metric_queries(["payments", "risk team/β"], "aigw", "prod")
    assert len(queries) == 2 * len(METRICS)
    team, metric, query = queries["q1_estimatedcostusd"]
    assert (team, metric) == ("risk team/β", "EstimatedCostUsd")
    stat = query["MetricStat"]
    assert stat["Period"] == 3600 and stat["Stat"] == "Sum"
    assert stat["Metric"]["Namespace"] == "aigw"
    assert stat["Metric"]["Dimensions"] == [
        {"Name": "Environment", "Value": "prod"},
        {"Name": "Team", "Value": "risk team/β"},
    ]


def test_pages_are_followed_and_hours_are_floored() -> None:
    cloudwatch = PagedCloudWatch(page=4)
    usage, calls = read_usage(cloudwatch, ["a", "b", "c"], "aigw", "prod", T0, T0 + timedelta(hours=1))
    assert calls == 3  # 9 queries, 4 a page
    assert [r.get("NextToken") for r in cloudwatch.requests] == [None, "4", "8"]
    for team in ("a", "b", "c"):
        for metric in METRICS:
            series = usage.series(team, metric, T0 + timedelta(hours=1))
            assert series is not None and series.start == T0 and list(series.values) == [1.5]


def test_more_than_500_queries_are_split_into_batches() -> None:
    cloudwatch = PagedCloudWatch(page=10_000)
    teams = [f"team{i}" for i in range(200)]  # 600 queries
    usage, calls = read_usage(cloudwatch, teams, "aigw", "prod", T0, T0 + timedelta(hours=1))
    assert calls == 2
    assert [len(r["MetricDataQueries"]) for r in cloudwatch.requests] == [500, 100]
    series = usage.series("team199", "OutputTokens", T0 + timedelta(hours=1))
    assert series is not None and list(series.values) == [1.5]


def ce_page(*days: tuple[str, list[tuple[str, str]]]) -> dict[str, Any]:
    return {
        "ResultsByTime": [
            {
                "TimePeriod": {"Start": day, "End": day},
                "Groups": [
                    {"Keys": [key], "Metrics": {"UnblendedCost": {"Amount": amount, "Unit": "USD"}}}
                    for key, amount in groups
                ],
                "Total": {},
                "Estimated": True,
            }
            for day, groups in days
        ]
    }


def test_cost_explorer_groups_become_team_days() -> None:
    pages = [
        ce_page(("2026-11-01", [("team$payments", "12.5"), ("team$", "99"), ("team$risk", "1")])),
        ce_page(("2026-11-02", [("team$payments", "7.25")])),
    ]
    costs = parse_cost_and_usage(pages, "team", *NOV)
    assert costs == {"payments": {date(2026, 11, 1): 12.5, date(2026, 11, 2): 7.25}, "risk": {date(2026, 11, 1): 1.0}}


@pytest.mark.parametrize(
    "page",
    [
        {},
        {"ResultsByTime": "nope"},
        ce_page(("2026-11-01", [("payments", "1")])),  # no tag prefix
        ce_page(("2026-11-01", [("team$payments", "lots")])),
        ce_page(("2026-11-01", [("team$payments", "NaN")])),
        ce_page(("yesterday", [("team$payments", "1")])),
        ce_page(("2026-10-01", [("team$payments", "1")])),  # outside the window asked for
        {"ResultsByTime": [{"TimePeriod": {"Start": "2026-11-01"}, "Groups": [{"Keys": ["team$a"]}]}]},
    ],
)
def test_malformed_cost_explorer_answers_are_refused(page: dict[str, Any]) -> None:
    with pytest.raises(MalformedAnswerError):
        parse_cost_and_usage([page], "team", *NOV)


def test_cost_explorer_pages_are_followed_in_one_query() -> None:
    requests: list[dict[str, Any]] = []

    class CostExplorer:
        def get_cost_and_usage(self, **request: Any) -> dict[str, Any]:
            requests.append(request)
            return {"ResultsByTime": [], "NextPageToken": "p2"} if len(requests) == 1 else {"ResultsByTime": []}

    pages = fetch_cost_and_usage(CostExplorer(), "team", *NOV)
    assert len(pages) == 2
    assert requests[0] == {
        "TimePeriod": {"Start": "2026-11-01", "End": "2026-11-03"},
        "Granularity": "DAILY",
        "Metrics": ["UnblendedCost"],
        "GroupBy": [{"Type": "TAG", "Key": "team"}],
    }
    assert requests[1]["NextPageToken"] == "p2"


def test_a_cost_answer_survives_the_table_round_trip() -> None:
    answer = CostAnswer(date(2026, 11, 3), *NOV, {"payments": {date(2026, 11, 2): 7.25}})
    again = CostAnswer.from_json(answer.to_json())
    assert again == answer
    series = again.series("payments")
    assert list(series.values) == [0.0, 7.25] and series.start == datetime(2026, 11, 1, tzinfo=UTC)
    assert again.as_of == datetime(2026, 11, 3, tzinfo=UTC)


def test_a_series_starts_at_its_first_datapoint_and_gaps_are_no_spend() -> None:
    class Sparse:
        def get_metric_data(self, **request: Any) -> dict[str, Any]:
            return {
                "MetricDataResults": [
                    {
                        "Id": q["Id"],
                        "Timestamps": [T0 + timedelta(hours=2), T0 + timedelta(hours=5), T0 - timedelta(hours=1)],
                        "Values": [3.0, 4.0, 99.0],  # the last is before the window asked for: not counted
                    }
                    for q in request["MetricDataQueries"]
                ]
            }

    usage, _ = read_usage(Sparse(), ["a"], "aigw", "prod", T0, T0 + timedelta(hours=8))
    series = usage.series("a", "EstimatedCostUsd", T0 + timedelta(hours=8))
    assert series is not None
    assert series.start == T0 + timedelta(hours=2)
    assert list(series.values) == [3.0, 0.0, 0.0, 4.0, 0.0, 0.0]
    assert usage.series("a", "EstimatedCostUsd", T0 + timedelta(hours=2)) is None  # nothing before its first hour
