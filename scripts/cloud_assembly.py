"""A synthesized cloud assembly read as data, for the evidence scripts (audit report, SARIF, diagram, bundle):
its stacks, their templates and resources, and the construct metadata the CDK wrote beside them."""

from __future__ import annotations

import json
from collections.abc import Iterator
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


def _artifacts(directory: Path, nested: str = "") -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(folder relative to `directory`, id, artifact) for every artifact, also those of stages (nested assemblies)."""
    manifest = json.loads((directory / nested / "manifest.json").read_bytes())
    for artifact_id, artifact in manifest["artifacts"].items():
        if artifact["type"] == "cdk:cloud-assembly":
            yield from _artifacts(directory, f"{nested}{artifact['properties']['directoryName']}/")
        yield nested, artifact_id, artifact


def stacks(directory: Path) -> list[StackArtifact]:
    found = []
    for nested, artifact_id, artifact in _artifacts(directory):
        if artifact["type"] != "aws:cloudformation:stack":
            continue
        properties = artifact["properties"]
        metadata = dict(artifact.get("metadata") or {})
        if extra := artifact.get("additionalMetadataFile"):  # newer CDKs write it beside the manifest
            metadata.update(json.loads((directory / nested / extra).read_bytes()))
        template_file = nested + properties["templateFile"]  # relative to `directory`
        found.append(
            StackArtifact(
                id=artifact_id,
                name=properties.get("stackName", artifact_id),
                region=artifact.get("environment", "").rsplit("/", 1)[-1],
                template_file=template_file,
                template=json.loads((directory / template_file).read_bytes()),
                metadata={path.lstrip("/"): entries for path, entries in metadata.items()},
            )
        )
    return found


def resources(directory: Path) -> list[Resource]:
    return [resource for stack in stacks(directory) for resource in stack.resources()]


def asset_directories(directory: Path) -> list[Path]:
    """The asset folders the assembly's stacks deploy, from their asset manifests: a cdk.out that was synthesized
    into before still holds the folders of earlier synths, which no stack refers to any more."""
    found = set()
    for nested, _, artifact in _artifacts(directory):
        if artifact["type"] == "cdk:asset-manifest":
            assets = json.loads((directory / nested / artifact["properties"]["file"]).read_bytes())
            for asset in assets.get("files", {}).values():
                folder = directory / nested / asset["source"].get("path", "")
                if asset["source"].get("path") and folder.is_dir():
                    found.add(folder)
    return sorted(found)
