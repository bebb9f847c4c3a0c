"""The spend the checks read: the gateway's metrics in CloudWatch (hourly) and Cost Explorer (daily, once a day).

The parsers are plain functions over the APIs' answers, so malformed answers are tested without AWS.
"""

from __future__ import annotations

import contextlib
import json
import math
import uuid
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from detection import DAY, HOUR, Series
from jsonlog import log

COST_METRIC = "EstimatedCostUsd"
TOKEN_METRICS = ("InputTokens", "OutputTokens")
METRICS = (COST_METRIC, *TOKEN_METRICS)
MAX_QUERIES_PER_CALL = 500  # GetMetricData's limit: 166 teams x 3 metrics fit one (paginated) call
THROTTLED = {"ThrottlingException", "LimitExceededException", "TooManyRequestsException", "RequestLimitExceeded"}
CE_ITEM_KEY = "cost-explorer#daily"
RUN_LEASE_KEY = "lease#run"
CE_METRIC = "UnblendedCost"
CE_STALE_AFTER_DAYS = 2  # an older cached answer would project from a week that is no longer the last one


# --- CloudWatch -----------------------------------------------------------------------------------------------


def list_teams(cloudwatch: Any, namespace: str, environment: str) -> set[str]:
    """Teams with cost metrics in the last two weeks (what ListMetrics returns): a team with no cap is checked too."""
    teams: set[str] = set()
    for page in cloudwatch.get_paginator("list_metrics").paginate(
        Namespace=namespace,
        MetricName=COST_METRIC,
        Dimensions=[{"Name": "Environment", "Value": environment}],
    ):
        for metric in page.get("Metrics", []):
            dimensions = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
            # Only the [Environment, Team] dimension set; the gateway also emits [Environment] alone and others.
            if set(dimensions) == {"Environment", "Team"}:
                teams.add(dimensions["Team"])
    return teams


def metric_queries(
    teams: Sequence[str], namespace: str, environment: str
) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Query id -> (team, metric, query): one MetricStat per team and metric, the hourly Sum under the gateway's
    [Environment, Team] dimensions."""
    queries: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for index, team in enumerate(teams):
        for metric in METRICS:
            query_id = f"q{index}_{metric.lower()}"  # ids must start with a lower-case letter; team names may not
            query = {
                "Id": query_id,
                "MetricStat": {
                    "Metric": {
                        "Namespace": namespace,
                        "MetricName": metric,
                        "Dimensions": [
                            {"Name": "Environment", "Value": environment},
                            {"Name": "Team", "Value": team},
                        ],
                    },
                    "Period": int(HOUR.total_seconds()),
                    "Stat": "Sum",
                },
                "ReturnData": True,
            }
            queries[query_id] = (team, metric, query)
    return queries


@dataclass(frozen=True)
class Usage:
    """Hourly sums per team and metric from `start`, dense (a year of 200 teams' three metrics is 5 million
    datapoints: as datetime-keyed dicts that took most of a gigabyte), with each series' first hour with data."""

    start: datetime
    hours: int
    values: Mapping[str, Mapping[str, array[float]]]
    first: Mapping[str, Mapping[str, int]]

    def series(self, team: str, metric: str, end: datetime) -> Series | None:
        """From the first hour with data (see series_from_points) to `end`; None if there is none."""
        first = self.first.get(team, {}).get(metric)
        last = min(self.hours, math.ceil((end - self.start) / HOUR))
        if first is None or first >= last:
            return None
        return Series(start=self.start + first * HOUR, step=HOUR, values=self.values[team][metric][first:last])


