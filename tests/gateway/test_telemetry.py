"""OTLP/HTTP telemetry into a running gateway, built with OpenTelemetry's own message classes (protobuf and JSON),
read back from the metrics file (embedded-metric lines by team) and the telemetry file (one line per event)."""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric, NumberDataPoint, Sum

from tests.gateway.conftest import AWS_KEY, GatewayFactory, RunningGateway, read_jsonl

DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
PROTOBUF = {"content-type": "application/x-protobuf"}


@pytest.fixture(scope="module")
def stack(make_stack: GatewayFactory) -> RunningGateway:
    return make_stack()


def value(plain: Any) -> AnyValue:
    return AnyValue(string_value=plain) if isinstance(plain, str) else AnyValue(int_value=plain)


def attrs(**values: Any) -> list[KeyValue]:
    return [
        KeyValue(
            key=k.replace("__", "."), value=AnyValue(string_value=v) if isinstance(v, str) else AnyValue(int_value=v)
        )
        for k, v in values.items()
    ]


def metrics(
    *series: tuple[str, float, AggregationTemporality.ValueType, dict[str, Any]],
) -> ExportMetricsServiceRequest:
    export = ExportMetricsServiceRequest()
    resource = export.resource_metrics.add()
    resource.resource.attributes.extend(attrs(session__id="sess-1", user__email="someone-else@example.com"))
    scope = resource.scope_metrics.add()
    for name, amount, temporality, point_attrs in series:
        point = NumberDataPoint(time_unix_nano=time.time_ns(), attributes=attrs(**point_attrs))
        if isinstance(amount, float):
            point.as_double = amount
        else:
            point.as_int = amount
        scope.metrics.append(Metric(name=name, sum=Sum(aggregation_temporality=temporality, data_points=[point])))
    return export


def post(stack: RunningGateway, path: str, content: bytes, token: str | None = None, **headers: str) -> httpx.Response:
    return httpx.post(
        stack.gateway.url + path,
        content=content,
        headers={"authorization": f"Bearer {token or stack.token(team='mobile', user='ana@example.com')}", **headers},
        timeout=10,
    )


def lines_for(stack: RunningGateway, path: Any, key: str, value: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [line for line in read_jsonl(path) if line.get(key) == value]
        if found:
            return found
        time.sleep(0.05)
    return []


def test_claude_code_metrics_become_cloudwatch_metrics_by_team(stack: RunningGateway) -> None:
    export = metrics(
        ("claude_code.session.count", 1, DELTA, {}),
        ("claude_code.token.usage", 1200, DELTA, {"type": "input", "model": "claude-opus-5-5"}),
        ("claude_code.cost.usage", 0.42, DELTA, {"model": "claude-opus-5-5"}),
        ("claude_code.lines_of_code.count", 30, CUMULATIVE, {"type": "added"}),  # not countable alone
        ("some.other.metric", 5, DELTA, {}),
    )
    response = post(stack, "/v1/metrics", export.SerializeToString(), **PROTOBUF)
    assert response.status_code == 200 and response.headers["content-type"] == "application/x-protobuf"
    answer = ExportMetricsServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_data_points == 1  # said, not silently dropped
    assert "delta" in answer.partial_success.error_message
    lines = lines_for(stack, stack.settings.metrics.path, "SessionId", "sess-1")
    assert {line["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] for line in lines} == {
        "ClaudeCodeSessions", "ClaudeCodeTokens", "ClaudeCodeCostUsd",
    }  # fmt: skip
    tokens = next(line for line in lines if "ClaudeCodeTokens" in line)
    assert (tokens["Team"], tokens["User"], tokens["ClaudeCodeTokens"], tokens["Type"]) == (
        "mobile",
        "ana@example.com",
        1200,
        "input",
    )  # fmt: skip — the token's user, not the payload's someone-else
    assert tokens["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Environment"], ["Environment", "Team"]]
    cost = next(line for line in lines if "ClaudeCodeCostUsd" in line)
    assert cost["ClaudeCodeCostUsd"] == pytest.approx(0.42)
    assert stack.audit(response.headers["x-request-id"])["outcome"] == "telemetry_accepted"


def test_json_and_gzip_are_read_too(stack: RunningGateway) -> None:
    export = metrics(("claude_code.commit.count", 2, DELTA, {}))
    export.resource_metrics[0].resource.attributes[0].value.string_value = "sess-json"
    body = json.dumps(json_format.MessageToDict(export)).encode()
    response = post(
        stack, "/v1/metrics", gzip.compress(body), **{"content-type": "application/json", "content-encoding": "gzip"}
    )
    assert (response.status_code, response.json()) == (200, {})
    (line,) = lines_for(stack, stack.settings.metrics.path, "SessionId", "sess-json")
    assert line["ClaudeCodeCommits"] == 2


def test_events_are_kept_one_line_each_with_the_token_s_identity_and_secrets_redacted(stack: RunningGateway) -> None:
    export = ExportLogsServiceRequest()
    resource = export.resource_logs.add()
    resource.resource.attributes.extend(attrs(session__id="sess-logs", user__email="spoofed@example.com"))
    record = LogRecord(
        time_unix_nano=time.time_ns(),
        body=AnyValue(string_value="claude_code.tool_result"),
        attributes=attrs(event__name="tool_result", tool_name="Bash", tool_input=f"export KEY={AWS_KEY}", user__id="x"),
    )
    resource.scope_logs.add().log_records.append(record)
    response = post(stack, "/v1/logs", export.SerializeToString(), **PROTOBUF)
    assert response.status_code == 200
    (event,) = lines_for(stack, stack.settings.telemetry.path, "session_id", "sess-logs")
    assert (event["event"], event["user"], event["team"]) == ("tool_result", "ana@example.com", "mobile")
    assert "user.email" not in event["attributes"] and "user.id" not in event["attributes"]
    assert AWS_KEY not in json.dumps(event) and "aws-access-key-id" in event["attributes"]["tool_input"]
    assert "spoofed" not in stack.settings.telemetry.path.read_text()


def test_malformed_otlp_is_refused_and_writes_nothing(stack: RunningGateway) -> None:
    def written() -> tuple[int, int]:  # the metrics file also has every request's own line: not telemetry's
        from_telemetry = [line for line in read_jsonl(stack.settings.metrics.path) if line.get("Source") == "telemetry"]
        return len(from_telemetry), len(read_jsonl(stack.settings.telemetry.path))

    before = written()
    for path, content, headers in (
        ("/v1/metrics", b"\xff\xff\xff not protobuf", PROTOBUF),
        ("/v1/logs", b'{"resourceLogs": "nope"}', {"content-type": "application/json"}),
        ("/v1/metrics", b"[1, 2]", {"content-type": "application/json"}),
        ("/v1/metrics", b"not gzip", {**PROTOBUF, "content-encoding": "gzip"}),
    ):
        response = post(stack, path, content, **headers)
        assert response.status_code == 400, (path, content)
        assert response.json()["outcome"] == "malformed_otlp"
    time.sleep(0.3)
    assert written() == before


def test_telemetry_needs_a_token_and_traces_are_accepted_but_not_kept(stack: RunningGateway) -> None:
    assert post(stack, "/v1/metrics", b"", token="not-a-token", **PROTOBUF).status_code == 401
    traces = post(stack, "/v1/traces", b"", **PROTOBUF)
    assert traces.status_code == 200
