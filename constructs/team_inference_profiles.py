"""One Bedrock application inference profile per team and configured model, tagged with the team.

Bedrock's on-demand usage carries no resource tags, so AWS's bill cannot tell teams apart; usage through an
application inference profile carries the profile's tags. Three teams were 58 % of spend and nobody saw it
for seven weeks: with these, the per-team budgets and the team anomaly monitor see each team's cost.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from aws_cdk import CfnOutput, Tags
from aws_cdk import aws_bedrock as bedrock
from constructs import Construct
from constructs.cost_allocation import TEAM_TAG

from gateway.settings import ModelRoute

NAME_LIMIT = 64  # Bedrock's limit on an inference profile's name


def profile_name(environment: str, team: str, model_id: str) -> str:
    """`aigw-<env>-<team>-<model>` in Bedrock's name pattern, cut to its 64 characters with a hash kept unique."""
    name = re.sub(r"[^0-9A-Za-z]+", "-", f"aigw-{environment}-{team}-{model_id}").strip("-")
    if len(name) <= NAME_LIMIT:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: NAME_LIMIT - len(digest) - 1].rstrip('-')}-{digest}"


class TeamInferenceProfiles(Construct):
    """Exposes `profiles` ((team, model id) -> its profile) and, per model id, the ARNs of the teams' profiles.
    Each team's profiles are also a stack output (model id=ARN pairs), for people and `make deploy-local`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: str,
        teams: Sequence[str],
        models: Sequence[ModelRoute],
    ) -> None:
        super().__init__(scope, construct_id)
        self.profiles: dict[tuple[str, str], bedrock.CfnApplicationInferenceProfile] = {}
        # Each ARN read once: a read is a round-trip to the CDK's process, and the stack asks per model.
        self._arns: dict[tuple[str, str], str] = {}
        for team in teams:
            for route in models:
                profile = bedrock.CfnApplicationInferenceProfile(
                    self,
                    f"{team}:{route.id}",
                    inference_profile_name=profile_name(environment, team, route.id),
                    description=f"aigw {environment} team {team}: {route.id}",
                    # A copy of the shared profile (or model): the same Regions, the team's tags.
                    model_source=bedrock.CfnApplicationInferenceProfile.InferenceProfileModelSourceProperty(
                        copy_from=route.arn
                    ),
                )
                Tags.of(profile).add(TEAM_TAG, team)
                self.profiles[(team, route.id)] = profile
                self._arns[(team, route.id)] = profile.attr_inference_profile_arn
            CfnOutput(
                self,
                f"{team}:arns",
                description=f"team {team}: its application inference profile for each model id",
                value=",".join(f"{route.id}={self._arns[(team, route.id)]}" for route in models),
            )

    def arns_for(self, model_id: str) -> list[str]:
        return [arn for (_, model), arn in self._arns.items() if model == model_id]

    @property
    def ids(self) -> dict[tuple[str, str], str]:
        """(team, model id) -> the profile's id, which is all the gateway needs beyond its ARN's known prefix."""
        return {key: profile.attr_inference_profile_id for key, profile in self.profiles.items()}
