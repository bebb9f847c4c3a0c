"""Bedrock's models and system inference profiles: which ids an environment may name, and what invoking
each one needs from IAM.

Current Claude models on Bedrock cannot be invoked on demand by their model id: only through an inference
profile, which may route a request to any of its destination Regions. Bedrock authorises such a call against
the profile and against the model in the Region it lands in, so the policies must name both (see
`ModelRoute.model_arns`). The table of what routes where ships in `config/bedrock-models.yaml`; an
environment may extend it (`vendor.catalog`).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.settings import ModelPrice, ModelRoute, partition_of

SHIPPED_CATALOG = Path(__file__).resolve().parent / "bedrock-models.yaml"

REGION = r"^[a-z]{2}(-[a-z]+)+-\d$"
# `provider.model` (Bedrock's model ids) and `geography.provider.model` (its system inference profiles').
MODEL_ID = r"^[a-z0-9-]{2,32}\.[A-Za-z0-9._:-]{1,120}$"
PROFILE_ID = r"^[a-z]{2,8}\.[a-z0-9-]{2,32}\.[A-Za-z0-9._:-]{1,120}$"
GLOBAL_PREFIX = "global."
# A model's name in the Anthropic Messages API (claude-sonnet-4-5-20250929).
ANTHROPIC_ID = r"^[a-z0-9][a-z0-9.-]{1,63}$"
# Bedrock's own pattern for inference profile names.
PROFILE_NAME = r"^([0-9a-zA-Z][ _-]?){1,64}$"

Region = Annotated[str, Field(pattern=REGION)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FoundationModel(_Model):
    # The most output tokens one request may ask for (the model card's "max output").
    max_output_tokens: Annotated[int, Field(ge=1, le=1_000_000)]
    # Where the model may still be invoked on demand by its own id; empty: only through an inference profile.
    on_demand_regions: tuple[Region, ...] = ()
    # What clients of the Anthropic Messages API (`/v1/messages`) call it: the id first (what `/v1/models` lists
    # and Claude Code sends), then other names it goes by.
    anthropic_ids: tuple[Annotated[str, Field(pattern=ANTHROPIC_ID)], ...] = ()
    display_name: str | None = None
    # Where bedrock-runtime's CountTokens counts for this model (by its bare id); elsewhere count_tokens is 501.
    count_tokens_regions: tuple[Region, ...] = ()


class SystemProfile(_Model):
    name: Annotated[str, Field(max_length=64, pattern=PROFILE_NAME)] | None = None
    model: Annotated[str, Field(pattern=MODEL_ID)]
    sources: Annotated[tuple[Region, ...], Field(min_length=1)]
    # Not listed for a `global.` profile: it routes to every commercial Region.
    destinations: tuple[Region, ...] = ()

    def routes_from(self, region: str) -> tuple[str, ...]:
        """The Regions a request made in `region` may be served in (AWS adds the source Region itself)."""
        return tuple(dict.fromkeys((*self.destinations, region)))


class Catalog(_Model):
    foundation_models: dict[Annotated[str, Field(pattern=MODEL_ID)], FoundationModel] = Field(default_factory=dict)
    inference_profiles: dict[Annotated[str, Field(pattern=PROFILE_ID)], SystemProfile] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _profiles_are_complete(self) -> Catalog:
        for profile_id, profile in self.inference_profiles.items():
            is_global = profile_id.startswith(GLOBAL_PREFIX)
            if is_global and profile.destinations:
                raise ValueError(f"inference_profiles.{profile_id}: a global profile routes to every commercial Region")
            if not is_global and not profile.destinations:
                raise ValueError(f"inference_profiles.{profile_id}: list the Regions it routes to (destinations)")
        return self

    def extended_by(self, extra: Catalog) -> Catalog:
        """This table with an environment's entries added (an entry of the same id replaces this one's)."""
        return Catalog(
            foundation_models={**self.foundation_models, **extra.foundation_models},
            inference_profiles={**self.inference_profiles, **extra.inference_profiles},
        )

    def usable_ids(self, region: str) -> list[str]:
        """Every id a client in `region` may be configured to name."""
        profiles = [i for i, p in self.inference_profiles.items() if region in p.sources]
        models = [i for i, m in self.foundation_models.items() if region in m.on_demand_regions]
        return sorted(profiles) + sorted(models)


@cache
def shipped_catalog() -> Catalog:
    return Catalog.model_validate(yaml.safe_load(SHIPPED_CATALOG.read_text()))


def foundation_model_arn(partition: str, region: str, model: str) -> str:
    """A model's ARN in a Region; the empty Region names it wherever a global profile routes."""
    return f"arn:{partition}:bedrock:{region}::foundation-model/{model}"


