"""Managed settings for Claude Code, delivered by the gateway (`GET /managed/settings`) to each signed-in person by
their team and IdP groups: governance decided once, in `config/<env>.yaml`, instead of enforced by hand after
go-live (the field report's PCI and infrastructure-as-code rules).

Rules apply in order, each to whoever it matches (a rule without `match` to everyone): allow lists and scalars
of a later rule replace earlier ones, deny lists are combined, `env` is merged key by key. Teams marked
PCI-scoped get every tool denied inside their PCI repositories, and every document carries the telemetry
variables that send Claude Code's OTLP metrics and events to this gateway.

The shape is Claude Code's settings file, checked here with unknown keys refused, so a typo stops `cdk synth`
instead of being dropped by the client. The answer is `{uuid, checksum, settings}` with the checksum as a quoted
ETag; the client computes its If-None-Match from the settings with the same canonical JSON, so 304s work.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PATH = "/managed/settings"
# Claude Code's permission rule syntax: a tool, optionally with its specifier (`Read(./.env)`, `Bash(git push:*)`).
PERMISSION_RULE = r"^[A-Za-z][A-Za-z0-9_]*(\(.+\))?$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
PermissionRule = Annotated[str, Field(pattern=PERMISSION_RULE, max_length=512)]
# What Claude Code reads from a policy's lists: replaced by a later rule, or combined with it.
ALLOW_LISTS = frozenset(
    {"availableModels", "companyAnnouncements", "permissions.allow", "permissions.additionalDirectories"}
)
DENY_LISTS = frozenset({"permissions.deny", "permissions.ask", "deniedMcpServers", "disabledMcpjsonServers"})
MERGED_RECORDS = frozenset({"env"})
# Claude Code checks file paths against Read(...) and Edit(...) rules only: Read covers every file-reading tool,
# Edit every file-changing one. A path rule for another of them never matches (the CLI says so).
FOLDER_TOOLS = ("Read", "Edit")
COVERED_BY = {"Write": "Edit", "MultiEdit": "Edit", "NotebookEdit": "Edit", "Glob": "Read"}
MAX_BUILT = 10_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Permissions(_Strict):
    allow: tuple[PermissionRule, ...] | None = None
    deny: tuple[PermissionRule, ...] | None = None
    ask: tuple[PermissionRule, ...] | None = None

    @model_validator(mode="after")
    def _rules_that_match(self) -> Permissions:
        for rule in (*(self.allow or ()), *(self.deny or ()), *(self.ask or ())):
            tool, _, content = rule.partition("(")
            if tool in COVERED_BY and content and ":*" not in content:
                raise ValueError(f"{rule} is never matched by Claude Code: use {COVERED_BY[tool]}({content}")
        return self

    defaultMode: Literal["default", "acceptEdits", "plan", "dontAsk", "auto"] | None = None  # noqa: N815
    disableBypassPermissionsMode: Literal["disable"] | None = None  # noqa: N815
    additionalDirectories: tuple[str, ...] | None = None  # noqa: N815


class ClientSettings(_Strict):
    """The keys of Claude Code's settings that a policy here may set. Login keys (`forceLoginMethod`, ...) are
    not among them: they only work from the file on the machine, which the gateway cannot push."""

    availableModels: tuple[str, ...] | None = None  # noqa: N815
    model: str | None = None
    enforceAvailableModels: bool | None = None  # noqa: N815
    permissions: Permissions | None = None
    env: dict[Annotated[str, Field(pattern=ENV_NAME)], str] | None = None
    allowManagedPermissionRulesOnly: bool | None = None  # noqa: N815
    disableAllHooks: bool | None = None  # noqa: N815
    includeCoAuthoredBy: bool | None = None  # noqa: N815
    cleanupPeriodDays: Annotated[int, Field(ge=1, le=3650)] | None = None  # noqa: N815
    companyAnnouncements: tuple[str, ...] | None = None  # noqa: N815
    skipWebFetchPreflight: bool | None = None  # noqa: N815
    deniedMcpServers: tuple[dict[str, str], ...] | None = None  # noqa: N815
    disabledMcpjsonServers: tuple[str, ...] | None = None  # noqa: N815

    @model_validator(mode="after")
    def _model_allowed(self) -> ClientSettings:
        if self.model and self.availableModels is not None and self.model not in self.availableModels:
            raise ValueError(f"model {self.model!r} is not in availableModels ({', '.join(self.availableModels)})")
        return self


class Match(_Strict):
    """Whom a rule is for: members of any of these teams, and (when both are given) of any of these IdP groups."""

    teams: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _names_someone(self) -> Match:
        if not self.teams and not self.groups:
            raise ValueError("a match names teams, groups or both (leave match out for a rule for everyone)")
        if any(not name.strip() for name in (*self.teams, *self.groups)):
            raise ValueError("a match's team or group names must not be empty")
        return self

    def matches(self, team: str, groups: tuple[str, ...]) -> bool:
        return (not self.teams or team in self.teams) and (not self.groups or bool(set(groups) & set(self.groups)))


class Rule(_Strict):
    match: Match | None = None
    settings: ClientSettings


class PciScope(_Strict):
    """Teams in PCI DSS scope, and the repositories (checkout folder names) their assistants must not touch."""

    teams: tuple[str, ...]
    repositories: Annotated[tuple[Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+$")], ...], Field(min_length=1)]


class ManagedSettingsRules(_Strict):
    rules: tuple[Rule, ...] = ()
    pci: PciScope | None = None
    # Send Claude Code's OTLP metrics and events to this gateway (needs sign-in's public URL).
    telemetry: bool = True

    def models_named(self) -> set[str]:
        return {m for rule in self.rules for m in (rule.settings.availableModels or ())} | {
            rule.settings.model for rule in self.rules if rule.settings.model
        }

    def teams_named(self) -> set[str]:
        named = {t for rule in self.rules if rule.match for t in rule.match.teams}
        return named | set(self.pci.teams if self.pci else ())


# Claude Code's OTLP exporters on (metrics and events; no traces). No OTEL_EXPORTER_OTLP_ENDPOINT: a signed-in
# session's exporter is locked to the gateway's /v1/{signal} anyway, and pushing an endpoint makes Claude Code ask
# each person to approve where their telemetry goes (a prompt whose default answer exits).
TELEMETRY_ENV = {
    "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
    "OTEL_METRICS_EXPORTER": "otlp",
    "OTEL_LOGS_EXPORTER": "otlp",
    "OTEL_TRACES_EXPORTER": "none",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    # Each export says what happened since the last one: any gateway process can count it alone.
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta",
}


def settings_for(
    rules: ManagedSettingsRules, team: str, groups: tuple[str, ...], public_url: str | None
) -> dict[str, Any]:
    """The settings document for a member of `team` in `groups`."""
    merged: dict[str, Any] = {}
    if rules.telemetry and public_url:  # sign-in is on: the clients that read these are signed in here
        merged["env"] = dict(TELEMETRY_ENV)
    layers = [rule.settings for rule in rules.rules if rule.match is None or rule.match.matches(team, groups)]
    for layer in layers:
        _merge(merged, layer.model_dump(exclude_none=True, mode="json"), "")
    if rules.pci and team in rules.pci.teams:
        denied = [f"{tool}(//**/{repo}/**)" for repo in rules.pci.repositories for tool in FOLDER_TOOLS]
        _merge(merged, {"permissions": {"deny": denied}}, "")
    return merged


def _merge(into: dict[str, Any], layer: dict[str, Any], prefix: str) -> None:
    for key, value in layer.items():
        path = f"{prefix}{key}"
        if path in DENY_LISTS:
            into[key] = list(dict.fromkeys([*into.get(key, []), *value]))
        elif path in MERGED_RECORDS:
            into[key] = {**into.get(key, {}), **value}
        elif isinstance(value, dict) and path not in ALLOW_LISTS:
            _merge(into.setdefault(key, {}), value, f"{path}.")
        else:
            into[key] = value


def checksum(settings: dict[str, Any]) -> str:
    """What Claude Code computes for its If-None-Match: sha256 of the JSON with keys sorted and no spaces."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


class ManagedSettings:
    """Each person's document, built once per team and set of groups."""

    def __init__(self, rules: ManagedSettingsRules, public_url: str | None) -> None:
        self.rules = rules
        self.public_url = public_url
        self._built: dict[tuple[str, tuple[str, ...]], tuple[dict[str, Any], str]] = {}

    @property
    def configured(self) -> bool:
        return bool(self.rules.rules or self.rules.pci or (self.rules.telemetry and self.public_url))

    def document(self, team: str, groups: tuple[str, ...]) -> tuple[dict[str, Any], str]:
        """The settings for a member of `team` in `groups`, and their checksum."""
        key = (team, tuple(sorted(set(groups))))
        if key not in self._built:
            if len(self._built) > MAX_BUILT:  # groups come from tokens: bounded, not by what clients send
                self._built.clear()
            settings = settings_for(self.rules, team, key[1], self.public_url)
            self._built[key] = (settings, checksum(settings))
        return self._built[key]

    def allowed_models(self, team: str, groups: tuple[str, ...]) -> tuple[str, ...] | None:
        """The models the person's settings limit them to (None: no limit)."""
        models = self.document(team, groups)[0].get("availableModels")
        return tuple(models) if isinstance(models, list) else None
