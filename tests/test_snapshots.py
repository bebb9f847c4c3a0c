"""One snapshot per stack and environment: they change only when the infrastructure does.

Asset hashes are normalized (they move with any byte of bundled code or CDK release); every other
value, including acknowledgment reasons in Metadata, is kept. Review a changed snapshot like code,
then refresh with `make snapshots`. The assertions in the other tests are what must hold; these
show everything else that changed.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from tests.conftest import Synthesized

ASSET_HASH = re.compile(r"\b[0-9a-f]{64}\b")


def normalized(template: dict[str, Any]) -> Any:
    return json.loads(ASSET_HASH.sub("<asset-hash>", json.dumps(template)))


@pytest.fixture
def snapshot_json(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JSONSnapshotExtension)


def test_stack_snapshots(each_environment: Synthesized, snapshot_json: SnapshotAssertion) -> None:
    for stack in each_environment.stacks:
        template = normalized(each_environment.template_json(stack.node.id))
        assert template == snapshot_json(name=f"{each_environment.config.environment}-{stack.node.id}")


def test_normalization_keeps_everything_but_asset_hashes() -> None:
    digest = "a" * 64
    template = {"Code": {"S3Key": f"{digest}.zip"}, "CidrBlock": "10.40.0.0/16", "Short": "a" * 63}
    assert normalized(template) == {
        "Code": {"S3Key": "<asset-hash>.zip"},
        "CidrBlock": "10.40.0.0/16",
        "Short": "a" * 63,
    }
