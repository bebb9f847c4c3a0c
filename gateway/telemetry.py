"""Usage telemetry from every client: Claude Code's OTLP/HTTP exports (`POST /v1/metrics`, `/v1/logs`; protobuf or
JSON, gzip or not), authenticated with the same tokens as inference. Adoption could not be measured from week one
in the field report: weekly active users fell from 89 % to 48 % before anyone looked.

- Each data point of Claude Code's metrics becomes an embedded-metric line in the metrics file, by environment and
  team (the CloudWatch agent turns it into CloudWatch metrics), with the user as a property for the weekly-active
  queries. Sums are counted with delta temporality (what the managed settings ask clients for); cumulative points
  are reported back as rejected (OTLP's partial success), never silently dropped.
- Each event becomes one line in the telemetry file, shipped to its own KMS-encrypted log group; its strings pass
  the content policy first, kept as the audit trail keeps text (every match replaced by its rule's marker).
- Who it is about comes from the token: the user, e-mail and team in a payload are replaced, never believed.
- A payload is read whole before anything is written: a malformed one gets 400 and writes nothing. It is answered at
  once; the writes are queued, and if the queues cannot take all of it, 503 with Retry-After (the exporter retries)
  rather than make an inference request wait. `/v1/traces` is accepted and not kept (no client is asked for it).
"""

from __future__ import annotations

import json
import time
import zlib
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, NumberDataPoint
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from gateway.bodies import BodyChecker
from gateway.exchange import Exchange, read_body, refuse
from gateway.policy import ScanBudgetError
from gateway.settings import GatewaySettings
from gateway.sinks import JsonLinesSink

METRICS, LOGS, TRACES = "/v1/metrics", "/v1/logs", "/v1/traces"
PATHS = frozenset({METRICS, LOGS, TRACES})
PROTOBUF = "application/x-protobuf"
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_VALUE_CHARS = 2048
MAX_ATTRIBUTES = 64
# Claude Code's metrics, as CloudWatch metrics (name, unit).
CLAUDE_METRICS = {
    "claude_code.session.count": ("Sessions", "Count"),
    "claude_code.token.usage": ("Tokens", "Count"),
    "claude_code.cost.usage": ("CostUsd", "None"),
    "claude_code.lines_of_code.count": ("LinesOfCode", "Count"),
    "claude_code.commit.count": ("Commits", "Count"),
    "claude_code.pull_request.count": ("PullRequests", "Count"),
    "claude_code.active_time.total": ("ActiveSeconds", "Seconds"),
    "claude_code.code_edit_tool.decision": ("EditDecisions", "Count"),
}
METRIC_PREFIX = "ClaudeCode"
# Attributes a client sets about who it is: the token says that.
IDENTITY_KEYS = ("user.", "identity.", "organization.")


class MalformedError(ValueError):
    """The payload is not OTLP."""


