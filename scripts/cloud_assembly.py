"""A synthesized cloud assembly read as data, for the evidence scripts (audit report, SARIF, diagram, bundle):
its stacks, their templates and resources, and the construct metadata the CDK wrote beside them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Resource:
    stack: str  # the stack's id in the assembly (artifact id)
    logical_id: str
    type: str
    properties: dict[str, Any]
    path: str  # the construct path, from the stack's metadata (Stack/LogicalId if it has none)

    @property
    def id(self) -> str:
        return f"{self.stack}/{self.logical_id}"


@dataclass(frozen=True)
class StackArtifact:
    id: str
    name: str  # the name it deploys as
    region: str
    template_file: str
    template: dict[str, Any]
    metadata: dict[str, list[dict[str, Any]]]  # construct path (no leading "/") -> its metadata entries

    def resources(self) -> list[Resource]:
        paths = {
            entry["data"]: path
            for path, entries in self.metadata.items()
            for entry in entries
            if entry["type"] == "aws:cdk:logicalId"
        }
        return [
            Resource(
                self.id,
                logical_id,
                body["Type"],
                body.get("Properties", {}),
                paths.get(logical_id, f"{self.id}/{logical_id}"),
            )
            for logical_id, body in self.template.get("Resources", {}).items()
        ]


def stacks(directory: Path) -> list[StackArtifact]:
    manifest = json.loads((directory / "manifest.json").read_bytes())
    found = []
    for artifact_id, artifact in manifest["artifacts"].items():
        if artifact["type"] != "aws:cloudformation:stack":
            continue
        properties = artifact["properties"]
        metadata = dict(artifact.get("metadata") or {})
        if extra := artifact.get("additionalMetadataFile"):  # newer CDKs write it beside the manifest
            metadata.update(json.loads((directory / extra).read_bytes()))
        found.append(
            StackArtifact(
                id=artifact_id,
                name=properties.get("stackName", artifact_id),
                region=artifact.get("environment", "").rsplit("/", 1)[-1],
                template_file=properties["templateFile"],
                template=json.loads((directory / properties["templateFile"]).read_bytes()),
                metadata={path.lstrip("/"): entries for path, entries in metadata.items()},
            )
        )
    return found


def resources(directory: Path) -> list[Resource]:
    return [resource for stack in stacks(directory) for resource in stack.resources()]


def asset_directories(directory: Path) -> list[Path]:
    """The asset folders the assembly's stacks deploy, from their asset manifests: a cdk.out that was synthesized
    into before still holds the folders of earlier synths, which no stack refers to any more."""
    manifest = json.loads((directory / "manifest.json").read_bytes())
    found = set()
    for artifact in manifest["artifacts"].values():
        if artifact["type"] == "cdk:asset-manifest":
            assets = json.loads((directory / artifact["properties"]["file"]).read_bytes())
            for asset in assets.get("files", {}).values():
                if (directory / asset["source"].get("path", "")).is_dir():
                    found.add(directory / asset["source"]["path"])
    return sorted(found)
