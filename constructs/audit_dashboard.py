"""The audit pipeline at a glance: records written by the gateway, delivered by Firehose to the locked bucket, how
late, and anything Firehose put under errors/. Its three alarms are on the same metrics (AuditDelivery)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_logs as logs
from constructs import Construct
from constructs.dashboard_widgets import graph

FIVE_MINUTES = Duration.minutes(5)


class AuditDashboard(Construct):
    """Exposes `dashboard`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dashboard_name: str,
        audit_log_group: logs.ILogGroup,
        stream_name: str,
        bucket_name: str,
        errors_filter_id: str,
        freshness_alarm_seconds: int,
    ) -> None:
        super().__init__(scope, construct_id)
        stream = {"DeliveryStreamName": stream_name}

        def firehose(metric: str, statistic: str, label: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/Firehose", metric_name=metric, dimensions_map=stream, statistic=statistic,
                period=FIVE_MINUTES, label=label,
            )  # fmt: skip

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=dashboard_name)
        self.dashboard.add_widgets(
            graph(
                "Delivery to the audit bucket: successful puts",
                "%",
                [
                    cloudwatch.MathExpression(
                        expression="100 * s",
                        using_metrics={"s": firehose("DeliveryToS3.Success", "Average", "success")},
                        period=FIVE_MINUTES,
                        label="successful (%)",
                    )
                ],
                maximum=100,
            ),
            graph(
                "Freshness: age of the oldest record not yet in the bucket",
                "seconds",
                [firehose("DeliveryToS3.DataFreshness", "Maximum", "oldest record")],
                annotations=[
                    cloudwatch.HorizontalAnnotation(value=freshness_alarm_seconds, label="alarm (DeliveryLagging)")
                ],
            ),
            graph(
                "Objects Firehose wrote under errors/",
                "objects",
                [
                    cloudwatch.Metric(
                        namespace="AWS/S3",
                        metric_name="PutRequests",
                        dimensions_map={"BucketName": bucket_name, "FilterId": errors_filter_id},
                        statistic="Sum",
                        period=FIVE_MINUTES,
                        label="errors/ objects",
                    )
                ],
            ),
        )
        self.dashboard.add_widgets(
            graph(
                "Audit records written by the gateway, and batches received and delivered by Firehose",
                "records",
                [
                    cloudwatch.Metric(
                        namespace="AWS/Logs",
                        metric_name="IncomingLogEvents",
                        dimensions_map={"LogGroupName": audit_log_group.log_group_name},
                        statistic="Sum",
                        period=FIVE_MINUTES,
                        label="written (log group)",
                    ),
                    # Firehose counts the subscription's batches of log events, not single events.
                    firehose("IncomingRecords", "Sum", "received by Firehose (batches)"),
                    firehose("DeliveryToS3.Records", "Sum", "delivered to the bucket (batches)"),
                ],
                width=24,
            ),
        )
