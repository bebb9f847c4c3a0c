"""Cost and adoption from day one: each team's spend against its budget, where the month is heading, which teams
take most of it, and who uses the assistant against the seats each team bought. In the field report three of 14
teams were 58 % of spend, unseen until week 7, and weekly active users fell from 89 % to 48 % before anyone looked.

Spend is the gateway's estimate at the configured prices (metric EstimatedCostUsd, by team); AWS's own bill by team
is in Cost Explorer and AWS Budgets (the cost stack)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_logs as logs
from constructs import Construct
from constructs.dashboard_widgets import graph

WEEK_SECONDS = 7 * 86_400
THIRTY_DAYS = Duration.days(30)
# The spend graphs: a bar per team, half the dashboard's width.
bars = partial(graph, view=cloudwatch.GraphWidgetView.BAR, width=12, height=7)
# Claude Code's metrics as the gateway publishes them (gateway/telemetry.py), by team.
USAGE = (("ClaudeCodeSessions", "Sessions", "sessions"), ("ClaudeCodeTokens", "Tokens", "tokens"))


class CostAndAdoptionDashboard(Construct):
    """Exposes `dashboard`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dashboard_name: str,
        telemetry_log_group: logs.ILogGroup,
        licensed_seats: Mapping[str, int],
        team_budgets_usd: Mapping[str, float],
        metrics_namespace: str,
        environment: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self._namespace, self._environment = metrics_namespace, environment
        seats = "\n".join(f"| {team} | {count} |" for team, count in sorted(licensed_seats.items()))
        budgets = "\n".join(f"| {team} | ${amount:,.0f} |" for team, amount in sorted(team_budgets_usd.items()))
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=dashboard_name)
        self.dashboard.add_widgets(
            bars(
                "Spend against each team's monthly budget, last 30 days",
                "% of budget",
                [
                    cloudwatch.MathExpression(
                        expression=f"100 * FILL(spend{index}, 0) / {amount:g}",
                        using_metrics={f"spend{index}": self._team_metric("EstimatedCostUsd", team, THIRTY_DAYS)},
                        period=THIRTY_DAYS,
                        label=team,
                    )
                    for index, (team, amount) in enumerate(sorted(team_budgets_usd.items()))
                ],
                annotations=[cloudwatch.HorizontalAnnotation(value=100, label="budget")],
            ),
            cloudwatch.TextWidget(
                markdown=f"### Monthly budgets (USD)\n\n| team | budget |\n|---|---|\n{budgets}\n\n"
                "Spend is the gateway's estimate at the configured prices; the bill by team is in Cost Explorer.",
                width=6,
                height=7,
            ),
        )
        self.dashboard.add_widgets(
            bars(
                "Projected 30-day spend per team at the last 7 days' rate",
                "USD",
                [self._by_team("EstimatedCostUsd", WEEK_SECONDS, scale=30 / 7)],
            ),
            bars(
                "Each team's share of spend, last 30 days",
                "%",
                [
                    cloudwatch.MathExpression(
                        expression="100 * spend / SUM(spend)",
                        using_metrics={"spend": self._by_team("EstimatedCostUsd", 30 * 86_400)},
                        period=THIRTY_DAYS,
                        label="",
                    )
                ],
                maximum=100,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.LogQueryWidget(
                title="Weekly active Claude Code users by team (people)",
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
            graph(
                "Tokens through the gateway per day by team",
                "tokens",
                [
                    self._by_team(metric, 86_400, label=f"{direction} ")
                    for metric, direction in (("InputTokens", "in"), ("OutputTokens", "out"))
                ],
            ),
            *(
                graph(f"Claude Code {title.lower()} per day by team", unit, [self._by_team(metric, 86_400)])
                for metric, title, unit in USAGE
            ),
        )

    def _team_metric(self, metric: str, team: str, period: Duration) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=self._namespace,
            metric_name=metric,
            dimensions_map={"Environment": self._environment, "Team": team},
            statistic="Sum",
            period=period,
        )

    def _by_team(self, metric: str, seconds: int, scale: float = 1, label: str = "") -> cloudwatch.MathExpression:
        search = (
            f'SEARCH(\'{{{self._namespace},Environment,Team}} MetricName="{metric}" '
            f"Environment=\"{self._environment}\"', 'Sum', {seconds})"
        )
        return cloudwatch.MathExpression(
            expression=search if scale == 1 else f"{search} * {scale:g}",
            label=label,
            period=Duration.seconds(seconds),
        )
