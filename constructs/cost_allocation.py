"""Cost-allocation tags on every taggable resource, including the ones `Tags.of` cannot reach."""

from __future__ import annotations

from collections.abc import Mapping

import jsii
from aws_cdk import Aspects, CfnResource, IAspect, TagManager, Tags
from constructs import IConstruct

# The cost-allocation tag that names a team: on its budgets, its anomaly monitor and its inference profiles.
TEAM_TAG = "team"

# Types that CDK's own helpers (custom-resource providers) create as raw CfnResource, so `Tags.of`
# skips them although CloudFormation accepts a Key/Value Tags list on them.
RAW_TAGGABLE_TYPES = frozenset({"AWS::IAM::Role", "AWS::Lambda::Function"})


@jsii.implements(IAspect)
class _TagRawResources:
    def __init__(self, tags: Mapping[str, str]) -> None:
        self._tags = [{"Key": key, "Value": value} for key, value in tags.items()]

    def visit(self, node: IConstruct) -> None:
        if (
            isinstance(node, CfnResource)
            and node.cfn_resource_type in RAW_TAGGABLE_TYPES
            and not (TagManager.is_taggable(node) or TagManager.is_taggable_v2(node))
        ):
            node.add_property_override("Tags", self._tags)


def tag_for_cost_allocation(scope: IConstruct, tags: Mapping[str, str]) -> None:
    """Tag everything under `scope`; a narrower scope (one team's resources) may add `team` on top."""
    for key, value in tags.items():
        Tags.of(scope).add(key, value)
    Aspects.of(scope).add(_TagRawResources(tags))
