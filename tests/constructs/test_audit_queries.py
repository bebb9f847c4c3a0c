"""AuditQueries: which saved queries exist, where they look, and what the adoption ones compute."""

from __future__ import annotations

from typing import Any

from aws_cdk import aws_logs as logs
from aws_cdk.assertions import Template
from constructs.audit_queries import QUERIES, AuditQueries, Source, weekly_active_share

from tests.conftest import BareStack


def synth(seats: dict[str, int]) -> dict[str, dict[str, Any]]:
    stack = BareStack()
    audit = logs.LogGroup(stack, "Audit", log_group_name="/t/audit")
    metrics = logs.LogGroup(stack, "Metrics", log_group_name="/t/metrics")
    AuditQueries(stack, "Queries", folder="t", audit_log_group=audit, metrics_log_group=metrics, licensed_seats=seats)
    definitions = Template.from_stack(stack).find_resources("AWS::Logs::QueryDefinition").values()
    return {d["Properties"]["Name"]: d["Properties"] for d in definitions}


def test_the_six_questions_are_saved_in_the_environment_folder() -> None:
    queries = synth({"payments": 30, "data": 10})
    assert set(queries) == {f"t/{name}" for name in QUERIES} | {
        "t/weekly-active-users-share-of-seats",
        "t/weekly-active-users-share-of-seats/data",
        "t/weekly-active-users-share-of-seats/payments",
    }
    for name, (source, _) in QUERIES.items():
        (group,) = queries[f"t/{name}"]["LogGroupNames"]
        assert group["Ref"].startswith("Audit" if source is Source.AUDIT else "Metrics")


def test_adoption_compares_weekly_users_with_the_seats_of_the_team_or_the_organisation() -> None:
    queries = synth({"payments": 30, "data": 10})
    org = str(queries["t/weekly-active-users-share-of-seats"]["QueryString"])
    assert "count_distinct(user) * 100 / 40" in org and "filter" not in org
    team = str(queries["t/weekly-active-users-share-of-seats/payments"]["QueryString"])
    assert team.startswith('filter team = "payments"') and "* 100 / 30" in team
    assert "bin(1w)" in weekly_active_share(5)


def test_without_seats_there_is_no_adoption_query() -> None:
    assert not any("seats" in name for name in synth({}))


def test_counting_questions_read_the_metrics_lines_whose_counters_are_numbers() -> None:
    assert QUERIES["requests-and-rejections-by-team-per-day"][0] is Source.METRICS
    assert "sum(Rejections)" in QUERIES["requests-and-rejections-by-team-per-day"][1]
    assert QUERIES["errors-and-breaker-openings"][0] is Source.METRICS
    assert '"vendor_degraded"' in QUERIES["errors-and-breaker-openings"][1]
