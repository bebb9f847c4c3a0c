"""Object-level events of a bucket to EventBridge (the account's default bus)."""

from __future__ import annotations

from aws_cdk import aws_s3 as s3


def publish_object_events(bucket: s3.Bucket) -> None:
    """Every object created, deleted or restored in `bucket` becomes an EventBridge event, for detections to match
    (an object removed from the audit bucket, say); events no rule matches cost nothing. Control Tower's
    CT.S3.PR.4 asks for event notifications. Set on the bucket itself: the L2's `event_bridge_enabled` would add
    a Lambda-backed custom resource to do the same."""
    resource = bucket.node.default_child
    assert isinstance(resource, s3.CfnBucket)
    resource.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
        event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(event_bridge_enabled=True)
    )
