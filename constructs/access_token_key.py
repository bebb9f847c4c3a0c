"""The key aigw's own access tokens are signed with, after a gateway sign-in: a KMS asymmetric key (ECC_NIST_P256,
SIGN_VERIFY). Its private half never leaves KMS; each gateway process signs through the VPC's KMS endpoint once per
sign-in or refresh, and verifies every token locally with the public half it reads at start."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct
from constructs.compliance import acknowledge
from constructs.project_key import deny_grants_but_for_aws_resources


class AccessTokenKey(Construct):
    """Exposes `key`, `key_arn` and `gateway_statements` (what a gateway's role needs: sign, read the public key)."""

    def __init__(self, scope: Construct, construct_id: str, *, alias: str, description: str) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            alias=alias,
            description=description,
            key_spec=kms.KeySpec.ECC_NIST_P256,
            key_usage=kms.KeyUsage.SIGN_VERIFY,
            # Nothing is encrypted with it: deleting it only ends the sessions it signed (everyone signs in again).
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
        )
        deny_grants_but_for_aws_resources(self.key)
        acknowledge(
            self.key,
            "AwsSolutions-KMS5",
            "NIST.800.53.R5-KMSBackingKeyRotationEnabled",
            "PCI.DSS.321-KMSBackingKeyRotationEnabled",
            reason=(
                "KMS rotates only symmetric keys. This asymmetric key signs hour-long access tokens and encrypts "
                "nothing; it is replaced by a new key (the gateway reads the public key at start, tokens signed by "
                "the old key end within their hour and their sessions sign in again)."
            ),
        )
        self.key_arn = self.key.key_arn
        self.gateway_statements = [
            iam.PolicyStatement(
                sid="SignAccessTokens",
                actions=["kms:Sign"],
                resources=[self.key.key_arn],
                conditions={"StringEquals": {"kms:SigningAlgorithm": "ECDSA_SHA_256", "kms:MessageType": "RAW"}},
            ),
            iam.PolicyStatement(sid="ReadAccessTokenKey", actions=["kms:GetPublicKey"], resources=[self.key.key_arn]),
        ]