def read_usage(
    cloudwatch: Any, teams: Sequence[str], namespace: str, environment: str, start: datetime, end: datetime
) -> tuple[Usage, int]:
    """All teams' hourly usage in [start, end) (both on the hour), and how many GetMetricData calls (pages) it took.

    One call holds every team up to GetMetricData's 500 queries; NextToken pages are followed."""
    by_id = metric_queries(teams, namespace, environment)
    queries = [query for _, _, query in by_id.values()]
    hours = math.ceil((end - start) / HOUR)
    values = {team: {metric: array("d", bytes(8 * hours)) for metric in METRICS} for team in teams}
    first: dict[str, dict[str, int]] = {team: {} for team in teams}
    origin = start.timestamp()
    calls = 0
    for batch in range(0, len(queries), MAX_QUERIES_PER_CALL):
        request: dict[str, Any] = {
            "MetricDataQueries": queries[batch : batch + MAX_QUERIES_PER_CALL],
            "StartTime": start,
            "EndTime": end,
            "ScanBy": "TimestampAscending",
        }
        while True:
            answer = cloudwatch.get_metric_data(**request)
            calls += 1
            for result in answer.get("MetricDataResults", []):
                team, metric, _ = by_id[result["Id"]]
                series, seen = values[team][metric], first[team]
                for timestamp, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=True):
                    index = int((_aware(timestamp).timestamp() - origin) // 3600)  # floored to its hour
                    if 0 <= index < hours:
                        series[index] += float(value)
                        if index < seen.get(metric, hours):
                            seen[metric] = index
            token = answer.get("NextToken")
            if not token:
                break
            request["NextToken"] = token
    return Usage(start=start, hours=hours, values=values, first=first), calls


def _aware(timestamp: datetime) -> datetime:
    return timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)


# --- Cost Explorer --------------------------------------------------------------------------------------------


class MalformedAnswerError(ValueError):
    pass


@dataclass(frozen=True)
class CostAnswer:
    """Daily cost per team from Cost Explorer, for the days in [start, end)."""

    fetched_on: date
    start: date
    end: date
    costs: Mapping[str, Mapping[date, float]]

    def series(self, team: str) -> Series:
        days = (self.end - self.start).days
        values = [0.0] * days
        for day, usd in self.costs.get(team, {}).items():
            values[(day - self.start).days] += usd
        return Series(start=_midnight(self.start), step=DAY, values=values)

    @property
    def as_of(self) -> datetime:
        return _midnight(self.end)

    def to_json(self) -> str:
        return json.dumps(
            {
                "fetched_on": self.fetched_on.isoformat(),
                "start": self.start.isoformat(),
                "end": self.end.isoformat(),
                "costs": {t: {d.isoformat(): usd for d, usd in days.items()} for t, days in self.costs.items()},
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str) -> CostAnswer:
        data = json.loads(raw)
        return cls(
            fetched_on=date.fromisoformat(data["fetched_on"]),
            start=date.fromisoformat(data["start"]),
            end=date.fromisoformat(data["end"]),
            costs={
                team: {date.fromisoformat(d): float(usd) for d, usd in days.items()}
                for team, days in data["costs"].items()
            },
        )


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def cost_explorer_window(today: date) -> tuple[date, date]:
    """From the 1st of the month (or a run-rate week back, if longer) to today, exclusive: complete days only."""
    start = min(today.replace(day=1), today - timedelta(days=7))
    return start, today


def parse_cost_and_usage(
    pages: Iterable[Mapping[str, Any]], tag_key: str, start: date, end: date
) -> dict[str, dict[date, float]]:
    """Team -> day -> USD from GetCostAndUsage answers grouped by the tag (group keys look like `team$payments`).

    Untagged spend (`team$`) belongs to no team and is left out; any other shape raises MalformedAnswerError."""
    costs: dict[str, dict[date, float]] = {}
    prefix = f"{tag_key}$"
    try:
        for page in pages:
            results = page["ResultsByTime"]
            if not isinstance(results, list):
                raise MalformedAnswerError("ResultsByTime is not a list")
            for result in results:
                day = date.fromisoformat(result["TimePeriod"]["Start"])
                if not start <= day < end:
                    raise MalformedAnswerError(f"a result for {day}, outside the {start}..{end} asked for")
                for group in result.get("Groups", []):
                    keys = group["Keys"]
                    if not isinstance(keys, list) or len(keys) != 1 or not str(keys[0]).startswith(prefix):
                        raise MalformedAnswerError(f"group keys {keys!r} are not one {prefix}VALUE")
                    team = str(keys[0])[len(prefix) :]
                    amount = float(group["Metrics"][CE_METRIC]["Amount"])
                    if not math.isfinite(amount):
                        raise MalformedAnswerError(f"amount {amount!r} for {team} on {day}")
                    if team:
                        costs.setdefault(team, {})
                        costs[team][day] = costs[team].get(day, 0.0) + amount
    except MalformedAnswerError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise MalformedAnswerError(f"{type(error).__name__}: {error}") from None
    return costs


def fetch_cost_and_usage(ce: Any, tag_key: str, start: date, end: date) -> list[dict[str, Any]]:
    """ONE GetCostAndUsage query (its NextPageToken pages followed), daily, grouped by the cost-allocation tag."""
    request: dict[str, Any] = {
        "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
        "Granularity": "DAILY",
        "Metrics": [CE_METRIC],
        "GroupBy": [{"Type": "TAG", "Key": tag_key}],
    }
    pages = []
    while True:
        page = ce.get_cost_and_usage(**request)
        pages.append(page)
        token = page.get("NextPageToken") if isinstance(page, dict) else None
        if not token:
            return pages
        request["NextPageToken"] = token


def daily_costs(ce: Any, dynamodb: Any, table: str, tag_key: str, today: date) -> tuple[CostAnswer | None, str]:
    """Cost Explorer's answer for this month, asked at most once a day (each call costs $0.01), and how it was got:
    "fresh", "cached", "stale" (too old to use), "unavailable".

    The day's call is claimed in the table with a conditional write before it is made, so concurrent or repeated
    runs never pay twice; a failed call is not retried until tomorrow and the last good answer is used meanwhile."""
    key = {"pk": {"S": CE_ITEM_KEY}}
    try:
        old = dynamodb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET attempted_on = :today",
            ConditionExpression="attribute_not_exists(attempted_on) OR attempted_on <> :today",
            ExpressionAttributeValues={":today": {"S": today.isoformat()}},
            ReturnValues="ALL_OLD",
        ).get("Attributes", {})
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        item = dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item", {})
        return _cached(item, today)

    start, end = cost_explorer_window(today)
    try:
        pages = fetch_cost_and_usage(ce, tag_key, start, end)
        answer = CostAnswer(
            fetched_on=today, start=start, end=end, costs=parse_cost_and_usage(pages, tag_key, start, end)
        )
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        event = "cost_explorer_throttled" if code in THROTTLED else "cost_explorer_failed"
        log(event, level="warning", code=code, message=str(error), retry_on=(today + DAY).isoformat())
        return _cached(old, today)
    except BotoCoreError as error:
        log("cost_explorer_failed", level="warning", message=str(error), retry_on=(today + DAY).isoformat())
        return _cached(old, today)
    except MalformedAnswerError as error:
        log("cost_explorer_malformed", level="warning", problem=str(error), retry_on=(today + DAY).isoformat())
        return _cached(old, today)
    dynamodb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET answer = :answer",
        ExpressionAttributeValues={":answer": {"S": answer.to_json()}},
    )
    log("cost_explorer_fetched", teams=len(answer.costs), start=start.isoformat(), end=end.isoformat())
    return answer, "fresh"


