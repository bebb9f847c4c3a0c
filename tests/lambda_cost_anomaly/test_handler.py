"""The handler against moto (in-process, no network): CloudWatch metrics as the gateway emits them, Cost Explorer
answers queued in moto's backend, the findings table in DynamoDB, and the SNS topic read through an SQS queue.

moto's GetMetricData never pages and filters every datapoint for each query and hour, so the metrics here are
sparse (one hour a weekday); paging and batching are tested with stand-ins in test_sources.py. moto's Cost
Explorer answers from a queue, so a throttled call is made with botocore's Stubber instead."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import handler as handler_module
import pytest
from botocore.stub import Stubber
from handler import Clients, run
from moto import mock_aws
from moto.ce.models import ce_backends
from moto.core.models import DEFAULT_ACCOUNT_ID
from settings import Settings
from sources import run_lease

REGION = "eu-west-1"
NOW = datetime(2026, 3, 25, 10, 5, tzinfo=UTC)  # a Wednesday; the hours judged are 07:00-09:59
SPIKE_HOUR = datetime(2026, 3, 25, 9, tzinfo=UTC)
DAILY_USD = {"payments": 40.0, "search": 30.0, "mobile": 10.0, "tiny": 0.5}
CAPS = {"search": 100_000.0, "mobile": 100.0, "platform": 500.0}  # payments and tiny: found through ListMetrics


@dataclass
class World:
    settings: Settings
    clients: Clients
    sqs: Any
    queue_url: str
    ce_requests: list[dict[str, Any]] = field(default_factory=list)

    def run(self, now: datetime = NOW) -> dict[str, object]:
        return run(self.settings, self.clients, now)

    def messages(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                return out
            for message in got:
                out.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


def put_metrics(cloudwatch: Any) -> None:
    """One datapoint per team each weekday at 09:00 for five weeks (slightly varied, so the MAD is not zero),
    payments' last one ten times its usual; plus metrics that must be ignored."""
    data: list[dict[str, Any]] = []

    def point(name: str, value: float, at: datetime, dimensions: dict[str, str]) -> None:
        dims = [{"Name": k, "Value": v} for k, v in dimensions.items()]
        data.append({"MetricName": name, "Value": value, "Timestamp": at, "Dimensions": dims, "Unit": "None"})

    day = SPIKE_HOUR - timedelta(days=35)
    index = 0
    while day <= SPIKE_HOUR:
        if day.weekday() < 5:
            for team, usd in DAILY_USD.items():
                cost = usd * (1 + 0.04 * (index % 5 - 2))
                if team == "payments" and day == SPIKE_HOUR:
                    cost = usd * 10
                    point("InputTokens", 4_000_000, day + timedelta(minutes=20), {"Environment": "prod", "Team": team})
                    point("OutputTokens", 500_000, day + timedelta(minutes=20), {"Environment": "prod", "Team": team})
                point("EstimatedCostUsd", cost, day + timedelta(minutes=20), {"Environment": "prod", "Team": team})
            index += 1
        day += timedelta(days=1)
    # Another environment's team, and the environment-wide series: neither is a team of prod.
    point("EstimatedCostUsd", 9999.0, SPIKE_HOUR, {"Environment": "dev", "Team": "ghost"})
    point("EstimatedCostUsd", 9999.0, SPIKE_HOUR, {"Environment": "prod"})
    for first in range(0, len(data), 1000):
        cloudwatch.put_metric_data(Namespace="aigw", MetricData=data[first : first + 1000])


def ce_answer(today: datetime, amounts: dict[str, float]) -> dict[str, Any]:
    """What Cost Explorer says for March 1st up to `today`: each team's daily cost."""
    results = []
    day = datetime(2026, 3, 1, tzinfo=UTC)
    while day < today.replace(hour=0, minute=0):
        results.append(
            {
                "TimePeriod": {"Start": f"{day:%Y-%m-%d}", "End": f"{day + timedelta(days=1):%Y-%m-%d}"},
                "Total": {},
                "Groups": [
                    {"Keys": [f"team${team}"], "Metrics": {"UnblendedCost": {"Amount": str(usd), "Unit": "USD"}}}
                    for team, usd in amounts.items()
                ],
                "Estimated": False,
            }
        )
        day += timedelta(days=1)
    return {"ResultsByTime": results, "DimensionValueAttributes": []}


