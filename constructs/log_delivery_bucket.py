"""A bucket that AWS itself delivers logs into (ALB access logs, S3 server access logs)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_s3 as s3
from constructs import Construct
from constructs.bucket_events import publish_object_events
from constructs.compliance import AWS_SOLUTIONS, CONTROL_TOWER, NIST_R5, PCI_DSS, acknowledge
from constructs.data_retention import KEEP_DATA


class LogDeliveryBucket(Construct):
    """Private, TLS-only, versioned, kept `retention_days`, retained on stack deletion; SSE-S3 because
    these deliveries cannot write with a customer-managed KMS key. Exposes `bucket`.

    The findings that follow from being a log destination are acknowledged here, on the bucket, with
    `what` ("the load balancer's access logs") naming what it receives.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        what: str,
        retention_days: int,
        object_ownership: s3.ObjectOwnership = s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=object_ownership,
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=Duration.days(retention_days), noncurrent_version_expiration=Duration.days(30)
                )
            ],
            removal_policy=KEEP_DATA,
        )
        publish_object_events(self.bucket)
        acknowledge(
            self.bucket,
            f"{AWS_SOLUTIONS}-S1",
            f"{PCI_DSS}-S3BucketLoggingEnabled",
            f"{NIST_R5}-S3BucketLoggingEnabled",
            f"{CONTROL_TOWER}::s3_bucket_logging_enabled_check",
            reason=f"This bucket is itself the destination of {what}; logging its object writes to another "
            "bucket would only log the log delivery.",
        )
        acknowledge(
            self.bucket,
            f"{PCI_DSS}-S3DefaultEncryptionKMS",
            f"{NIST_R5}-S3DefaultEncryptionKMS",
            f"{CONTROL_TOWER}::s3_bucket_default_encryption_kms_check",
            reason=f"AWS delivers {what} only into SSE-S3 (AES-256) buckets, not ones with a customer-managed KMS key.",
        )
        acknowledge(
            self.bucket,
            f"{CONTROL_TOWER}::s3_bucket_object_lock_enabled_check",
            reason=f"{what[0].upper()}{what[1:]} are diagnostics that expire after {retention_days} days, written only "
            "by AWS's log delivery (nothing else may write here); the record that must not change, what users sent "
            "and received, is in the Object-Locked audit bucket.",
        )
        acknowledge(
            self.bucket,
            f"{PCI_DSS}-S3BucketReplicationEnabled",
            f"{NIST_R5}-S3BucketReplicationEnabled",
            reason=f"{what[0].upper()}{what[1:]} are operational telemetry kept {retention_days} days in-region; "
            "the record of what users sent and received is the audit trail.",
        )
