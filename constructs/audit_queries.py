"""Saved CloudWatch Logs Insights queries: the questions people asked of the audit trail.

Questions about people (users, rules, models) read the audit records (gateway/app.py, `_record`);
counting questions read the gateway's metrics lines, whose counters are already 0 or 1 per request
(Logs Insights has no conditional to turn a comparison into a count).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

from aws_cdk import aws_logs as logs
from constructs import Construct

VENDOR_ERRORS = (
    "upstream_unavailable",
    "upstream_timeout",
    "vendor_degraded",
    "vendor_error",
    "stream_timeout",
    "busy",
)


class Source(Enum):
    AUDIT = "audit"
    METRICS = "metrics"
    TELEMETRY = "telemetry"


QUERIES: dict[str, tuple[Source, str]] = {
    "requests-and-rejections-by-team-per-day": (
        Source.METRICS,
        """\
stats sum(Requests) as requests, sum(Rejections) as rejections,
  sum(Rejections) * 100 / sum(Requests) as percent_rejected by Team, bin(1d) as day
| sort day desc, requests desc""",
    ),
    "policy-blocks-by-rule": (
        Source.AUDIT,
        """\
filter outcome in ["policy_blocked", "completion_blocked"]
| stats count(*) as blocks by reason as rules, outcome as where_blocked
| sort blocks desc""",
    ),
    "top-users-by-tokens": (
        Source.AUDIT,
        """\
stats sum(input_tokens + output_tokens) as tokens, sum(input_tokens) as input, sum(output_tokens) as output,
  sum(estimated_cost_usd) as cost_usd by user, team
| sort tokens desc
| limit 50""",
    ),
    "latency-p50-p99-by-model": (
        Source.AUDIT,
        """\
filter outcome = "ok"
| stats pct(latency_ms, 50) as p50_ms, pct(latency_ms, 99) as p99_ms, pct(first_byte_ms, 50) as first_byte_p50_ms,
  count(*) as requests by model
| sort p99_ms desc""",
    ),
    "errors-and-breaker-openings": (
        Source.METRICS,
        f"""\
filter Outcome in [{", ".join(f'"{outcome}"' for outcome in VENDOR_ERRORS)}] or BreakerOpen > 0
| stats count(*) as events, sum(BreakerOpen) as while_breaker_open by Outcome, bin(1h) as hour
| sort hour desc, events desc""",
    ),
}


def weekly_active_share(seats: int, team: str | None = None) -> str:
    """Distinct users per week against licensed seats: Logs Insights cannot join, so seats are in the query."""
    scope = f'filter team = "{team}"\n| ' if team else ""
    return (
        f"{scope}stats count_distinct(user) as weekly_active_users, count_distinct(user) * 100 / {seats} "
        f"as percent_of_{seats}_seats by bin(1w) as week\n| sort week desc"
    )


class AuditQueries(Construct):
    """Exposes `queries`: saved query name -> the resource. Names are `<folder>/<question>`, so the
    console files them in one folder per environment."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        folder: str,
        audit_log_group: logs.ILogGroup,
        metrics_log_group: logs.ILogGroup,
        licensed_seats: Mapping[str, int],
        telemetry_log_group: logs.ILogGroup | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        queries = dict(QUERIES)
        # Who sent requests (the audit trail), and who used Claude Code at all (its telemetry, from the first day
        # a signed-in client runs: sessions and prompts count even when nothing reaches the model).
        adoption = [("weekly-active-users-share-of-seats", Source.AUDIT)]
        if telemetry_log_group is not None:
            adoption.append(("claude-code-weekly-active-users-share-of-seats", Source.TELEMETRY))
        for name, source in adoption if licensed_seats else ():
            queries[name] = (source, weekly_active_share(sum(licensed_seats.values())))
            for team, seats in sorted(licensed_seats.items()):
                queries[f"{name}/{team}"] = (source, weekly_active_share(seats, team))
        groups = {Source.AUDIT: audit_log_group, Source.METRICS: metrics_log_group}
        if telemetry_log_group is not None:
            groups[Source.TELEMETRY] = telemetry_log_group
        self.queries = {
            f"{folder}/{name}": logs.CfnQueryDefinition(
                self,
                name.title().replace("-", "").replace("/", ""),
                name=f"{folder}/{name}",
                query_string=text,
                log_group_names=[groups[source].log_group_name],
            )
            for name, (source, text) in queries.items()
        }
