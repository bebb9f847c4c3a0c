"""fleet.ami: an AMI id (pinned) or an SSM parameter name (resolved at each deploy); nothing else."""

from __future__ import annotations

import pytest
from constructs.proxy_fleet import AL2023_PARAMETER
from pydantic import ValidationError

from config.settings import FleetConfig


def test_default_is_amazon_linux_2023_latest_as_the_fleet_resolves_it() -> None:
    assert FleetConfig().ami == AL2023_PARAMETER


@pytest.mark.parametrize(
    "ami",
    [
        "ami-0123abcd",
        "ami-0123456789abcdef0",
        "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-x86_64",
        "/golden/aigw/al2023-2026.11.01",
    ],
)
def test_an_ami_id_or_a_parameter_name_is_accepted(ami: str) -> None:
    assert FleetConfig(ami=ami).ami == ami


@pytest.mark.parametrize(
    "ami",
    [
        "ami-0123",  # too short
        "ami-0123456789abcdef",  # 16 hex digits
        "ami-0123456789ABCDEF0",  # AMI ids are lowercase
        "al2023",  # neither
        "aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",  # a parameter path starts with /
        "/with space",
        "",
    ],
)
def test_anything_else_is_refused_with_what_is_allowed(ami: str) -> None:
    with pytest.raises(ValidationError) as raised:
        FleetConfig(ami=ami)
    message = str(raised.value)
    assert f"{ami!r} is neither an AMI id (ami- and 8 or 17 lowercase hex digits)" in message
    assert "nor an SSM parameter name (/path/to/parameter)" in message