class Telemetry:
    def __init__(
        self, settings: GatewaySettings, metrics: JsonLinesSink, events: JsonLinesSink, checker: BodyChecker
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.events = events
        self.checker = checker

    async def accept(self, request: Request, exchange: Exchange) -> Response:
        exchange.api = "otlp"
        path = request.url.path
        if request.method != "POST":
            return refuse(exchange, 405, "method_not_allowed", request.method, "POST only.", headers={"allow": "POST"})
        protobuf = request.headers.get("content-type", "").split(";")[0].strip() == PROTOBUF
        response: Message
        sinks: list[tuple[JsonLinesSink, list[dict[str, Any]]]]
        try:
            body = await _body(request, self.settings.server.body_idle_timeout_seconds)
            exchange.request_bytes = len(body)
            if path == METRICS:
                lines, rejected = self._metric_lines(_parse(body, ExportMetricsServiceRequest(), protobuf), exchange)
                metrics_response = ExportMetricsServiceResponse()
                if rejected:
                    metrics_response.partial_success.rejected_data_points = rejected
                    metrics_response.partial_success.error_message = (
                        f"{rejected} cumulative points not counted: aigw counts delta temporality "
                        "(OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta)"
                    )
                sinks, response = [(self.metrics, lines)], metrics_response
            elif path == LOGS:
                records = _parse(body, ExportLogsServiceRequest(), protobuf)
                sinks, response = (
                    [(self.events, await self._event_lines(records, exchange))],
                    ExportLogsServiceResponse(),
                )
            else:
                sinks, response = [], ExportTraceServiceResponse()
        except MalformedError as error:
            return refuse(exchange, 400, "malformed_otlp", path, f"The payload is not OTLP ({error}).")
        except ScanBudgetError:
            return refuse(exchange, 400, "policy_budget", "scan_budget_ms", "The events could not be checked in time.")
        if any(sink.room() < len(lines) for sink, lines in sinks):  # all of it, or none of it
            return refuse(
                exchange, 503, "busy", "telemetry_queue", "Telemetry is backed up; send it again shortly.",
                headers={"retry-after": "5"},
            )  # fmt: skip
        for sink, lines in sinks:
            for line in lines:
                sink.put(line)
        exchange.outcome = "telemetry_accepted"
        exchange.reason = f"{sum(len(lines) for _, lines in sinks)} lines"
        if protobuf:
            return Response(response.SerializeToString(), media_type=PROTOBUF)
        return JSONResponse(json_format.MessageToDict(response))

    def _metric_lines(self, export: Message, exchange: Exchange) -> tuple[list[dict[str, Any]], int]:
        assert isinstance(export, ExportMetricsServiceRequest)
        lines, rejected = [], 0
        for resource in export.resource_metrics:
            session = _attributes(resource.resource.attributes).get("session.id")
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    known = CLAUDE_METRICS.get(metric.name)
                    kind = metric.WhichOneof("data")
                    if known is None or kind not in ("sum", "gauge"):
                        continue
                    data = metric.sum if kind == "sum" else metric.gauge
                    cumulative = kind == "sum" and (
                        metric.sum.aggregation_temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
                    )
                    for point in data.data_points:
                        if cumulative:
                            rejected += 1
                            continue
                        lines.append(self._emf(known, point, session, exchange))
        return lines, rejected

    def _emf(self, metric: tuple[str, str], point: NumberDataPoint, session: Any, exchange: Exchange) -> dict[str, Any]:
        name, unit = METRIC_PREFIX + metric[0], metric[1]
        value = point.as_double if point.WhichOneof("value") == "as_double" else point.as_int
        attributes = _attributes(point.attributes)
        when = point.time_unix_nano // 1_000_000 or int(time.time() * 1000)
        return {
            "_aws": {
                "Timestamp": when,
                "CloudWatchMetrics": [
                    {
                        "Namespace": self.settings.metrics_namespace,
                        "Dimensions": [["Environment"], ["Environment", "Team"]],
                        "Metrics": [{"Name": name, "Unit": unit}],
                    }
                ],
            },
            "Environment": self.settings.environment,
            "Team": exchange.team,
            "User": exchange.user,
            "Source": "telemetry",
            "SessionId": str(session)[:128] if session else None,
            "Model": str(attributes.get("model", ""))[:128] or None,
            "Type": str(attributes.get("type", ""))[:64] or None,
            name: value,
        }

    async def _event_lines(self, export: Message, exchange: Exchange) -> list[dict[str, Any]]:
        assert isinstance(export, ExportLogsServiceRequest)
        events = []
        for resource in export.resource_logs:
            shared = _attributes(resource.resource.attributes)
            for scope in resource.scope_logs:
                for record in scope.log_records:
                    attributes = {**shared, **_attributes(record.attributes)}
                    attributes = {k: v for k, v in attributes.items() if not k.startswith(IDENTITY_KEYS)}
                    nanos = record.time_unix_nano or record.observed_time_unix_nano or time.time_ns()
                    events.append(
                        {
                            "time": datetime.fromtimestamp(nanos / 1e9, UTC).isoformat(timespec="milliseconds"),
                            "environment": self.settings.environment,
                            "user": exchange.user,
                            "team": exchange.team,
                            "event": str(attributes.pop("event.name", "") or _value(record.body))[:128],
                            "session_id": str(attributes.pop("session.id", ""))[:128] or None,
                            "attributes": dict(list(attributes.items())[:MAX_ATTRIBUTES]),
                        }
                    )
        kept, scan = await self.checker.recorded(events, "prompt", exchange.request_bytes)
        exchange.note_policy("prompt", scan)
        return list(kept)


async def _body(request: Request, idle_seconds: float) -> bytes:
    try:
        body = await read_body(request, MAX_BODY_BYTES, idle_seconds)
    except (TimeoutError, ClientDisconnect) as error:
        raise MalformedError(f"the body did not arrive ({type(error).__name__})") from error
    if body is None:
        raise MalformedError(f"over {MAX_BODY_BYTES} bytes")
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding == "gzip":
        try:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            plain = inflater.decompress(body, MAX_BODY_BYTES + 1)
        except zlib.error as error:
            raise MalformedError(f"not gzip: {error}") from error
        if len(plain) > MAX_BODY_BYTES or inflater.unconsumed_tail:
            raise MalformedError(f"over {MAX_BODY_BYTES} bytes once decompressed")
        return plain
    if encoding != "identity":
        raise MalformedError(f"content-encoding {encoding[:20]!r} is not gzip")
    return body


def _parse(body: bytes, message: Message, protobuf: bool) -> Message:
    try:
        if protobuf:
            message.ParseFromString(body)
        else:
            document = json.loads(body or b"{}")
            if not isinstance(document, dict):
                raise MalformedError("not a JSON object")
            # OTLP/JSON writes trace and span ids in hex where protobuf's JSON mapping wants base64: unused here.
            json_format.ParseDict(_without_ids(document), message, ignore_unknown_fields=True)
    except (DecodeError, json_format.ParseError, ValueError, RecursionError) as error:
        raise MalformedError(str(error)[:200] or type(error).__name__) from error
    return message


def _without_ids(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_ids(v) for k, v in node.items() if k not in ("traceId", "spanId", "trace_id", "span_id")}
    if isinstance(node, list):
        return [_without_ids(item) for item in node]
    return node


def _attributes(pairs: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for pair in pairs:
        assert isinstance(pair, KeyValue)
        found[pair.key[:128]] = _value(pair.value)
    return found


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind in ("array_value", "kvlist_value", "bytes_value"):
        found = json_format.MessageToDict(value)
        return json.dumps(found)[:MAX_VALUE_CHARS]
    plain = getattr(value, kind)
    return plain[:MAX_VALUE_CHARS] if isinstance(plain, str) else plain
