"""Cost-anomaly function, run hourly by EventBridge: reads each team's spend from the gateway's metrics and from
Cost Explorer, flags spikes, month-end projections over a cap and spend concentration, and sends one SNS message
per new finding.

Environment variables (read once per cold start; a bad value fails the start with the variable's name):

    ENVIRONMENT           required  the gateway's environment: the `Environment` dimension of its metrics
    TABLE_NAME            required  DynamoDB table: partition key `pk` (String), TTL attribute `expires_at`;
                                    holds sent findings and the day's Cost Explorer answer
    TOPIC_ARN             required  SNS topic the findings are published to
    METRICS_NAMESPACE     "aigw"    namespace of the gateway's EMF metrics (EstimatedCostUsd, Input/OutputTokens)
    TEAM_CAPS_JSON        "{}"      JSON object: team -> monthly cap in USD; a team without one is not projected
    CONCENTRATION_SHARE   0.5       fire when the top three teams' share of month-to-date spend is above it, (0, 1]
    SPIKE_MAD_MULTIPLIER  12        k: robust SDs (1.4826 x MAD) above the like-for-like median that count as a spike
    ABSOLUTE_FLOOR_USD    5         a spike must also be at least this many USD above the median
    BASELINE_DAYS         28        trailing window of the baseline, 28..455 days
    COST_TAG_KEY          "team"    the cost-allocation tag Cost Explorer groups by

AWS calls (for the function's role):

    cloudwatch:ListMetrics, cloudwatch:GetMetricData    Resource "*" (neither supports resource-level permissions)
    ce:GetCostAndUsage                                  Resource "*"; at most one query a day
    dynamodb:GetItem, PutItem, UpdateItem, DeleteItem   the table (also its run lease: one run at a time)
    sns:Publish                                         the topic (and kms:GenerateDataKey*, kms:Decrypt on its key
                                                        if the topic is encrypted with a customer key)

The event's `time` (EventBridge schedules carry one) is the run's clock, so a replayed event judges the same hours.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from alerts import publish
from detection import (
    DAY,
    HOUR,
    RUN_RATE_DAYS,
    Finding,
    concentration_finding,
    detect_spikes,
    merge_findings,
    month_bounds,
    project_month_end,
    projection_finding,
    spike_findings,
)
from jsonlog import log
from settings import Settings
from sources import COST_METRIC, TOKEN_METRICS, Usage, daily_costs, list_teams, read_usage, run_lease

# The last few complete hours are judged on every run: a missed run or metrics that arrived late are still seen,
# and the findings table keeps what was already sent from being sent again.
EVALUATION_HOURS = 3


@dataclass(frozen=True)
class Clients:
    cloudwatch: Any
    ce: Any
    dynamodb: Any
    sns: Any

    @classmethod
    def default(cls) -> Clients:
        import boto3
        from botocore.config import Config

        return cls(
            cloudwatch=boto3.client("cloudwatch"),
            # No automatic retries: each Cost Explorer request is billed; a throttled day waits for tomorrow.
            ce=boto3.client("ce", config=Config(retries={"max_attempts": 1, "mode": "standard"})),
            dynamodb=boto3.client("dynamodb"),
            sns=boto3.client("sns"),
        )


@functools.cache
def _runtime() -> tuple[Settings, Clients]:
    return Settings.from_env(), Clients.default()


# Without a Lambda context (a local call), the lease lasts Lambda's longest timeout.
DEFAULT_LEASE_SECONDS = 900.0


def handler(event: Mapping[str, Any] | None, context: object) -> dict[str, object]:
    settings, clients = _runtime()
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    lease_seconds = remaining_ms() / 1000 if callable(remaining_ms) else DEFAULT_LEASE_SECONDS
    with run_lease(clients.dynamodb, settings.table_name, time.time(), lease_seconds) as held:
        if not held:
            log("run_skipped", level="warning", reason="another run holds the lease")
            return {"skipped": "another run is in progress"}
        return run(settings, clients, event_time(event))


def event_time(event: Mapping[str, Any] | None) -> datetime:
    raw = (event or {}).get("time")
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            log("event_time_unreadable", level="warning", time=raw)
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.now(UTC)


def run(settings: Settings, clients: Clients, now: datetime) -> dict[str, object]:
    as_of = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)  # end of the last complete hour
    month_start, _ = month_bounds(as_of)
    month = as_of.strftime("%Y-%m")
    evaluate_from = as_of - EVALUATION_HOURS * HOUR
    baseline_start = (evaluate_from - settings.baseline_days * DAY).replace(hour=0)
    start = min(baseline_start, month_start, as_of - RUN_RATE_DAYS * DAY)

    teams = sorted(set(settings.team_caps) | list_teams(clients.cloudwatch, settings.namespace, settings.environment))
    usage, calls = read_usage(clients.cloudwatch, teams, settings.namespace, settings.environment, start, as_of)

    findings: list[Finding | None] = []
    month_to_date: dict[str, float] = {}
    for team in teams:
        series = usage.series(team, COST_METRIC, as_of)
        if series is None:
            continue
        flags = detect_spikes(series, settings.spike_params, evaluate_from)
        findings += [_with_tokens(finding, usage, team, as_of) for finding in spike_findings(team, flags)]
        projection = project_month_end(series, as_of)
        month_to_date[team] = projection.month_to_date_usd
        if team in settings.team_caps:
            findings.append(projection_finding(team, projection, settings.team_caps[team], "gateway metrics"))
    if as_of - month_start >= DAY:  # a few hours of a new month say nothing about its shares
        findings.append(concentration_finding(month_to_date, settings.concentration_share, month, "gateway metrics"))

    answer, cost_explorer = daily_costs(
        clients.ce, clients.dynamodb, settings.table_name, settings.cost_tag_key, as_of.date()
    )
    if answer is not None and answer.as_of.strftime("%Y-%m") == month:
        billed: dict[str, float] = {}
        for team in answer.costs:
            projection = project_month_end(answer.series(team), answer.as_of)
            billed[team] = projection.month_to_date_usd
            if team in settings.team_caps:
                findings.append(projection_finding(team, projection, settings.team_caps[team], "Cost Explorer"))
        if answer.as_of - month_start >= DAY:
            findings.append(concentration_finding(billed, settings.concentration_share, month, "Cost Explorer"))

    found = merge_findings(f for f in findings if f is not None)
    outcome = publish(
        found,
        sns=clients.sns,
        dynamodb=clients.dynamodb,
        table=settings.table_name,
        topic_arn=settings.topic_arn,
        environment=settings.environment,
        now=now,
    )
    summary: dict[str, object] = {
        "as_of": as_of.isoformat(),
        "teams": len(teams),
        "findings": len(found),
        "published": outcome.published,
        "suppressed_duplicates": outcome.duplicates,
        "failed": outcome.failed,
        "cost_explorer": cost_explorer,
        "get_metric_data_calls": calls,
    }
    log("run_finished", summary=summary)
    return summary


def _with_tokens(finding: Finding, usage: Usage, team: str, as_of: datetime) -> Finding:
    """The tokens behind a spike's figure: more tokens means more use, the same tokens a dearer model."""
    hour = datetime.fromisoformat(str(finding.details["timestamp"]))
    start = hour.replace(hour=0) if finding.details["check"] == "day_to_date" else hour
    tokens: dict[str, object] = {}
    for metric in TOKEN_METRICS:
        series = usage.series(team, metric, as_of)
        tokens[metric] = int(series.between(start, hour + timedelta(hours=1))) if series else 0
    return dataclasses.replace(finding, details={**finding.details, **tokens})
