"""The audit records' way from their log group into the audit bucket, watched.

CloudWatch Logs (subscription filter) → Firehose (encrypted, decompressed to one JSON record per
line) → the audit bucket under `audit/YYYY/MM/DD/`; anything Firehose cannot process or deliver lands
under `errors/`, and an alarm fires when it does, or when delivery stops.

Every name and ARN here is built from the stream's name rather than read back from the stream, so
the roles and the filter name exactly one stream and depend on nothing but its creation.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct
from constructs.alerts_topic import topic_alarm
from constructs.audit_bucket import AuditBucket
from constructs.compliance import AWS_SOLUTIONS, acknowledge, logical_id_of
from constructs.data_retention import KEEP_DATA
from constructs.encrypted_log_group import EncryptedLogGroup
from constructs.project_key import ProjectKey

RECORDS_ROOT, ERRORS_ROOT = "audit/", "errors/"
ERRORS_FILTER = "DeliveryErrors"  # the audit bucket's request-metrics filter on errors/
# How long past the buffer interval a record may wait before DeliveryLagging fires.
LAG_ALLOWANCE_SECONDS = 900
DATE_PATH = "!{timestamp:yyyy}/!{timestamp:MM}/!{timestamp:dd}/"
RECORDS_PREFIX = f"{RECORDS_ROOT}{DATE_PATH}"
ERRORS_PREFIX = f"{ERRORS_ROOT}!{{firehose:error-output-type}}/{DATE_PATH}"
DELIVERY_LOG_STREAM = "S3Delivery"
FIVE_MINUTES = Duration.minutes(5)


class AuditDelivery(Construct):
    """Exposes `stream` (the Firehose stream), `subscription`, `delivery_errors` (Firehose's own error log)
    and `alarms`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        source: EncryptedLogGroup,
        audit_bucket: AuditBucket,
        key: ProjectKey,
        stream_name: str,
        topic: sns.ITopic,
        error_log_retention_days: int,
        buffer_mib: int = 64,
        buffer_seconds: int = 300,
    ) -> None:
        super().__init__(scope, construct_id)
        stack, bucket = Stack.of(self), audit_bucket.bucket
        stream_arn = stack.format_arn(
            service="firehose",
            resource="deliverystream",
            resource_name=stream_name,
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )

        self.delivery_errors = EncryptedLogGroup(
            self,
            "DeliveryErrors",
            log_group_name=f"/aws/kinesisfirehose/{stream_name}",
            retention_days=error_log_retention_days,
            key=key,
        )
        logs.LogStream(
            self,
            "DeliveryErrorStream",
            log_group=self.delivery_errors.log_group,
            log_stream_name=DELIVERY_LOG_STREAM,
            removal_policy=KEEP_DATA,
        )

        # Firehose's role: write objects into this bucket, and its own error log; nothing else.
        role = iam.Role(
            self,
            "DeliveryRole",
            assumed_by=iam.ServicePrincipal(
                "firehose.amazonaws.com", conditions={"StringEquals": {"sts:ExternalId": stack.account}}
            ),
            description=f"Firehose {stream_name}: writes audit records into the audit bucket",
        )
        prefixes = (f"{RECORDS_ROOT}*", f"{ERRORS_ROOT}*")
        policy = iam.ManagedPolicy(
            self,
            "DeliveryPolicy",
            description=f"Firehose {stream_name}: the audit bucket's audit/ and errors/ prefixes, its error log",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    actions=["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
                    resources=[bucket.bucket_arn],
                ),
                iam.PolicyStatement(
                    actions=["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"],
                    resources=[bucket.arn_for_objects(objects) for objects in prefixes],
                ),
                iam.PolicyStatement(
                    actions=["logs:PutLogEvents"],
                    resources=[f"{self.delivery_errors.log_group_arn}:log-stream:{DELIVERY_LOG_STREAM}"],
                ),
            ],
        )
        acknowledge(
            policy,
            *(f"{AWS_SOLUTIONS}-IAM5[Resource::<{logical_id_of(bucket)}.Arn>/{objects}]" for objects in prefixes),
            reason="Firehose names each object itself (date prefix plus its own unique suffix), so object "
            "access can only be scoped to the audit/ and errors/ prefixes of this one bucket.",
        )
        key.allow_bucket_writer(role, audit_bucket.arn)

        self.stream = firehose.CfnDeliveryStream(
            self,
            "Stream",
            delivery_stream_name=stream_name,
            delivery_stream_type="DirectPut",
            delivery_stream_encryption_configuration_input=firehose.CfnDeliveryStream.DeliveryStreamEncryptionConfigurationInputProperty(
                key_type="CUSTOMER_MANAGED_CMK", key_arn=key.key.key_arn
            ),
            extended_s3_destination_configuration=firehose.CfnDeliveryStream.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=bucket.bucket_arn,
                role_arn=role.role_arn,
                prefix=RECORDS_PREFIX,
                error_output_prefix=ERRORS_PREFIX,
                buffering_hints=firehose.CfnDeliveryStream.BufferingHintsProperty(
                    size_in_m_bs=buffer_mib, interval_in_seconds=buffer_seconds
                ),
                compression_format="GZIP",
                encryption_configuration=firehose.CfnDeliveryStream.EncryptionConfigurationProperty(
                    kms_encryption_config=firehose.CfnDeliveryStream.KMSEncryptionConfigProperty(
                        awskms_key_arn=key.key.key_arn
                    )
                ),
                cloud_watch_logging_options=firehose.CfnDeliveryStream.CloudWatchLoggingOptionsProperty(
                    enabled=True,
                    log_group_name=self.delivery_errors.log_group.log_group_name,
                    log_stream_name=DELIVERY_LOG_STREAM,
                ),
                # CloudWatch Logs sends gzip'd batches with metadata; the bucket gets the records themselves.
                processing_configuration=firehose.CfnDeliveryStream.ProcessingConfigurationProperty(
                    enabled=True,
                    processors=[
                        _processor("Decompression", CompressionFormat="GZIP"),
                        _processor("CloudWatchLogProcessing", DataMessageExtraction="true"),
                        _processor("AppendDelimiterToRecord"),
                    ],
                ),
            ),
        )
        self.stream.node.add_dependency(policy)

        # CloudWatch Logs' role: put records into this one stream. The trust is the one AWS documents for
        # Logs → Firehose subscriptions: the global service principal, for this account's logs in this region.
        subscription_role = iam.Role(
            self,
            "SubscriptionRole",
            assumed_by=iam.ServicePrincipal(
                "logs.amazonaws.com",
                conditions={
                    "StringLike": {"aws:SourceArn": f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:*"}
                },
            ),
            description=f"CloudWatch Logs: sends the audit log group to Firehose {stream_name}",
        )
        subscription_policy = iam.ManagedPolicy(
            self,
            "SubscriptionPolicy",
            description=f"CloudWatch Logs: put audit records into Firehose {stream_name}",
            roles=[subscription_role],
            statements=[
                iam.PolicyStatement(actions=["firehose:PutRecord", "firehose:PutRecordBatch"], resources=[stream_arn])
            ],
        )
        self.subscription = logs.CfnSubscriptionFilter(
            self,
            "Subscription",
            log_group_name=source.log_group.log_group_name,
            filter_pattern="",  # every record
            destination_arn=stream_arn,
            role_arn=subscription_role.role_arn,
        )
        self.subscription.add_resource_dependency(self.stream)
        self.subscription.node.add_dependency(subscription_policy)

        self.alarms = self._alarms(bucket, stream_name, buffer_seconds, topic)

    def _alarms(
        self, bucket: s3.Bucket, stream_name: str, buffer_seconds: int, topic: sns.ITopic
    ) -> list[cloudwatch.Alarm]:
        """Delivery stopped or lagging, and anything written under errors/ (an S3 request-metrics filter)."""
        bucket.add_metric(id=ERRORS_FILTER, prefix=ERRORS_ROOT)
        stream = {"DeliveryStreamName": stream_name}
        checks = [
            (
                "DeliveryFailing",
                cloudwatch.Metric(
                    namespace="AWS/Firehose", metric_name="DeliveryToS3.Success", dimensions_map=stream,
                    statistic="Minimum", period=FIVE_MINUTES,
                ),
                cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                1,
                "Firehose failed to deliver audit records to the audit bucket",
                "audit-delivery-failing",
            ),
            (
                "DeliveryLagging",
                cloudwatch.Metric(
                    namespace="AWS/Firehose", metric_name="DeliveryToS3.DataFreshness", dimensions_map=stream,
                    statistic="Maximum", period=FIVE_MINUTES,
                ),
                cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                buffer_seconds + LAG_ALLOWANCE_SECONDS,
                "audit records have waited 15 minutes past the buffer interval for delivery to the audit bucket",
                "audit-delivery-lagging",
            ),
            (
                "RecordsInErrorPrefix",
                cloudwatch.Metric(
                    namespace="AWS/S3", metric_name="PutRequests",
                    dimensions_map={"BucketName": bucket.bucket_name, "FilterId": ERRORS_FILTER},
                    statistic="Sum", period=FIVE_MINUTES,
                ),
                cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                1,
                "Firehose wrote audit records it could not process under errors/ in the audit bucket",
                "audit-records-in-the-errors-prefix",
            ),
        ]  # fmt: skip
        return [
            topic_alarm(
                self,
                name,
                topic=topic,
                metric=metric,
                threshold=threshold,
                description=description,
                runbook=runbook,
                comparison=comparison,
            )
            for name, metric, comparison, threshold, description, runbook in checks
        ]


def _processor(kind: str, **parameters: str) -> firehose.CfnDeliveryStream.ProcessorProperty:
    return firehose.CfnDeliveryStream.ProcessorProperty(
        type=kind,
        parameters=[
            firehose.CfnDeliveryStream.ProcessorParameterProperty(parameter_name=name, parameter_value=value)
            for name, value in parameters.items()
        ]
        or None,
    )
