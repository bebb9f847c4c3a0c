"""The way to the vendor as the whole app synthesizes it: the PrivateLink endpoint, each team's application
inference profiles, and policies that allow invoking exactly the configured models through them."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Template

from tests.conftest import Synthesized

PROFILE = "AWS::Bedrock::ApplicationInferenceProfile"
INVOKE = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
EU_REGIONS = ["eu-central-1", "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-3"]


def resources(synthesized: Synthesized, resource_type: str) -> dict[str, Any]:
    return dict(synthesized.template("Gateway").find_resources(resource_type))


def team_profiles(synthesized: Synthesized) -> dict[tuple[str, str], str]:
    """(team tag, the profile it copies) -> the profile's logical id."""
    found = {}
    for logical_id, profile in resources(synthesized, PROFILE).items():
        tags = {tag["Key"]: tag["Value"] for tag in profile["Properties"]["Tags"]}
        found[(tags["team"], profile["Properties"]["ModelSource"]["CopyFrom"])] = logical_id
    return found


def arn_of(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "InferenceProfileArn"]}


def test_one_profile_per_team_and_model_copied_from_the_shared_one_and_tagged(each_environment: Synthesized) -> None:
    config = each_environment.config
    profiles = resources(each_environment, PROFILE)
    assert len(profiles) == len(config.teams) * len(config.vendor.models)
    assert set(team_profiles(each_environment)) == {(team, m.arn) for team in config.teams for m in config.models}
    names = set()
    for profile in profiles.values():
        properties = profile["Properties"]
        tags = {tag["Key"]: tag["Value"] for tag in properties["Tags"]}
        assert tags["project"] == config.tags.project and tags["cost-center"] == config.tags.cost_center
        assert tags["environment"] == config.environment
        assert properties["InferenceProfileName"].startswith(f"aigw-{config.environment}-{tags['team']}-")
        assert len(properties["InferenceProfileName"]) <= 64
        names.add(properties["InferenceProfileName"])
    assert len(names) == len(profiles)


def test_dev_profiles_copy_the_eu_system_profiles_of_this_account(dev: Synthesized) -> None:
    copied = {source for _, source in team_profiles(dev)}
    assert copied == {
        "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-opus-5-5",
        "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-haiku-4-5-20251001-v1:0",
    }


def test_each_team_budget_counts_exactly_its_own_profiles(each_environment: Synthesized) -> None:
    budgets = each_environment.template("Cost").find_resources("AWS::Budgets::Budget")
    team_filters = {
        budget["Properties"]["Budget"]["BudgetName"].rpartition("-team-")[2]: budget["Properties"]["Budget"][
            "CostFilters"
        ]
        for budget in budgets.values()
        if "-team-" in budget["Properties"]["Budget"]["BudgetName"]
    }
    assert set(team_filters) == set(each_environment.config.teams)
    tagged: dict[str, int] = {}
    for team, _ in team_profiles(each_environment):
        tagged[team] = tagged.get(team, 0) + 1
    for team, filters in team_filters.items():
        (key_value,) = filters["TagKeyValue"]
        key, _, value = key_value.removeprefix("user:").partition("$")
        assert (key, value) == ("team", team)  # the tag its profiles carry, with its value
        assert tagged[value] == len(each_environment.config.vendor.models)


def model_policies(synthesized: Synthesized) -> list[list[dict[str, Any]]]:
    return [
        policy["Properties"]["PolicyDocument"]["Statement"]
        for policy in resources(synthesized, "AWS::IAM::ManagedPolicy").values()
        if policy["Properties"]["Description"] == "aigw proxy instances: invoke a model"
    ]


def expected_statements(synthesized: Synthesized, model_index: int) -> tuple[list[Any], list[str]]:
    """The profiles (the shared one and each team's) and the models in their Regions, for one configured model."""
    route = synthesized.config.models[model_index]
    profiles = team_profiles(synthesized)
    teams = [arn_of(profiles[(team, route.arn)]) for team in synthesized.config.teams]
    return [route.arn, *teams], list(route.model_arns)


def as_set(values: list[Any]) -> set[str]:
    return {json.dumps(value, sort_keys=True) for value in values}


def test_the_proxies_invoke_exactly_the_configured_profiles_and_their_models(each_environment: Synthesized) -> None:
    policies = model_policies(each_environment)
    assert len(policies) == len(each_environment.config.models)
    for index, statements in enumerate(policies):
        profiles, models = expected_statements(each_environment, index)
        through_profiles, direct = (
            [s for s in statements if "Condition" in s],
            [s for s in statements if "Condition" not in s],
        )
        (direct_statement,) = direct
        assert sorted(direct_statement["Action"]) == INVOKE
        assert as_set(direct_statement["Resource"]) == as_set(profiles)
        (models_statement,) = through_profiles
        assert sorted(models_statement["Resource"]) == sorted(models)
        assert as_set(models_statement["Condition"]["StringEquals"]["bedrock:InferenceProfileArn"]) == as_set(profiles)
        assert "*" not in json.dumps(statements)


