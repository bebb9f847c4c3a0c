"""The proxy fleet as the whole app synthesizes it: the image the config names (a pinned AMI: the construct's
tests), and the root-volume alarm reading exactly the series the instances' CloudWatch agent publishes."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Template
from constructs.proxy_fleet import AGENT_CONFIG, GROUP_PLACEHOLDER

from tests.conftest import Synthesized


def fleet(template: Template) -> tuple[str, dict[str, Any]]:
    ((group_id, _),) = template.find_resources("AWS::AutoScaling::AutoScalingGroup").items()
    (launch,) = template.find_resources("AWS::EC2::LaunchTemplate").values()
    return group_id, dict(launch)["Properties"]["LaunchTemplateData"]


def user_data_text(data: dict[str, Any]) -> str:
    """The user data with each intrinsic written as <Ref> or <Fn::GetAtt> (inside JSON strings, so it still parses)."""
    parts = data["UserData"]["Fn::Base64"]["Fn::Join"][1]
    return "".join(part if isinstance(part, str) else f"<{next(iter(part))}>" for part in parts)


def test_root_volume_alarm_reads_what_the_agent_publishes(dev: Synthesized) -> None:
    template = dev.template("Gateway")
    group_id, data = fleet(template)
    script = user_data_text(data)
    agent = json.loads(script.split(f"cat > {AGENT_CONFIG} <<'AGENT'\n", 1)[1].split("\nAGENT\n", 1)[0])
    metrics = agent["metrics"]
    disk = metrics["metrics_collected"]["disk"]

    (alarm,) = [
        a["Properties"]
        for a in template.find_resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == f"disk_{disk['measurement'][0]}"
    ]
    dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
    assert alarm["Namespace"] == metrics["namespace"] == "CWAgent"
    assert dimensions == {"AutoScalingGroupName": {"Ref": group_id}, "path": disk["resources"][0]}
    # The agent publishes a series with exactly these dimensions: its roll-up per group and path.
    assert sorted(dimensions) in [sorted(d) for d in metrics["aggregation_dimensions"]]
    # ... and the group's name in it is the group's own, which each instance reads from its tags at boot.
    assert disk["append_dimensions"] == {"AutoScalingGroupName": GROUP_PLACEHOLDER}
    assert f'sed -i "s|{GROUP_PLACEHOLDER}|$group|" {AGENT_CONFIG}' in script
    assert (alarm["Threshold"], alarm["Statistic"], alarm["ComparisonOperator"]) == (
        80,
        "Maximum",
        "GreaterThanOrEqualToThreshold",
    )
    assert alarm["AlarmActions"] and alarm["OKActions"] == alarm["AlarmActions"]


def test_default_image_is_the_configured_parameter(dev: Synthesized) -> None:
    _, data = fleet(dev.template("Gateway"))
    parameter = dev.template_json("Gateway")["Parameters"][data["ImageId"]["Ref"]]
    assert parameter["Default"] == dev.config.fleet.ami
    assert parameter["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"