def resolve_models(
    models: Mapping[str, ModelPrice],
    catalog: Catalog,
    region: str,
    account: str,
    aliases: Mapping[str, str] | None = None,
) -> list[ModelRoute]:
    """Each configured id as the gateway and the policies need it, or ValueError naming what is allowed.

    Each route answers to its model's Anthropic ids, the first configured route of a model taking them, and to
    the `aliases` that name it (which take a name from any other route)."""
    partition = partition_of(region)
    routes = []
    taken = set(aliases or {})
    for model_id, price in models.items():
        profile = catalog.inference_profiles.get(model_id)
        model = catalog.foundation_models.get(model_id)
        if profile is not None and region in profile.sources:
            if profile.model not in catalog.foundation_models:
                raise ValueError(f"{model_id}: routes to {profile.model}, which the catalog does not list")
            regions = profile.routes_from(region)
            model_arns = [foundation_model_arn(partition, r, profile.model) for r in regions]
            if model_id.startswith(GLOBAL_PREFIX):
                model_arns.append(foundation_model_arn(partition, "", profile.model))
            route = ModelRoute(
                id=model_id,
                kind="inference-profile",
                name=profile.name or model_id,
                foundation_model=profile.model,
                arn=f"arn:{partition}:bedrock:{region}:{account}:inference-profile/{model_id}",
                model_arns=tuple(model_arns),
                price=price,
                max_output_tokens=catalog.foundation_models[profile.model].max_output_tokens,
            )
        elif model is not None and region in model.on_demand_regions:
            arn = foundation_model_arn(partition, region, model_id)
            route = ModelRoute(
                id=model_id,
                kind="foundation-model",
                name=model_id,
                foundation_model=model_id,
                arn=arn,
                model_arns=(arn,),
                price=price,
                max_output_tokens=model.max_output_tokens,
            )
        else:
            raise ValueError(_not_usable(model_id, profile, model, catalog, region))
        foundation = catalog.foundation_models[route.foundation_model]
        names = [name for name in foundation.anthropic_ids if name not in taken]
        names += [name for name, target in (aliases or {}).items() if target == model_id]
        taken.update(names)
        routes.append(
            route.model_copy(
                update={
                    "aliases": tuple(dict.fromkeys(names)),
                    "display_name": foundation.display_name or route.name,
                    "count_tokens": region in foundation.count_tokens_regions,
                }
            )
        )
    return routes


def _not_usable(
    model_id: str, profile: SystemProfile | None, model: FoundationModel | None, catalog: Catalog, region: str
) -> str:
    allowed = ", ".join(catalog.usable_ids(region)) or "none"
    if model_id.startswith("arn:"):
        why = "name models by id, not ARN"
    elif profile is not None:
        why = f"this profile cannot be called from {region} (only from {', '.join(profile.sources)})"
    elif model is not None:
        why = f"this model cannot be invoked on demand by its id in {region}: name an inference profile for it"
    else:
        why = "not in the model catalog (config/bedrock-models.yaml; add it under vendor.catalog)"
    return f"{model_id!r}: {why}; usable in {region}: {allowed}"
