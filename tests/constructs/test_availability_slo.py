"""AvailabilitySlo: each burn-rate alert's windows and threshold, as synthesized, against config/slo.py's arithmetic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template
from constructs import Construct
from constructs.alerts_topic import RUNBOOK_CONTEXT
from constructs.availability_slo import AvailabilitySlo, error_rate_expression
from constructs.compliance import unacknowledged_findings
from constructs.gateway_load_balancer import GatewayLoadBalancer

from config.slo import BURN_RATE_ALERTS, error_rate
from tests.constructs.conftest import NetworkedStack, synth_with_packs
from tests.constructs.test_gateway_load_balancer import CERTIFICATE

TARGET = 99.5


def build(stack: NetworkedStack) -> AvailabilitySlo:
    balancer = GatewayLoadBalancer(
        stack, "Gateway", vpc=stack.network.vpc, subnets=stack.network.workload_subnets,
        certificate_arn=CERTIFICATE, client_cidrs=["10.0.0.0/8"], target_port=8080, stream_seconds=630,
        deletion_protection=True,
    )  # fmt: skip
    topic = sns.Topic(stack, "Alerts", master_key=stack.key.key, enforce_ssl=True)
    operations = Construct(stack, "Ops")  # context is set on a construct before it has children
    operations.node.set_context(RUNBOOK_CONTEXT, "https://git.example.net/aigw/docs/runbook.md")
    return AvailabilitySlo(
        operations, "Slo", load_balancer=balancer.load_balancer,
        canary_name="aigw-dev-canary", target_percent=TARGET, topic=topic,
    )  # fmt: skip


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Template, Path]:
    return synth_with_packs(tmp_path_factory.mktemp("slo"), build)


def alarms(template: Template) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in template.find_resources("AWS::CloudWatch::Alarm").items()
    }


def test_zero_unacknowledged_findings(synthesized: tuple[Template, Path]) -> None:
    assert unacknowledged_findings(synthesized[1]) == []


@pytest.mark.parametrize("alert", BURN_RATE_ALERTS, ids=lambda alert: alert.name)
def test_each_window_alarms_at_the_threshold_the_slo_gives(synthesized: tuple[Template, Path], alert: Any) -> None:
    found = alarms(synthesized[0])
    for label, minutes in (("Long", alert.long_minutes), ("Short", alert.short_minutes)):
        (properties,) = [p for i, p in found.items() if i.startswith(f"OpsSlo{alert.name}{label}Window")]
        assert properties["Threshold"] == pytest.approx(alert.burn_rate * (1 - TARGET / 100))
        assert (properties["ComparisonOperator"], properties["EvaluationPeriods"]) == (
            "GreaterThanOrEqualToThreshold", 1,
        )  # fmt: skip
        assert properties["TreatMissingData"] == "notBreaching"
        (expression,) = [m for m in properties["Metrics"] if "Expression" in m]
        assert expression["Expression"] == error_rate_expression(with_canary=True)
        stats = {m["Id"]: m["MetricStat"] for m in properties["Metrics"] if "MetricStat" in m}
        # Every metric summed over the window itself: the long window is one data point of an hour, 6 h or 3 d.
        assert {stat["Period"] for stat in stats.values()} == {minutes * 60}
        assert {i: (s["Metric"]["MetricName"], s["Stat"]) for i, s in stats.items()} == {
            "elb5xx": ("HTTPCode_ELB_5XX_Count", "Sum"),
            "target5xx": ("HTTPCode_Target_5XX_Count", "Sum"),
            "requests": ("RequestCount", "Sum"),
            "canaryRuns": ("SuccessPercent", "SampleCount"),
            "canarySuccess": ("SuccessPercent", "Average"),
        }
        # Within CloudWatch's limits: a period under an hour may look back one day, any other seven.
        assert minutes * 60 <= (7 if minutes >= 60 else 1) * 86_400
        # The window alone tells nobody (the composite does); cdk-nag's finding on that is acknowledged.
        assert "AlarmActions" not in properties and "OKActions" not in properties


def test_the_composite_of_both_windows_notifies_alarm_and_ok_and_links_the_runbook(
    synthesized: tuple[Template, Path],
) -> None:
    composites = synthesized[0].find_resources("AWS::CloudWatch::CompositeAlarm")
    assert len(composites) == len(BURN_RATE_ALERTS)
    for alert in BURN_RATE_ALERTS:
        (composite,) = [c for i, c in composites.items() if i.startswith(f"OpsSlo{alert.name}")]
        properties = composite["Properties"]
        rule = "".join(part if isinstance(part, str) else "{}" for part in properties["AlarmRule"]["Fn::Join"][1])
        assert rule.count("ALARM(") == 2 and " AND " in rule, rule
        assert len(properties["AlarmActions"]) == len(properties["OKActions"]) == 1
        description = properties["AlarmDescription"]
        assert description.startswith(f"aigw {alert.severity.upper()}:"), description
        assert description.endswith(f"#slo-{alert.name.lower()}"), description
        assert "https://git.example.net/aigw/docs/runbook.md#" in description


def test_the_expression_is_the_arithmetic_the_tests_check() -> None:
    """The alarms' expression, evaluated with CloudWatch's IF and FILL (whose syntax is Python's), gives
    config.slo's error rate; a canary that did not run (no data) counts as nothing, not as failures."""

    def evaluate(**values: float | None) -> float:
        functions = {"IF": lambda c, a, b: a if c else b, "FILL": lambda x, d: d if x is None else x}
        return float(eval(error_rate_expression(with_canary=True), functions, values))

    measured = {"elb5xx": 3.0, "target5xx": 4.0, "requests": 1_000.0, "canaryRuns": 60.0, "canarySuccess": 95.0}
    assert evaluate(**measured) == pytest.approx(error_rate(3 + 4 + 60 * 0.05, 1_000 + 60))
    no_canary = {**measured, "canaryRuns": None, "canarySuccess": None, "elb5xx": None}
    assert evaluate(**no_canary) == pytest.approx(error_rate(4, 1_000))
