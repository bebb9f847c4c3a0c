"""AuditStack: the project key, the audit trail from log group to locked bucket, its saved queries,
and the alerts topic every stack's alarms go to. Deployed first: every other stack uses its key."""

from __future__ import annotations

from constructs import Construct
from constructs.alerts_topic import AlertsTopic
from constructs.audit_bucket import AuditBucket
from constructs.audit_dashboard import AuditDashboard
from constructs.audit_delivery import ERRORS_FILTER, LAG_ALLOWANCE_SECONDS, AuditDelivery
from constructs.audit_queries import AuditQueries
from constructs.cost_and_adoption_dashboard import CostAndAdoptionDashboard
from constructs.encrypted_log_group import EncryptedLogGroup
from constructs.project_key import ProjectKey

from config import AigwConfig
from stacks.environment_stack import EnvironmentStack


class AuditStack(EnvironmentStack):
    def __init__(self, scope: Construct, construct_id: str, *, config: AigwConfig) -> None:
        super().__init__(
            scope,
            construct_id,
            config=config,
            description="aigw audit trail: project key, audit log groups, Firehose to the locked audit bucket, queries",
        )
        prefix = f"aigw-{config.environment}"
        audit = config.audit

        self.key = ProjectKey(
            self, "ProjectKey", alias=f"alias/{prefix}", description=f"{prefix}: logs, audit records, alerts, secrets"
        )
        self.alerts = AlertsTopic(self, "Alerts", key=self.key, emails=config.alerts.emails)
        self.audit_logs = EncryptedLogGroup(
            self,
            "AuditLogs",
            log_group_name=f"/{prefix}/audit",
            retention_days=audit.hot_days,
            key=self.key,
            shorter_because=f"The immediately queryable part of the audit trail ({audit.hot_days} days, the field "
            f"report's period); every record is also delivered to the Object-Locked audit bucket and kept there "
            f"{audit.retention_days} days (audit.retention_days).",
        )
        self.metrics_logs = EncryptedLogGroup(
            self,
            "MetricsLogs",
            log_group_name=f"/{prefix}/metrics",
            retention_days=audit.hot_days,
            key=self.key,
            shorter_because="The gateway's embedded-metric events: CloudWatch keeps the metrics extracted from them "
            "for 15 months, and each request's facts are in its audit record, kept a year in the audit bucket.",
        )
        # Claude Code's telemetry events (prompts' metadata, tool decisions): kept as long as the hot audit trail.
        self.telemetry_logs = EncryptedLogGroup(
            self,
            "TelemetryLogs",
            log_group_name=f"/{prefix}/telemetry",
            retention_days=audit.hot_days,
            key=self.key,
            shorter_because="Claude Code's telemetry (per-user prompt metadata and tool decisions) is kept no longer "
            "than the queryable audit trail on purpose: data minimisation for personal data used only for adoption "
            "figures.",
        )
        self.audit_bucket = AuditBucket(
            self,
            "AuditBucket",
            key=self.key.key,
            bucket_name=f"{prefix}-audit-{config.account}-{config.region}",
            hot_days=audit.hot_days,
            retention_days=audit.retention_days,
        )
        self.delivery = AuditDelivery(
            self,
            "AuditDelivery",
            source=self.audit_logs,
            audit_bucket=self.audit_bucket,
            key=self.key,
            stream_name=f"{prefix}-audit",
            topic=self.alerts.topic,
            error_log_retention_days=config.operations.log_retention_days,
            buffer_mib=audit.delivery_buffer_mib,
            buffer_seconds=audit.delivery_buffer_seconds,
        )
        self.queries = AuditQueries(
            self,
            "Queries",
            folder=prefix,
            audit_log_group=self.audit_logs.log_group,
            metrics_log_group=self.metrics_logs.log_group,
            licensed_seats=config.licensed_seats,
            telemetry_log_group=self.telemetry_logs.log_group,
        )
        self.cost_and_adoption = CostAndAdoptionDashboard(
            self,
            "CostAndAdoption",
            dashboard_name=f"{prefix}-cost-and-adoption",
            telemetry_log_group=self.telemetry_logs.log_group,
            licensed_seats=config.licensed_seats,
            team_budgets_usd=config.budgets.per_team(config.teams),
            metrics_namespace=config.gateway.metrics_namespace,
            environment=config.environment,
        )
        self.dashboard = AuditDashboard(
            self,
            "AuditDashboard",
            dashboard_name=f"{prefix}-audit",
            audit_log_group=self.audit_logs.log_group,
            stream_name=f"{prefix}-audit",
            bucket_name=self.audit_bucket.bucket.bucket_name,
            errors_filter_id=ERRORS_FILTER,
            freshness_alarm_seconds=audit.delivery_buffer_seconds + LAG_ALLOWANCE_SECONDS,
        )
