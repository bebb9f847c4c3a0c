"""Adoption from day one: weekly active Claude Code users by team against the seats each team bought, and what they
used (sessions, tokens, cost) by team, from the telemetry every signed-in client sends. In the field report weekly
active users fell from 89 % to 48 % before anyone looked."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_logs as logs
from constructs import Construct

WEEK_SECONDS = 7 * 86_400
# Claude Code's metrics as the gateway publishes them (gateway/telemetry.py), by team.
USAGE = (("ClaudeCodeSessions", "Sessions"), ("ClaudeCodeTokens", "Tokens"), ("ClaudeCodeCostUsd", "Cost (USD)"))


class AdoptionDashboard(Construct):
    """Exposes `dashboard`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dashboard_name: str,
        telemetry_log_group: logs.ILogGroup,
        licensed_seats: Mapping[str, int],
        metrics_namespace: str,
        environment: str,
    ) -> None:
        super().__init__(scope, construct_id)
        seats = "\n".join(f"| {team} | {count} |" for team, count in sorted(licensed_seats.items()))
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=dashboard_name)
        self.dashboard.add_widgets(
            cloudwatch.LogQueryWidget(
                title="Weekly active Claude Code users by team",
                log_group_names=[telemetry_log_group.log_group_name],
                query_lines=[
                    "stats count_distinct(user) as weekly_active_users by team, bin(1w) as week",
                    "sort week desc, team",
                ],
                view=cloudwatch.LogQueryVisualizationType.TABLE,
                width=12,
                height=8,
            ),
            cloudwatch.TextWidget(
                markdown=f"### Licensed seats\n\n| team | seats |\n|---|---|\n{seats}\n\n"
                "Each team's share of its seats is a saved query (`claude-code-weekly-active-users-share-of-seats`).",
                width=6,
                height=8,
            ),
        )
        self.dashboard.add_widgets(
            *(
                cloudwatch.GraphWidget(
                    title=f"{title} per day by team",
                    left=[
                        cloudwatch.MathExpression(
                            expression=(
                                f'SEARCH(\'{{{metrics_namespace},Environment,Team}} MetricName="{metric}" '
                                f"Environment=\"{environment}\"', 'Sum', 86400)"
                            ),
                            label="",
                            period=Duration.days(1),
                        )
                    ],
                    width=8,
                    height=6,
                )
                for metric, title in USAGE
            )
        )
