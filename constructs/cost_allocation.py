"""Cost-allocation tags on every taggable resource, including the ones `Tags.of` cannot reach."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import CfnResource, TagManager, Tags
from constructs import IConstruct

# The cost-allocation tag that names a team: on its budgets, its anomaly monitor and its inference profiles.
TEAM_TAG = "team"

# Types that CDK's own helpers (custom-resource providers) create as raw CfnResource, so `Tags.of`
# skips them although CloudFormation accepts a Key/Value Tags list on them.
RAW_TAGGABLE_TYPES = frozenset({"AWS::IAM::Role", "AWS::Lambda::Function"})


def tag_for_cost_allocation(scope: IConstruct, tags: Mapping[str, str]) -> None:
    """Tag everything under `scope`; a narrower scope (one team's resources) may add `team` on top.

    Call it once everything under `scope` is built (app.build does, last): the raw resources are found
    now, in one walk on the CDK's side, not by a Python aspect at synth, which costs a call into Python
    per construct (~350, a quarter of the synth's jsii round-trips). What the CDK adds during synth here
    is parameters, rules and outputs; test_app's tag check fails on any resource missed.
    """
    for key, value in tags.items():
        Tags.of(scope).add(key, value)
    rendered = [{"Key": key, "Value": value} for key, value in tags.items()]
    for node in scope.node.find_all():
        # A raw resource comes back as CfnResource itself: every L1 class of these types takes tags.
        if (
            type(node) is CfnResource
            and node.cfn_resource_type in RAW_TAGGABLE_TYPES
            and not (TagManager.is_taggable(node) or TagManager.is_taggable_v2(node))
        ):
            node.add_property_override("Tags", rendered)
