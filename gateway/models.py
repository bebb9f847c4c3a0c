"""Which model a request names, and what the gateway invokes for it: the team's own application inference
profile (tagged with the team, so AWS's cost tools see the team), else the shared system profile, flagged.

Only the configured models pass: an id, or the ARN of the system profile or model in this account and
Region. Anything else, including a well-formed ARN of another account or Region, is refused before it
could reach Bedrock. The same table answers Claude Code's start-up probes of the Bedrock control plane
(`GET /inference-profiles`, `GET /inference-profiles/{id}`) in Bedrock's shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.settings import ModelRoute, VendorSettings

SYSTEM_DEFINED, APPLICATION = "SYSTEM_DEFINED", "APPLICATION"
MAX_RESULTS = 1000  # ListInferenceProfiles' own bound
# `created_at` is required in the Anthropic API's model entries; the gateway knows no release dates.
EPOCH = "1970-01-01T00:00:00Z"


class UnknownModelError(Exception):
    """The request names a model this gateway does not serve; the message lists the ones it does."""


class ProbeError(Exception):
    """A control-plane probe Bedrock itself would refuse: its status, error type and message."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message


@dataclass(frozen=True)
class Invocation:
    route: ModelRoute
    # What the path to Bedrock names: the team's application profile ARN, else the configured id.
    target: str
    # True when the team has no profile of its own for this model and the shared one is used.
    fallback: bool


@dataclass(frozen=True)
class TeamProfile:
    team: str
    route: ModelRoute
    arn: str

    @property
    def id(self) -> str:
        return self.arn.rpartition("/")[2]


class ModelDirectory:
    def __init__(self, vendor: VendorSettings) -> None:
        self.routes = vendor.models
        self._names = {name: route for route in vendor.models for name in (route.id, route.arn)}
        # What Anthropic Messages API clients name: a model's Anthropic ids and configured aliases.
        self._aliases = {name: route for route in vendor.models for name in route.aliases}
        by_id = {route.id: route for route in vendor.models}
        profiles = [
            TeamProfile(team, by_id[model], arn)
            for team, profiles in vendor.team_profiles.items()
            for model, arn in profiles.items()
            if model in by_id
        ]
        # Looked up on every request: (team, configured id) -> its profile, and (team, its profile's ARN or id).
        self._own: dict[tuple[str | None, str], TeamProfile] = {(p.team, p.route.id): p for p in profiles}
        self._own_by_name: dict[tuple[str | None, str], TeamProfile] = {
            (p.team, name): p for p in profiles for name in (p.arn, p.id)
        }

    @property
    def allowed(self) -> list[str]:
        return [route.id for route in self.routes]

    def invocation(self, requested: str, team: str | None, *, anthropic: bool = False) -> Invocation:
        """What to invoke for `requested` on behalf of `team`, or UnknownModelError. A request in the Anthropic
        Messages format names the model by its Anthropic id or alias."""
        if anthropic:
            route = self._aliases.get(requested)
            if route is None:
                raise UnknownModelError(
                    f"The model {requested!r} is not served by this gateway; use one of: "
                    f"{', '.join(self._aliases)} (e.g. ANTHROPIC_MODEL for Claude Code)."
                )
            return self.invocation(route.id, team)
        route = self._names.get(requested)
        own = self._own.get((team, route.id)) if route is not None else self._own_by_name.get((team, requested))
        if own is not None:
            return Invocation(own.route, own.arn, fallback=False)
        if route is None:
            raise UnknownModelError(
                f"The model {requested!r} is not served by this gateway; use one of: {', '.join(self.allowed)} "
                "(e.g. ANTHROPIC_MODEL for Claude Code)."
            )
        return Invocation(route, route.id, fallback=True)

    def model_list(self, allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
        """`GET /v1/models` in the Anthropic API's list shape: one entry per model, by its Anthropic id (Claude
        Code's gateway model discovery keeps ids containing "claude"), only those `allowed` (any of its names)."""
        data = [
            {"type": "model", "id": route.aliases[0], "display_name": route.display_name, "created_at": EPOCH}
            for route in self.routes
            if route.aliases and (allowed is None or set(allowed) & {route.id, *route.aliases})
        ]
        return {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }

    # -- the control-plane probes ----------------------------------------------------------------

    def list_profiles(self, query: dict[str, str], team: str | None) -> dict[str, Any]:
        """ListInferenceProfiles: the system profiles this gateway serves, or the caller's team's own."""
        kind = query.get("type", SYSTEM_DEFINED)  # what Bedrock lists when no type is given
        if kind not in (SYSTEM_DEFINED, APPLICATION):
            raise ProbeError(
                400, "ValidationException", f"type must be {SYSTEM_DEFINED} or {APPLICATION}, not {kind!r}."
            )
        size = _bounded_int(query.get("maxResults", str(MAX_RESULTS)), "maxResults", 1, MAX_RESULTS)
        start = _bounded_int(query.get("nextToken", "0"), "nextToken", 0, 10**6)
        summaries = (
            [_system_summary(route) for route in self.routes if route.kind == "inference-profile"]
            if kind == SYSTEM_DEFINED
            else [_application_summary(p) for p in self._own.values() if p.team == team]
        )
        page: dict[str, Any] = {"inferenceProfileSummaries": summaries[start : start + size]}
        if start + size < len(summaries):
            page["nextToken"] = str(start + size)
        return page

    def get_profile(self, identifier: str, team: str | None) -> dict[str, Any]:
        """GetInferenceProfile, by id or ARN, for a system profile served here or one of the team's own."""
        own = self._own_by_name.get((team, identifier))
        if own is not None:
            return _application_summary(own)
        route = self._names.get(identifier)
        if route is None or route.kind != "inference-profile":
            raise ProbeError(
                404, "ResourceNotFoundException", f"The inference profile {identifier!r} is not served by this gateway."
            )
        return _system_summary(route)


def _system_summary(route: ModelRoute) -> dict[str, Any]:
    return {
        "inferenceProfileName": route.name,
        "inferenceProfileArn": route.arn,
        "inferenceProfileId": route.id,
        "models": [{"modelArn": arn} for arn in route.model_arns],
        "status": "ACTIVE",
        "type": SYSTEM_DEFINED,
    }


def _application_summary(profile: TeamProfile) -> dict[str, Any]:
    return {
        "inferenceProfileName": f"{profile.team} {profile.route.name}",
        "description": f"team {profile.team}, copied from {profile.route.id}",
        "inferenceProfileArn": profile.arn,
        "inferenceProfileId": profile.id,
        "models": [{"modelArn": arn} for arn in profile.route.model_arns],
        "status": "ACTIVE",
        "type": APPLICATION,
    }


def _bounded_int(value: str, name: str, low: int, high: int) -> int:
    if not value.isdigit() or not low <= int(value) <= high:
        raise ProbeError(400, "ValidationException", f"{name} must be a whole number from {low} to {high}.")
    return int(value)
