"""TeamInferenceProfiles alone: one tagged copy of each model's shared profile per team, names Bedrock accepts."""

from __future__ import annotations

import re

from aws_cdk.assertions import Template
from constructs.team_inference_profiles import NAME_LIMIT, TeamInferenceProfiles, profile_name

from config import load_config
from tests.conftest import BareStack

BEDROCK_NAME = re.compile(r"^([0-9a-zA-Z][ _-]?)+$")  # AWS::Bedrock::ApplicationInferenceProfile's pattern
BEDROCK_DESCRIPTION = re.compile(r"^([0-9a-zA-Z:.][ _-]?)+$")


def test_names_fit_bedrocks_pattern_and_stay_unique_when_cut() -> None:
    assert (
        profile_name("prod", "payments", "eu.anthropic.claude-opus-5-5")
        == "aigw-prod-payments-eu-anthropic-claude-opus-5-5"
    )
    long_team = "onboarding-and-identity-platform"
    cut = {
        profile_name("prod", long_team, model)
        for model in ("eu.anthropic.claude-sonnet-4-5-20250929-v1:0", "eu.anthropic.claude-sonnet-4-5-20250929-v2:0")
    }
    assert len(cut) == 2
    for name in cut:
        assert len(name) == NAME_LIMIT and BEDROCK_NAME.fullmatch(name), name


def test_each_team_gets_a_tagged_copy_of_each_model(bare_stack: BareStack) -> None:
    models = load_config("dev").models
    profiles = TeamInferenceProfiles(bare_stack, "Teams", environment="dev", teams=["payments", "web"], models=models)
    template = Template.from_stack(bare_stack)
    found = template.find_resources("AWS::Bedrock::ApplicationInferenceProfile")
    assert len(found) == 2 * len(models) == len(profiles.ids)
    seen = set()
    for resource in found.values():
        properties = resource["Properties"]
        (tag,) = [t for t in properties["Tags"] if t["Key"] == "team"]
        seen.add((tag["Value"], properties["ModelSource"]["CopyFrom"]))
        assert BEDROCK_NAME.fullmatch(properties["InferenceProfileName"])
        assert BEDROCK_DESCRIPTION.fullmatch(properties["Description"])
    assert seen == {(team, model.arn) for team in ("payments", "web") for model in models}
    assert len(template.find_outputs("*")) == 2  # one per team
