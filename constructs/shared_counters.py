"""The gateway fleet's shared counters: a Redis OSS replication group with a replica in another AZ."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct
from constructs.compliance import AWS_SOLUTIONS, CONTROL_TOWER, NIST_R5, acknowledge
from constructs.private_network import availability_zones_of, selected_subnets

# Not Redis's well-known 6379 (AwsSolutions-AEC5): one fewer thing a scanner inside the VPC guesses.
PORT = 6380


class SharedCounters(Construct):
    """Encrypted at rest (project key) and in transit (TLS required), AUTH token generated into
    Secrets Manager, automatic failover to the replica in another AZ, reachable only from `clients`.

    Exposes `address`, `port`, `auth_token` (the secret) for the gateway's settings and role.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        clients: ec2.ISecurityGroup,
        key: kms.IKey,
        node_type: str = "cache.t4g.small",
        engine_version: str = "7.1",
    ) -> None:
        super().__init__(scope, construct_id)
        azs = availability_zones_of(vpc, subnets)
        if len(azs) < 2:
            raise ValueError(f"SharedCounters needs subnets in at least 2 AZs for its replica, got {list(azs)}")

        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="aigw shared counters: Redis from the proxy fleet only",
            allow_all_outbound=False,
        )
        self.security_group.add_ingress_rule(clients, ec2.Port.tcp(PORT), "Redis (TLS) from the proxy fleet")
        self.auth_token = secretsmanager.Secret(
            self,
            "AuthToken",
            description="AUTH token of the aigw shared counters (Redis)",
            encryption_key=key,
            generate_secret_string=secretsmanager.SecretStringGenerator(password_length=64, exclude_punctuation=True),
            removal_policy=RemovalPolicy.DESTROY,
        )
        acknowledge(
            self.auth_token,
            f"{AWS_SOLUTIONS}-SMG4",
            f"{NIST_R5}-SecretsManagerRotationEnabled",
            reason="An ElastiCache AUTH token is rotated through ModifyReplicationGroup (ROTATE, then SET) while "
            "clients switch over; Secrets Manager's single-step rotation would lock the fleet out mid-way.",
        )
        subnet_group = elasticache.CfnSubnetGroup(
            self, "Subnets", description="aigw shared counters", subnet_ids=selected_subnets(vpc, subnets).subnet_ids
        )
        self.replication_group = elasticache.CfnReplicationGroup(
            self,
            "ReplicationGroup",
            replication_group_description="aigw rate-limit and budget counters",
            engine="redis",
            engine_version=engine_version,
            cache_node_type=node_type,
            num_cache_clusters=2,
            preferred_cache_cluster_a_zs=list(azs[:2]),
            automatic_failover_enabled=True,
            multi_az_enabled=True,
            port=PORT,
            cache_subnet_group_name=subnet_group.ref,
            security_group_ids=[self.security_group.security_group_id],
            at_rest_encryption_enabled=True,
            kms_key_id=key.key_arn,
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            auth_token=self.auth_token.secret_value.unsafe_unwrap(),  # a dynamic reference, resolved by CloudFormation
            auto_minor_version_upgrade=True,
            snapshot_retention_limit=15,
        )
        acknowledge(
            self.replication_group,
            f"{CONTROL_TOWER}::elasticache_repl_grp_rbac_auth_enabled_check",
            reason="One client, the proxy fleet, reaches Redis (its security group admits only the fleet's), over "
            "TLS, with the AUTH token from Secrets Manager; RBAC users would tell apart clients there are not. "
            "Command-level limits for the fleet's user are a possible hardening, noted for later.",
        )
        self.address = self.replication_group.attr_primary_end_point_address
        self.port = PORT