def _cached(item: Mapping[str, Any], today: date) -> tuple[CostAnswer | None, str]:
    raw = item.get("answer", {}).get("S")
    if not raw:
        return None, "unavailable"
    answer = CostAnswer.from_json(raw)
    if (today - answer.fetched_on).days > CE_STALE_AFTER_DAYS:
        log("cost_explorer_stale", level="warning", fetched_on=answer.fetched_on.isoformat())
        return None, "stale"
    return answer, "cached"


# --- One run at a time -------------------------------------------------------------------------------------------


@contextlib.contextmanager
def run_lease(dynamodb: Any, table: str, now: float, seconds: float) -> Iterator[bool]:
    """Hold the table's run lease while the block runs: True if this run holds it, False if another does.

    One run at a time without reserved concurrency (which fails in accounts with a low unreserved quota): a
    conditional write takes the lease, which lapses by itself after `seconds` (the invocation's remaining time),
    so a run killed by its timeout never blocks the next one."""
    holder = uuid.uuid4().hex
    try:
        dynamodb.put_item(
            TableName=table,
            Item={
                "pk": {"S": RUN_LEASE_KEY},
                "holder": {"S": holder},
                "lease_until": {"N": f"{now + seconds:.3f}"},
                "expires_at": {"N": str(int(now + seconds) + 3600)},  # TTL tidies a lease that lapsed
            },
            ConditionExpression="attribute_not_exists(pk) OR lease_until < :now",
            ExpressionAttributeValues={":now": {"N": f"{now:.3f}"}},
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        yield False
        return
    try:
        yield True
    finally:
        with contextlib.suppress(ClientError):  # lapsed and taken by another run: theirs now
            dynamodb.delete_item(
                TableName=table,
                Key={"pk": {"S": RUN_LEASE_KEY}},
                ConditionExpression="holder = :holder",
                ExpressionAttributeValues={":holder": {"S": holder}},
            )
