"""docs/runbook.md: every alarm of the synthesized app links an entry of it, and every entry says what to do."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT, Synthesized

RUNBOOK = ROOT / "docs" / "runbook.md"
PARTS = ("What it means for developers", "Check first", "Mitigate", "Escalate")
ALARM_TYPES = ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm")


def slug(heading: str) -> str:
    """GitHub's (and GitLab's) anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def entries(path: Path = RUNBOOK) -> dict[str, str]:
    """Each `###` heading's anchor and its text, up to the next heading."""
    text = path.read_text()
    found = {}
    for match in re.finditer(r"^### ([^\n]+)\n(.*?)(?=^#{2,3} |\Z)", text, flags=re.M | re.S):
        found[slug(match[1])] = match[2]
    return found


def alarm_links(synthesized: Synthesized) -> dict[str, str]:
    """Each alarm's logical id and the runbook link at the end of its description (None: no link)."""
    links = {}
    for stack, logical_id, resource in synthesized.resources(*ALARM_TYPES):
        if resource["Properties"].get("AlarmActions"):
            description = resource["Properties"]["AlarmDescription"]
            match = re.search(r"Runbook: (\S+)#([a-z0-9-]+)$", description)
            links[f"{stack}/{logical_id}"] = match[0] if match else description
    return links


def test_the_slug_is_githubs() -> None:
    assert slug("SLO FastBurn") == "slo-fastburn"
    assert slug("Audit records in the errors prefix") == "audit-records-in-the-errors-prefix"
    assert slug("Vendor P99 above 30 s for 2.5 hours") == "vendor-p99-above-30-s-for-25-hours"


def test_every_alarm_that_notifies_links_an_entry_that_exists(each_environment: Synthesized) -> None:
    anchors = entries()
    base = each_environment.config.operations.runbook_url
    links = alarm_links(each_environment)
    assert len(links) >= 20  # the fleet's, the audit pipeline's, both functions', the SLO's and the canary's
    for alarm, link in links.items():
        assert link.startswith(f"Runbook: {base}#"), (alarm, link)
        assert link.rsplit("#", 1)[1] in anchors, (alarm, link)


def test_every_alarm_entry_says_what_it_means_what_to_check_how_to_mitigate_and_when_to_escalate(
    dev: Synthesized,
) -> None:
    anchors = entries()
    linked = {link.rsplit("#", 1)[1] for link in alarm_links(dev).values()}
    for anchor in linked:
        text = anchors[anchor]
        missing = [part for part in PARTS if f"**{part}.**" not in text]
        assert not missing, (anchor, missing)
        checks = text.split("**Check first.**", 1)[1].split("**Mitigate.**", 1)[0]
        assert "`" in checks, (anchor, "the checks name no query or command")


def test_the_three_incidents_of_the_report_are_worked_examples() -> None:
    anchors = entries()
    for incident in ("vendor-p99-above-30-s-for-25-hours", "a-pathological-prompt", "an-azs-network-degraded"):
        assert "**What aigw does on its own.**" in anchors[incident], incident
        assert "**What a person does.**" in anchors[incident], incident


@pytest.mark.parametrize("broken", ["#no-such-entry", ""])
def test_the_check_catches_a_link_to_nowhere(broken: str) -> None:
    anchors = entries()
    assert (broken.lstrip("#") in anchors) is False
