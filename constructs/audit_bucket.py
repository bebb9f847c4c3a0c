"""The audit bucket: every prompt and completion record, encrypted, locked and kept a year.

The field report kept 90 days; a payments company owes 12 months of audit history with the latest
three immediately available (PCI DSS v4.0.1, 10.5.1). So: `hot_days` in S3 Standard (queryable at
once), then an archive storage class, and gone only after `retention_days`, which Object Lock
(governance mode) covers whole.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct
from constructs.bucket_events import publish_object_events
from constructs.compliance import NIST_R5, PCI_DSS, acknowledge
from constructs.data_retention import KEEP_DATA
from constructs.log_delivery_bucket import LogDeliveryBucket


class AuditBucket(Construct):
    """Exposes `bucket` (the audit records), `arn` (its ARN as text, from the name) and `access_logs`
    (its server access logs).

    The name is explicit: auditors find the bucket by it, a key policy can name it without depending
    on the bucket (which depends on the key), and a retained bucket is never silently replaced.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        key: kms.IKey,
        bucket_name: str,
        hot_days: int = 90,
        retention_days: int = 365,
    ) -> None:
        super().__init__(scope, construct_id)
        if retention_days < hot_days:
            raise ValueError(f"AuditBucket: retention_days ({retention_days}) is shorter than hot_days ({hot_days})")

        self.access_logs = LogDeliveryBucket(
            self,
            "AccessLogs",
            what="the audit bucket's server access logs",
            retention_days=retention_days,
        ).bucket

        self.arn = f"arn:{Aws.PARTITION}:s3:::{bucket_name}"
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            bucket_name=bucket_name,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            bucket_key_enabled=True,
            versioned=True,
            object_lock_enabled=True,
            object_lock_default_retention=s3.ObjectLockRetention.governance(Duration.days(retention_days)),
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="audit-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="hot-then-archive-then-expire",
                    transitions=[
                        s3.Transition(storage_class=s3.StorageClass.GLACIER, transition_after=Duration.days(hot_days))
                    ],
                    expiration=Duration.days(retention_days),
                    noncurrent_version_expiration=Duration.days(retention_days),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
            removal_policy=KEEP_DATA,
        )
        publish_object_events(self.bucket)
        # Uploads that ask for another encryption, or another key, are refused. A request that names none
        # (multipart parts never do) is left to the bucket's default encryption: the `Null: false` condition
        # limits each Deny to requests that carry the header (…IfExists would deny every one without it).
        for header, expected in (
            ("s3:x-amz-server-side-encryption", "aws:kms"),
            ("s3:x-amz-server-side-encryption-aws-kms-key-id", key.key_arn),
        ):
            condition = {"StringNotEquals": {header: expected}, "Null": {header: "false"}}
            self.bucket.add_to_resource_policy(
                iam.PolicyStatement(
                    effect=iam.Effect.DENY,
                    principals=[iam.AnyPrincipal()],
                    actions=["s3:PutObject"],
                    resources=[self.bucket.arn_for_objects("*")],
                    conditions=condition,
                )
            )
        acknowledge(
            self.bucket,
            f"{PCI_DSS}-S3BucketReplicationEnabled",
            f"{NIST_R5}-S3BucketReplicationEnabled",
            reason="Audit records stay in the environment's region (data residency); versioning and Object Lock "
            "in governance mode protect them against deletion for the whole retention period.",
        )