def queue_cost_explorer(*answers: dict[str, Any]) -> None:
    ce_backends[DEFAULT_ACCOUNT_ID]["aws"].cost_usage_results_queue.extend(answers)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(
            TableName="cost-anomaly",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.update_time_to_live(
            TableName="cost-anomaly", TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
        )
        sns = boto3.client("sns", region_name=REGION)
        topic = sns.create_topic(Name="cost-alerts")["TopicArn"]
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        put_metrics(cloudwatch)
        settings = Settings.from_env(
            {
                "ENVIRONMENT": "prod",
                "TABLE_NAME": "cost-anomaly",
                "TOPIC_ARN": topic,
                "TEAM_CAPS_JSON": json.dumps(CAPS),
                "CONCENTRATION_SHARE": "0.9",
            }
        )
        ce = boto3.client("ce", region_name=REGION)
        clients = Clients(cloudwatch=cloudwatch, ce=ce, dynamodb=dynamodb, sns=sns)
        built = World(settings, clients, sqs, queue_url)
        ce.meta.events.register(
            "provide-client-params.ce.GetCostAndUsage", lambda params, **_: built.ce_requests.append(params)
        )
        yield built


def logs(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


BILLED = {"payments": 35.0, "search": 30.0, "mobile": 3.0, "platform": 50.0}


def test_one_message_per_finding_with_figure_baseline_and_reason(world: World) -> None:
    queue_cost_explorer(ce_answer(NOW, BILLED))
    summary = world.run()
    assert summary["published"] == summary["findings"] == 4
    assert summary["suppressed_duplicates"] == 0 and summary["cost_explorer"] == "fresh"
    assert summary["teams"] == 5  # the capped teams and those ListMetrics found; not dev's ghost
    messages = {json.loads(m["Message"].split("\n\n", 1)[1])["finding_id"]: m for m in world.messages()}
    assert set(messages) == {
        "spike#payments#2026-03-25",
        "projection#mobile#2026-03",
        "projection#platform#2026-03",
        "concentration#top3#2026-03",
    }

    spike = messages["spike#payments#2026-03-25"]
    assert spike["Subject"] == "aigw prod: cost spike, team payments (2026-03-25)"
    assert spike["MessageAttributes"]["team"]["Value"] == "payments"
    text, details = spike["Message"].split("\n\n", 1)
    assert "Team: payments" in text
    assert "Figure: $400.00 spent in the hour from 2026-03-25 09:00 UTC" in text
    assert "Compared with: median $40.00" in text  # the weekday 09:00 median of the last four weeks
    assert "robust SDs" in text and "weekdays" in text
    facts = json.loads(details)
    assert facts["figure_usd"] == 400 and facts["baseline_usd"] == 40
    assert facts["InputTokens"] == 4_000_000 and facts["OutputTokens"] == 500_000

    mobile = messages["projection#mobile#2026-03"]["Message"]
    assert "monthly cap $100.00" in mobile and "gateway metrics" in mobile

    # platform sends no traffic through the gateway: only Cost Explorer sees its spend.
    platform = messages["projection#platform#2026-03"]["Message"]
    assert "Cost Explorer" in platform and "already above the cap $500.00" in platform

    concentration = messages["concentration#top3#2026-03"]["Message"]
    assert "above 90%" in concentration


def test_a_second_run_sends_nothing_again(world: World) -> None:
    queue_cost_explorer(ce_answer(NOW, BILLED))
    first = world.run()
    assert len(world.messages()) == first["published"] == 4
    second = world.run(NOW + timedelta(minutes=30))
    assert second["findings"] == 4
    assert second["published"] == 0 and second["suppressed_duplicates"] == 4
    assert world.messages() == []
    claim = world.clients.dynamodb.get_item(
        TableName="cost-anomaly", Key={"pk": {"S": "finding#spike#payments#2026-03-25"}}
    )["Item"]
    assert int(claim["expires_at"]["N"]) > NOW.timestamp() + 30 * 86400  # a TTL past the month it is about


def test_cost_explorer_is_called_at_most_once_a_day(world: World) -> None:
    tomorrow = NOW + timedelta(days=1)
    queue_cost_explorer(ce_answer(NOW, BILLED), ce_answer(tomorrow, BILLED))
    assert world.run()["cost_explorer"] == "fresh"
    assert world.run(NOW + timedelta(hours=1))["cost_explorer"] == "cached"
    assert world.run(NOW + timedelta(hours=5))["cost_explorer"] == "cached"
    assert len(world.ce_requests) == 1
    assert world.ce_requests[0]["TimePeriod"] == {"Start": "2026-03-01", "End": "2026-03-25"}
    assert world.ce_requests[0]["GroupBy"] == [{"Type": "TAG", "Key": "team"}]
    assert world.run(tomorrow)["cost_explorer"] == "fresh"
    assert len(world.ce_requests) == 2
    cached = world.clients.dynamodb.get_item(TableName="cost-anomaly", Key={"pk": {"S": "cost-explorer#daily"}})
    assert cached["Item"]["attempted_on"]["S"] == "2026-03-26"
    assert json.loads(cached["Item"]["answer"]["S"])["end"] == "2026-03-26"


def test_a_throttled_cost_explorer_is_logged_and_survived(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    stubber = Stubber(world.clients.ce)
    stubber.add_client_error("get_cost_and_usage", service_error_code="ThrottlingException", http_status_code=400)
    with stubber:
        summary = world.run()
    stubber.assert_no_pending_responses()
    assert summary["cost_explorer"] == "unavailable"
    events = logs(capsys.readouterr().out)
    throttled = [e for e in events if e["event"] == "cost_explorer_throttled"]
    assert len(throttled) == 1 and throttled[0]["code"] == "ThrottlingException"
    # The metric-based checks still ran and were sent; Cost Explorer's platform finding could not be.
    ids = {json.loads(m["Message"].split("\n\n", 1)[1])["finding_id"] for m in world.messages()}
    assert ids == {"spike#payments#2026-03-25", "projection#mobile#2026-03", "concentration#top3#2026-03"}
    # Not asked again today (each call is billed): the next hour's run does not call.
    assert world.run(NOW + timedelta(hours=1))["cost_explorer"] == "unavailable"


def test_a_malformed_cost_explorer_answer_is_logged_and_survived(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = ce_answer(NOW, BILLED)
    broken["ResultsByTime"][3]["Groups"][0]["Metrics"]["UnblendedCost"]["Amount"] = "a lot"
    queue_cost_explorer(broken)
    summary = world.run()
    assert summary["cost_explorer"] == "unavailable"
    assert summary["published"] == 3
    malformed = [e for e in logs(capsys.readouterr().out) if e["event"] == "cost_explorer_malformed"]
    assert len(malformed) == 1 and "a lot" in malformed[0]["problem"]
    assert len(world.messages()) == 3


def test_yesterdays_cached_answer_is_used_when_todays_call_fails(world: World) -> None:
    yesterday = NOW - timedelta(days=1)
    queue_cost_explorer(ce_answer(yesterday, BILLED))
    assert world.run(yesterday)["cost_explorer"] == "fresh"
    world.messages()
    stubber = Stubber(world.clients.ce)
    stubber.add_client_error("get_cost_and_usage", service_error_code="LimitExceededException")
    with stubber:
        assert world.run()["cost_explorer"] == "cached"


def test_a_failed_publish_gives_the_finding_back_for_the_next_run(world: World) -> None:
    queue_cost_explorer(ce_answer(NOW, BILLED))
    missing_topic = replace(world.settings, topic_arn=world.settings.topic_arn + "-gone")
    failed = run(missing_topic, world.clients, NOW)
    assert failed["published"] == 0 and failed["failed"] == 4
    retried = world.run(NOW + timedelta(minutes=30))
    assert retried["published"] == 4 and retried["suppressed_duplicates"] == 0
    assert len(world.messages()) == 4


def test_the_lambda_entry_point_reads_settings_once_and_the_events_time(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "ENVIRONMENT": "prod",
        "TABLE_NAME": "cost-anomaly",
        "TOPIC_ARN": world.settings.topic_arn,
        "TEAM_CAPS_JSON": json.dumps(CAPS),
        "CONCENTRATION_SHARE": "0.9",
    }.items():
        monkeypatch.setenv(name, value)
    queue_cost_explorer(ce_answer(NOW, BILLED))
    handler_module._runtime.cache_clear()
    try:
        event = {"source": "aws.events", "detail-type": "Scheduled Event", "time": "2026-03-25T10:05:00Z"}
        summary = handler_module.handler(event, None)
        assert summary["as_of"] == "2026-03-25T10:00:00+00:00"
        assert summary["published"] == 4
        monkeypatch.setenv("SPIKE_MAD_MULTIPLIER", "not read again")
        assert handler_module.handler(event, None)["suppressed_duplicates"] == 4
    finally:
        handler_module._runtime.cache_clear()


# --- One run at a time, without reserved concurrency ---------------------------------------------------------------


def test_a_second_run_while_one_holds_the_lease_is_skipped(world: World) -> None:
    dynamodb, table = world.clients.dynamodb, world.settings.table_name
    with run_lease(dynamodb, table, now=1000.0, seconds=300) as first:
        assert first is True
        with run_lease(dynamodb, table, now=1001.0, seconds=300) as second:
            assert second is False
    # Released when the first run ends: the next one runs.
    with run_lease(dynamodb, table, now=1002.0, seconds=300) as third:
        assert third is True


def test_a_lease_lapses_by_itself_so_a_killed_run_blocks_nobody(world: World) -> None:
    dynamodb, table = world.clients.dynamodb, world.settings.table_name
    killed = run_lease(dynamodb, table, now=1000.0, seconds=60)
    assert killed.__enter__() is True  # a run killed by its timeout never leaves the block
    with run_lease(dynamodb, table, now=1030.0, seconds=60) as during:
        assert during is False
    with run_lease(dynamodb, table, now=1061.0, seconds=60) as after:
        assert after is True
        killed.__exit__(None, None, None)  # the old run's release does not take the new run's lease away
        with run_lease(dynamodb, table, now=1062.0, seconds=60) as meanwhile:
            assert meanwhile is False


def test_the_entry_point_skips_when_another_run_holds_the_lease(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "ENVIRONMENT": "prod",
        "TABLE_NAME": "cost-anomaly",
        "TOPIC_ARN": world.settings.topic_arn,
        "TEAM_CAPS_JSON": json.dumps(CAPS),
    }.items():
        monkeypatch.setenv(name, value)
    handler_module._runtime.cache_clear()
    try:
        with run_lease(world.clients.dynamodb, "cost-anomaly", now=time.time(), seconds=300):
            summary = handler_module.handler({"time": "2026-03-25T10:05:00Z"}, None)
        assert summary == {"skipped": "another run is in progress"}
        assert world.messages() == []
    finally:
        handler_module._runtime.cache_clear()
