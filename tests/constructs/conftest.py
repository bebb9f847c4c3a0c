"""Constructs that need a network are tested in a stack that has one, with every compliance pack on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aws_cdk import App, Environment, Stack
from aws_cdk.assertions import Template
from constructs.compliance import add_compliance_packs
from constructs.encrypted_log_group import EncryptedLogGroup
from constructs.private_network import PrivateNetwork
from constructs.project_key import ProjectKey

from tests.conftest import BareStack, cli_context


class NetworkedStack(Stack):
    """A private network over three AZs, its key and encrypted flow logs: what the app's stacks give."""

    def __init__(self, app: App) -> None:
        super().__init__(
            app, "Test", env=Environment(account="123456789012", region="eu-west-1"), analytics_reporting=False
        )
        self.key = ProjectKey(self, "Key", alias="alias/test", description="test")
        flow_logs = EncryptedLogGroup(self, "FlowLogs", log_group_name="/t/flow", retention_days=365, key=self.key)
        self.network = PrivateNetwork(
            self, "Network", availability_zones=BareStack.AZS, cidr="10.0.0.0/16", flow_log_group=flow_logs.log_group
        )

    @property
    def availability_zones(self) -> list[str]:
        return list(BareStack.AZS)


def synth_with_packs(outdir: Path, build: Callable[[NetworkedStack], object]) -> tuple[Template, Path]:
    """Build into a NetworkedStack, synthesize with the packs (synth fails on an error finding), and
    return the template and the folder holding validation-report.json."""
    # cdk.json's feature flags, as the app has them (S3 server access logs by bucket policy among them).
    app = App(outdir=str(outdir), context={**cli_context("dev"), "aws:cdk:bundling-stacks": []})
    stack = NetworkedStack(app)
    build(stack)
    add_compliance_packs(app)
    app.synth()
    return Template.from_stack(stack), outdir
