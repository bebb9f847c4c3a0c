"""AuditBucket in a small app of its own, with every compliance pack on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Template
from constructs.audit_bucket import AuditBucket
from constructs.compliance import unacknowledged_findings

from tests.conftest import BareStack
from tests.constructs.conftest import NetworkedStack, synth_with_packs


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Template, Path]:
    def build(stack: NetworkedStack) -> AuditBucket:
        return AuditBucket(
            stack, "Audit", key=stack.key.key, bucket_name="aigw-test-audit", hot_days=90, retention_days=365
        )

    return synth_with_packs(tmp_path_factory.mktemp("audit"), build)


def audit_bucket(template: Template) -> dict[str, Any]:
    (bucket,) = [
        dict(b) for b in template.find_resources("AWS::S3::Bucket").values() if "ObjectLockEnabled" in b["Properties"]
    ]
    return bucket


def test_zero_unacknowledged_findings(synthesized: tuple[Template, Path]) -> None:
    assert unacknowledged_findings(synthesized[1]) == []


def test_kms_with_bucket_keys_versioned_locked_for_the_whole_retention(synthesized: tuple[Template, Path]) -> None:
    bucket = audit_bucket(synthesized[0])
    properties = bucket["Properties"]
    (encryption,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert encryption["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]["Fn::GetAtt"][1] == "Arn"
    assert encryption["BucketKeyEnabled"] is True
    assert properties["VersioningConfiguration"]["Status"] == "Enabled"
    retention = properties["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert retention == {"Mode": "GOVERNANCE", "Days": 365}
    assert all(properties["PublicAccessBlockConfiguration"].values())
    assert (
        bucket["DeletionPolicy"] == "RetainExceptOnCreate"
        and properties["LoggingConfiguration"]["DestinationBucketName"]
    )


def test_hot_then_archive_then_expire(synthesized: tuple[Template, Path]) -> None:
    (rule,) = audit_bucket(synthesized[0])["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rule["Transitions"] == [{"StorageClass": "GLACIER", "TransitionInDays": 90}]
    assert rule["ExpirationInDays"] == 365
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 365}
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}


def test_tls_only_and_no_upload_with_another_encryption(synthesized: tuple[Template, Path]) -> None:
    template = synthesized[0]
    policies = [dict(p)["Properties"] for p in template.find_resources("AWS::S3::BucketPolicy").values()]
    statements = [s for p in policies for s in p["PolicyDocument"]["Statement"]]
    text = json.dumps(statements)
    assert '"aws:SecureTransport": "false"' in text
    denies = {
        header: statement["Condition"]
        for statement in statements
        if statement["Effect"] == "Deny" and statement["Action"] == "s3:PutObject"
        for header in statement["Condition"].get("Null", {})
    }
    assert set(denies) == {"s3:x-amz-server-side-encryption", "s3:x-amz-server-side-encryption-aws-kms-key-id"}
    for header, condition in denies.items():
        # Only a request that names another encryption is denied; one that names none (multipart parts never
        # do) gets the default encryption. …IfExists would deny those too.
        assert condition["Null"] == {header: "false"}
        assert list(condition["StringNotEquals"]) == [header]
        assert not any(operator.endswith("IfExists") for operator in condition)
    assert denies["s3:x-amz-server-side-encryption"]["StringNotEquals"] == {
        "s3:x-amz-server-side-encryption": "aws:kms"
    }


def test_retention_shorter_than_the_hot_period_is_refused() -> None:
    stack = BareStack()
    with pytest.raises(ValueError, match=r"retention_days \(60\) is shorter than hot_days \(90\)"):
        AuditBucket(stack, "Audit", key=kms.Key(stack, "Key"), bucket_name="b", hot_days=90, retention_days=60)
