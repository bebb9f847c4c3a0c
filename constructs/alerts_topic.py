"""The alerts topic every alarm and notification of aigw goes to."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct
from constructs.project_key import ProjectKey


class AlertsTopic(Construct):
    """KMS-encrypted, TLS-only; each configured address is subscribed by e-mail."""

    def __init__(self, scope: Construct, construct_id: str, *, key: ProjectKey, emails: Sequence[str] = ()) -> None:
        super().__init__(scope, construct_id)
        key.allow_alert_publishers()  # alarms and Auto Scaling must be able to use the topic's key
        self.topic = sns.Topic(self, "Topic", master_key=key.key, enforce_ssl=True, display_name="aigw alerts")
        for email in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
