"""Shared fixtures: the whole app is synthesized once per test session and per environment."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Before aws_cdk starts its node process: node 20 is what these machines have.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import pytest
import yaml
from aws_cdk import App, Environment, Stack, cx_api
from aws_cdk.assertions import Template
from constructs.compliance import record_packs
from constructs.gateway_bundle import DEFAULT_CACHE, locked_wheels

import app as aigw_app
from config import AigwConfig, load_config
from config.settings import CONFIG_DIR

ROOT = Path(__file__).resolve().parent.parent


def cli_context(environment: str) -> dict[str, Any]:
    """The context `npx cdk synth -c env=NAME` gives the app: cdk.json's flags, the CLI's own keys."""
    context: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]
    return {**context, "env": environment, "aws:cdk:version-reporting": True}


@dataclass
class Synthesized:
    config: AigwConfig
    app: App
    assembly: cx_api.CloudAssembly

    @property
    def directory(self) -> Path:
        return Path(self.assembly.directory)

    @property
    def stacks(self) -> list[Stack]:
        return [child for child in self.app.node.children if isinstance(child, Stack)]

    def stack(self, construct_id: str) -> Stack:
        found = self.app.node.find_child(construct_id)
        assert isinstance(found, Stack)
        return found

    def template(self, construct_id: str) -> Template:
        return Template.from_stack(self.stack(construct_id))

    def template_json(self, construct_id: str) -> dict[str, Any]:
        return dict(self.template(construct_id).to_json())

    def resources(self, *types: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(stack id, logical id, resource) for every resource of every stack, or only those of `types`."""
        for stack in self.stacks:
            for logical_id, resource in self.template_json(stack.node.id)["Resources"].items():
                if not types or resource["Type"] in types:
                    yield stack.node.id, logical_id, resource

    @property
    def validation_report(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads((self.directory / "validation-report.json").read_text())
        return report


def synthesize(environment: str, outdir: Path) -> Synthesized:
    config = load_config(environment)
    app = App(outdir=str(outdir), context=cli_context(environment))
    aigw_app.build(app, config)
    assembly = app.synth()
    record_packs(assembly.directory)  # as app.py's main does after synth
    return Synthesized(config=config, app=app, assembly=assembly)


def synthesize_dev_with(outdir: Path, change: Callable[[dict[str, Any]], object]) -> App:
    """The whole app from dev.yaml as `change` edits it (its file, as a user's would be), synthesized into
    outdir/cdk.out without bundling the gateway; synth fails on an error finding."""
    raw = yaml.safe_load((CONFIG_DIR / "dev.yaml").read_text())
    change(raw)
    (outdir / "dev.yaml").write_text(yaml.safe_dump(raw))
    shutil.copy(CONFIG_DIR / "policy-rules.yaml", outdir / "policy-rules.yaml")
    app = App(outdir=str(outdir / "cdk.out"), context={**cli_context("dev"), "aws:cdk:bundling-stacks": []})
    aigw_app.build(app, load_config("dev", outdir))
    app.synth()
    return app


@pytest.fixture(scope="session")
def bundle_cache() -> Path:
    """The gateway bundle's wheel cache (in the checkout, shared by every process that bundles), filled by one
    process at a time: pip copies a wheel into it non-atomically, and a concurrent bundling would hash a half-written
    file and fail. Once full, pip only reads it."""
    DEFAULT_CACHE.mkdir(parents=True, exist_ok=True)
    with (DEFAULT_CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        locked_wheels(DEFAULT_CACHE)
    return DEFAULT_CACHE


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory, bundle_cache: Path) -> Synthesized:
    return synthesize("dev", tmp_path_factory.mktemp("cdk.out.dev"))


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory, bundle_cache: Path) -> Synthesized:
    return synthesize("prod", tmp_path_factory.mktemp("cdk.out.prod"))


@pytest.fixture(params=["dev", "prod"])
def each_environment(request: pytest.FixtureRequest) -> Synthesized:
    synthesized: Synthesized = request.getfixturevalue(request.param)
    return synthesized


class BareStack(Stack):
    """A stack with explicit account, region and AZs (no lookups), for testing one construct alone."""

    AZS = ("eu-west-1a", "eu-west-1b", "eu-west-1c")

    def __init__(self) -> None:
        # No asset bundling: a construct test never needs the gateway bundle built (pip download, 31 MB).
        app = App(context={"aws:cdk:bundling-stacks": []})
        super().__init__(app, "Test", env=Environment(account="123456789012", region="eu-west-1"))

    @property
    def availability_zones(self) -> list[str]:
        return list(self.AZS)


@pytest.fixture
def bare_stack() -> BareStack:
    return BareStack()


SYNTHESIZED = {"dev", "prod", "each_environment"}


# tryfirst: xdist turns the markers into groups in its own hook of the same name.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """For `--dist loadgroup` (make test): a module runs in one worker, so its module-scoped processes start once;
    and every module that uses the session's synthesized app runs in the same worker, so each environment is
    synthesized once (jsii's first synth in a process also pays for loading cdk-nag's rules: ~15 s of CPU)."""
    synthesizing = {item.path for item in items if SYNTHESIZED & set(getattr(item, "fixturenames", ()))}
    for item in items:
        group = "synthesized-app" if item.path in synthesizing else str(item.path.relative_to(ROOT))
        item.add_marker(pytest.mark.xdist_group(group))
    # Workers take groups in this order: the longest first, so none of them starts last and runs on alone.
    long = {item.path for item in items if item.get_closest_marker("deploy") or item.get_closest_marker("slow")}
    items.sort(key=lambda item: 0 if item.path in long else 1 if item.path in synthesizing else 2)
