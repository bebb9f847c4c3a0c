"""CostStack: AWS Budgets and Cost Anomaly Detection as the slow backstop, and aigw's hourly detector
on the gateway's own usage metrics as the fast alarm; all alert the audit stack's topic."""

from __future__ import annotations

from constructs import Construct
from constructs.cost_allocation import TEAM_TAG
from constructs.cost_anomaly_detector import CostAnomalyDetector, DetectorSettings
from constructs.cost_anomaly_monitors import CostAnomalyMonitors
from constructs.team_budgets import TeamBudgets

from config import AigwConfig
from stacks.audit_stack import AuditStack
from stacks.environment_stack import EnvironmentStack


class CostStack(EnvironmentStack):
    def __init__(self, scope: Construct, construct_id: str, *, config: AigwConfig, audit: AuditStack) -> None:
        super().__init__(
            scope,
            construct_id,
            config=config,
            description="aigw cost governance: budgets, AWS cost anomaly detection, the hourly cost-anomaly function",
        )
        prefix = f"aigw-{config.environment}"
        topic = audit.alerts.topic
        team_budgets = config.budgets.per_team(config.teams)
        anomalies = config.cost_anomalies

        self.budgets = TeamBudgets(
            self,
            "Budgets",
            name_prefix=prefix,
            org_monthly_usd=config.budgets.org_monthly_usd,
            team_monthly_usd=team_budgets,
            topic=topic,
            emails=config.alerts.emails,
            tag_key=TEAM_TAG,
        )
        self.monitors = CostAnomalyMonitors(
            self,
            "AnomalyMonitors",
            name_prefix=prefix,
            topic=topic,
            impact_usd=anomalies.aws_impact_usd,
            impact_percent=anomalies.aws_impact_percent,
            service_monitor=anomalies.service_monitor,
            team_monitor=anomalies.team_monitor,
            tag_key=TEAM_TAG,
        )
        self.detector = CostAnomalyDetector(
            self,
            "CostAnomalyDetector",
            key=audit.key,
            topic=topic,
            environment=config.environment,
            metrics_namespace=config.gateway.metrics_namespace,
            team_monthly_usd=team_budgets,
            log_retention_days=config.operations.log_retention_days,
            settings=DetectorSettings(
                spike_mad_multiplier=anomalies.spike_mad_multiplier,
                spike_floor_usd=anomalies.spike_floor_usd,
                baseline_days=anomalies.baseline_days,
                concentration_share=anomalies.concentration_share,
                tag_key=TEAM_TAG,
            ),
        )