def test_dev_profiles_route_to_the_six_eu_regions(dev: Synthesized) -> None:
    _, models = expected_statements(dev, 0)
    assert models == [f"arn:aws:bedrock:{region}::foundation-model/anthropic.claude-opus-5-5" for region in EU_REGIONS]


def vendor_endpoint(synthesized: Synthesized) -> tuple[str, dict[str, Any]]:
    (item,) = resources(synthesized, "AWS::EC2::VPCEndpoint").items()
    return item[0], item[1]["Properties"]


def test_the_vendor_endpoint_passes_exactly_the_same_invocations_for_this_account(
    each_environment: Synthesized,
) -> None:
    _, endpoint = vendor_endpoint(each_environment)
    assert endpoint["ServiceName"] == f"com.amazonaws.{each_environment.config.region}.bedrock-runtime"
    statements = endpoint["PolicyDocument"]["Statement"]
    account = {"aws:PrincipalAccount": each_environment.config.account}
    assert len(statements) == 2 * len(each_environment.config.models)
    for index in range(len(each_environment.config.models)):
        profiles, models = expected_statements(each_environment, index)
        direct, through = statements[2 * index], statements[2 * index + 1]
        assert (direct["Principal"], direct["Effect"], sorted(direct["Action"])) == ({"AWS": "*"}, "Allow", INVOKE)
        assert as_set(direct["Resource"]) == as_set(profiles) and direct["Condition"] == {"StringEquals": account}
        assert sorted(through["Resource"]) == sorted(models)
        condition = through["Condition"]["StringEquals"]
        assert condition["aws:PrincipalAccount"] == account["aws:PrincipalAccount"]
        assert as_set(condition["bedrock:InferenceProfileArn"]) == as_set(profiles)


def test_the_vendor_endpoint_admits_443_from_the_proxy_group_only(dev: Synthesized) -> None:
    _, endpoint = vendor_endpoint(dev)
    (group_ref,) = endpoint["SecurityGroupIds"]
    group_id = group_ref["Fn::GetAtt"][0]
    ingress = [
        rule["Properties"]
        for rule in resources(dev, "AWS::EC2::SecurityGroupIngress").values()
        if rule["Properties"]["GroupId"] == {"Fn::GetAtt": [group_id, "GroupId"]}
    ]
    (rule,) = ingress
    assert (rule["FromPort"], rule["ToPort"], rule["IpProtocol"]) == (443, 443, "tcp")
    assert "ProxySecurityGroup" in json.dumps(rule["SourceSecurityGroupId"])  # imported from the network stack
    assert "SecurityGroupIngress" not in resources(dev, "AWS::EC2::SecurityGroup")[group_id]["Properties"]
    assert endpoint["PrivateDnsEnabled"] is True and len(endpoint["SubnetIds"]) == len(dev.config.availability_zones)


def test_instances_learn_each_team_profile_id_at_deploy(each_environment: Synthesized) -> None:
    (launch,) = resources(each_environment, "AWS::EC2::LaunchTemplate").values()
    parts = launch["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Join"][1]
    text = "".join(
        p if isinstance(p, str) else f"<{p['Fn::GetAtt'][0]}.{p['Fn::GetAtt'][1]}>"
        for p in parts
        if isinstance(p, str) or "Fn::GetAtt" in p
    )
    (line,) = [line for line in text.splitlines() if line.startswith("AIGW_TEAM_PROFILES=")]
    profiles = team_profiles(each_environment)
    expected = ",".join(
        f"{team}/{route.id}=<{profiles[(team, route.arn)]}.InferenceProfileId>"
        for team in each_environment.config.teams
        for route in each_environment.config.models
    )
    assert line == f"AIGW_TEAM_PROFILES={expected}"


def test_each_team_output_names_its_profiles(dev: Synthesized) -> None:
    outputs = Template.from_stack(dev.stack("Gateway")).find_outputs("*")
    profiles = team_profiles(dev)
    for team in dev.config.teams:
        (output,) = [o for o in outputs.values() if o.get("Description", "").startswith(f"team {team}:")]
        joined = output["Value"]["Fn::Join"]
        assert joined[0] == ""
        pieces = joined[1]
        for route in dev.config.models:
            assert arn_of(profiles[(team, route.arn)]) in pieces
            assert any(isinstance(p, str) and f"{route.id}=" in p for p in pieces)
