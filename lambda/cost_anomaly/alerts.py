"""One SNS message per finding, never the same finding twice: each is claimed in DynamoDB before it is sent."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from detection import Finding
from jsonlog import log

# Longer than any finding's period (a month) plus DynamoDB's TTL sweep lag (up to two days), so a claim outlives
# every run that could find the same thing again.
FINDING_TTL = timedelta(days=45)
TITLES = {"spike": "cost spike", "projection": "month-end spend over cap", "concentration": "spend concentration"}


@dataclass
class Outcome:
    published: int = 0
    duplicates: int = 0
    failed: int = 0


def subject(finding: Finding, environment: str) -> str:
    team = "top teams" if finding.kind == "concentration" else f"team {finding.team}"
    # SNS subjects: ASCII, at most 100 characters.
    text = f"aigw {environment}: {TITLES[finding.kind]}, {team} ({finding.period})"
    return text.encode("ascii", "replace").decode()[:100]


def body(finding: Finding, environment: str) -> str:
    teams = finding.details.get("teams")
    team = ", ".join(str(t) for t in teams) if isinstance(teams, list) else finding.team
    lines = [
        f"{TITLES[finding.kind].capitalize()} in aigw environment {environment}.",
        f"Team: {team}",
        f"Figure: {finding.figure}",
        f"Compared with: {finding.baseline}",
        f"Why it fired: {finding.reason}",
        f"Finding id: {finding.id} (sent once)",
    ]
    details = {
        "finding_id": finding.id,
        "kind": finding.kind,
        "team": finding.team,
        "period": finding.period,
        "environment": environment,
        "figure_usd": round(finding.figure_usd, 2),
        "baseline_usd": round(finding.baseline_usd, 2),
        **finding.details,
    }
    return "\n".join(lines) + "\n\n" + json.dumps(details, default=str)


def claim(dynamodb: Any, table: str, finding: Finding, now: datetime) -> bool:
    """True if this run is the first to claim the finding (a conditional put is atomic across runs)."""
    try:
        dynamodb.put_item(
            TableName=table,
            Item={
                "pk": {"S": f"finding#{finding.id}"},
                "kind": {"S": finding.kind},
                "claimed_at": {"S": now.isoformat()},
                "expires_at": {"N": str(int((now + FINDING_TTL).timestamp()))},
            },
            ConditionExpression="attribute_not_exists(pk)",
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True


def publish(
    findings: Iterable[Finding],
    *,
    sns: Any,
    dynamodb: Any,
    table: str,
    topic_arn: str,
    environment: str,
    now: datetime,
) -> Outcome:
    outcome = Outcome()
    for finding in findings:
        if not claim(dynamodb, table, finding, now):
            outcome.duplicates += 1
            log("finding_suppressed", finding_id=finding.id, why="already sent")
            continue
        try:
            sns.publish(
                TopicArn=topic_arn,
                Subject=subject(finding, environment),
                Message=body(finding, environment),
                MessageAttributes={
                    "kind": {"DataType": "String", "StringValue": finding.kind},
                    "team": {"DataType": "String", "StringValue": finding.team},
                },
            )
        except (ClientError, BotoCoreError) as error:
            # Give the claim back so the next run sends it; one failed publish must not hide the other findings.
            dynamodb.delete_item(TableName=table, Key={"pk": {"S": f"finding#{finding.id}"}})
            outcome.failed += 1
            log("finding_publish_failed", level="error", finding_id=finding.id, message=str(error))
            continue
        outcome.published += 1
        log("finding_published", finding_id=finding.id, figure_usd=round(finding.figure_usd, 2), reason=finding.reason)
    return outcome
