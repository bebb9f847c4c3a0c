"""The one reader of a cloud assembly that the audit report, SARIF, the diagram and the evidence bundle share."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import App, Environment, Stack, Stage
from aws_cdk import aws_sqs as sqs

from scripts import cloud_assembly, diagram


def test_stacks_inside_stages_are_read_with_their_templates(tmp_path: Path) -> None:
    app = App(outdir=str(tmp_path))
    Stack(app, "Top", env=Environment(account="123456789012", region="eu-west-1"))
    stage = Stage(app, "Prod", env=Environment(account="123456789012", region="eu-central-1"))
    sqs.Queue(Stack(stage, "Queues"), "Work")
    app.synth()

    found = {stack.name: stack for stack in cloud_assembly.stacks(tmp_path)}
    assert set(found) == {"Top", "Prod-Queues"}
    nested = found["Prod-Queues"]
    assert nested.template_file.startswith("assembly-Prod/") and (tmp_path / nested.template_file).is_file()
    assert nested.region == "eu-central-1"
    (queue,) = [r for r in nested.resources() if r.type == "AWS::SQS::Queue"]
    assert queue.path == "Prod/Queues/Work/Resource"
    assert "Prod-Queues" in diagram.dot(diagram.build(tmp_path))
