"""aigw: the CDK app. One environment per synth, chosen with `-c env=NAME` (default: dev)."""

from __future__ import annotations

import sys

from aws_cdk import App
from constructs.alerts_topic import RUNBOOK_CONTEXT
from constructs.compliance import (
    REPORT_FILE,
    add_compliance_packs,
    record_packs,
    record_sources,
    unacknowledged_findings,
)
from constructs.cost_allocation import tag_for_cost_allocation

from config import AigwConfig, ConfigError, load_config, with_context
from stacks.audit_stack import AuditStack
from stacks.cost_stack import CostStack
from stacks.gateway_stack import GatewayStack
from stacks.network_stack import NetworkStack
from stacks.operations_stack import OperationsStack


def build(app: App, config: AigwConfig) -> None:
    """Every stack of one environment, tagged for cost allocation and checked by the compliance packs."""
    app.node.set_context(RUNBOOK_CONTEXT, config.operations.runbook_url)  # every alarm links its entry there
    audit = AuditStack(app, "Audit", config=config)
    network = NetworkStack(app, "Network", config=config, key=audit.key)
    gateway = GatewayStack(app, "Gateway", config=config, audit=audit, network=network)
    CostStack(app, "Cost", config=config, audit=audit)
    OperationsStack(app, "Operations", config=config, audit=audit, network=network, gateway=gateway)

    tag_for_cost_allocation(
        app,
        {"project": config.tags.project, "environment": config.environment, "cost-center": config.tags.cost_center},
    )
    add_compliance_packs(app)
    record_sources(app)  # where each construct and acknowledgment is written, for findings as SARIF


def main() -> None:
    app = App()
    try:
        config = load_config(app.node.try_get_context("env") or "dev")
        config = with_context(config, {"certificate_arn": app.node.try_get_context("certificate_arn")})
    except ConfigError as error:
        sys.exit(f"aigw: bad configuration, nothing was synthesized:\n{error}")
    build(app, config)
    try:
        assembly_dir = app.synth().directory
    except RuntimeError as error:
        if "ValidationFailed" not in str(error):
            raise
        sys.exit(f"aigw: compliance gate failed: findings above are not acknowledged ({app.outdir}/{REPORT_FILE})")
    record_packs(assembly_dir)
    findings = unacknowledged_findings(assembly_dir)
    if findings:
        sys.exit("aigw: compliance gate failed: unacknowledged findings:\n" + "\n".join(findings))


if __name__ == "__main__":
    main()
