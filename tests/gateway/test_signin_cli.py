"""The real Claude Code CLI (pinned in package.json) signing in through aigw, driven in tmux as a person would:
`/login` with the gateway named in the machine's managed settings (served over HTTPS on loopback with a local CA's
certificate, which the CLI trusts through NODE_EXTRA_CA_CERTS and pins), the device code confirmed by a "browser" made
of HTTP requests against the local OIDC IdP, then prompts over /v1/messages, the managed settings in effect (a
denied path refused), its 60 s access tokens refreshed without a new sign-in, and its telemetry counted by team.

Managed settings are read from /etc/claude-code only (the CLI has no other place for `forceLoginGatewayUrl`): the
CLI runs in a mount namespace of its own (`unshare -m`, which needs root, as CI has) where a folder of this test is
bound over that path, so the machine's own /etc is never written but for the empty mount point."""

from __future__ import annotations

import json
import os
import re
import shlex
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from local import harness, token_issuer
from local.tls import LocalTls, make_local_tls
from tests.gateway.conftest import read_jsonl
from tests.gateway.test_real_clients import CLAUDE
from tests.gateway.test_signin import Fleet

# It outlives a 60 s access token (the shortest the gateway issues), so it takes over a minute whatever the machine.
pytestmark = pytest.mark.slow

MANAGED = Path("/etc/claude-code")
TOKEN_SECONDS = 60
CURSOR = "\u276f"  # the CLI's menu cursor


@dataclass
class Terminal:
    """A tmux session running the CLI; `screen()` is what a person would see."""

    name: str
    work: Path  # the folder it runs in

    def screen(self, history: int = 200) -> str:
        """The pane's text, with `history` lines scrolled off above it (0: only what is on screen now)."""
        shown = subprocess.run(
            ["tmux", "capture-pane", "-p", "-J", "-S", str(-history), "-t", self.name], capture_output=True, text=True
        )
        return shown.stdout

    def keys(self, *keys: str) -> None:
        for key in keys:
            subprocess.run(["tmux", "send-keys", "-t", self.name, key], check=True)
            time.sleep(0.2)  # a person's pace: the CLI redraws between keys

    def type(self, text: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, "-l", text], check=True)
        time.sleep(0.3)
        self.keys("Enter")

    def choose(self, option: str) -> None:
        """Move the menu's cursor to `option`, then press Enter, as a person watching the screen would: one key at
        a time, each only once the screen has shown what the last one did (a key pressed while the menu is still
        appearing may be taken late, and a second one would then move past the option); Up once Down goes no
        further."""
        on_option = re.compile(rf"{CURSOR}\s*(\u2714\s*)?{re.escape(option)}")
        direction = "Down"
        for _ in range(8):
            now = self.screen(history=0)
            if on_option.search(now):
                self.keys("Enter")
                return
            self.keys(direction)
            try:
                self.wait_for_change(now, timeout=2)
            except AssertionError:
                direction = "Up"
        raise AssertionError(f"no menu option {option!r}; the screen:\n{self.screen()}")

    def wait_for_change(self, before: str, timeout: float = 5) -> None:
        harness.wait_until(lambda: self.screen(history=0) != before, "the screen's answer to a key", timeout, 0.25)

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.screen())
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} never showed; the screen:\n{self.screen()}")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory,
    vendor: harness.Process,
    keys: token_issuer.KeyFolder,
    redis_server: harness.RedisServer,
) -> Iterator[Secured]:
    if not redis_server.ping():
        redis_server.start()
    port = harness.free_port()
    workdir = tmp_path_factory.mktemp("cli-gateway")
    # HTTPS on loopback, for the gateway (as the load balancer serves it) and the IdP, with a local CA's certificate
    # that the CLI, the "browser" and the gateway (for the IdP's keys and token endpoint) trust.
    tls = make_local_tls(workdir / "tls")
    idp = harness.start_issuer(workdir, keys.folder, tls=tls)
    signin = harness.signin(f"https://127.0.0.1:{port}", idp.url, access_token_seconds=TOKEN_SECONDS)
    settings = harness.settings_for(
        workdir, vendor.url, idp.url, limits__enabled=False, signin=signin, **redis_server.settings()
    )
    process = harness.start_gateway(workdir, settings, port=port, tls=tls, env={"SSL_CERT_FILE": str(tls.ca)})
    yield Secured(Fleet(process, process, settings, [settings.audit.path], idp, redis_server), tls)
    process.stop()
    idp.stop()


@dataclass
class Secured:
    fleet: Fleet
    tls: LocalTls

    @property
    def url(self) -> str:
        return self.fleet.url


@pytest.fixture
def terminal(secured: Secured, tmp_path: Path) -> Iterator[Terminal]:
    """Claude Code in tmux, as on a laptop IT set up: the gateway in its managed settings, a fresh home."""
    etc, home, work = tmp_path / "etc", tmp_path / "home", tmp_path / "work"
    for folder in (etc, home, work):
        folder.mkdir()
    (etc / "managed-settings.json").write_text(
        json.dumps({"forceLoginMethod": "gateway", "forceLoginGatewayUrl": secured.url})
    )
    # Past the first-run screens (theme, trust in this folder): what this test is about starts at /login.
    (home / ".claude.json").write_text(
        json.dumps({"hasCompletedOnboarding": True, "theme": "dark",
                    "projects": {str(work): {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True}}})
    )  # fmt: skip
    (work / ".env").write_text("DATABASE_PASSWORD=not-for-an-assistant\n")
    MANAGED.mkdir(exist_ok=True)  # the mount point (empty: the machine itself has no managed settings)
    env = {"PATH": os.defpath, "HOME": str(home), "TERM": "xterm-256color", "DISABLE_AUTOUPDATER": "1",
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "NODE_EXTRA_CA_CERTS": str(secured.tls.ca)}  # fmt: skip
    inner = (
        f"mount --bind {shlex.quote(str(etc))} {MANAGED} && cd {shlex.quote(str(work))} && "
        f"exec env -i {' '.join(f'{k}={shlex.quote(v)}' for k, v in env.items())} {shlex.quote(str(CLAUDE))}"
    )
    name = f"aigw-cli-{os.getpid()}-{time.monotonic_ns()}"
    command = f"unshare --mount --propagation private sh -c {shlex.quote(inner)}"
    # remain-on-exit: should the CLI stop, its last screen stays there to be read.
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", name, "-x", "160", "-y", "50", command, ";",
         "set-option", "-t", name, "remain-on-exit", "on"],
        check=True,
    )  # fmt: skip
    yield Terminal(name, work)
    subprocess.run(["tmux", "kill-session", "-t", name], check=False)


def browser_signs_in(secured: Secured, user_code: str) -> None:
    """The verification page, the IdP (the local one signs its scripted user in at once) and back."""
    url = secured.url
    with httpx.Client(timeout=10, verify=ssl.create_default_context(cafile=secured.tls.ca)) as browser:
        page = browser.get(f"{url}/device", params={"user_code": user_code})
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        to_idp = browser.post(f"{url}/device", data={"user_code": user_code, "csrf": csrf[1]}, headers={"origin": url})
        back = browser.get(to_idp.headers["location"])
        assert browser.get(back.headers["location"]).status_code == 200


def records(fleet: Fleet) -> list[dict[str, Any]]:
    return read_jsonl(fleet.settings.audit.path)


def test_claude_code_signs_in_works_refreshes_obeys_settings_and_reports_usage(
    secured: Secured, terminal: Terminal
) -> None:
    fleet = secured.fleet
    vendor = fleet.settings.vendor.url
    httpx.post(vendor + "/_control", json={"reset": True, "completion": "Hello through aigw sign-in."})
    terminal.wait_for(r"Cloud gateway")
    terminal.type("/login")
    terminal.wait_for(r"Enter to connect")
    terminal.keys("Enter")
    # It pins the certificate it is shown: the local one's fingerprint, to the first 16 hex digits.
    shown = terminal.wait_for(r"Certificate fingerprint \(SHA-256\):\s+([0-9a-f]{16})")[1]
    assert shown == secured.tls.fingerprint[:16]
    terminal.wait_for(r"Yes, trust this gateway")
    terminal.choose("Yes, trust this gateway")
    code = terminal.wait_for(r"Code:\s+([BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4})")[1]
    browser_signs_in(secured, code)
    terminal.wait_for(r"Connected to Cloud gateway")
    signed_in_at = time.monotonic()
    terminal.wait_for(r"Press Enter to continue")
    terminal.keys("Enter")
    terminal.wait_for(r"Using Opus 5\.5 \(from managed settings\)")
    # The pushed settings need no approval: they name no telemetry endpoint (the session exports here anyway).
    assert "Managed settings require approval" not in terminal.screen()
    assert "never matches" not in terminal.screen()  # the CLI checks every pushed permission rule: all of them apply

    terminal.type("Say hello.")
    terminal.wait_for(r"Hello through aigw sign-in\.")

    read_env = {
        "type": "tool_use",
        "id": "toolu_read",
        "name": "Read",
        "input": {"file_path": str(terminal.work / ".env")},
    }
    script = [
        {"when": "tools", "content": [read_env]},
        {"when": "tools", "content": [{"type": "text", "text": "The tool said: {{tool_result}}"}]},
    ]
    httpx.post(vendor + "/_control", json={"script": script})
    terminal.type("Show me the .env file.")
    terminal.wait_for(r"The tool said: .*denied by your permission settings")
    assert "not-for-an-assistant" not in terminal.screen()

    # Its first access token has expired: the next prompt goes through on a refreshed one, with no new sign-in.
    harness.wait_until(
        lambda: time.monotonic() - signed_in_at > TOKEN_SECONDS + 2, "the first token's expiry", 90, 0.25
    )
    httpx.post(vendor + "/_control", json={"completion": "Still here after the token expired."})
    terminal.type("Say hello again.")
    terminal.wait_for(r"Still here after the token expired\.")
    assert "/login" not in terminal.screen().split("Say hello again.")[-1]

    # Telemetry: its metrics export (every 60 s) lands as CloudWatch metrics for the team.
    harness.wait_until(
        lambda: [r for r in records(fleet) if r["path"] == "/v1/metrics" and r["outcome"] == "telemetry_accepted"],
        "a metrics export", 120, 0.25,
    )  # fmt: skip
    counted = [line for line in read_jsonl(fleet.settings.metrics.path) if line.get("Source") == "telemetry"]
    assert {(line["Team"], line["User"]) for line in counted} == {("payments", "dev@example.com")}
    names = {line["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] for line in counted}
    assert {"ClaudeCodeSessions", "ClaudeCodeTokens"} <= names

    audit = records(fleet)
    outcomes = [(r["path"], r["status"], r["outcome"]) for r in audit]
    assert outcomes.count(("/oauth/device_authorization", 200, "ok")) == 1  # one sign-in, however long it ran
    refreshes = [r for r in audit if r["path"] == "/oauth/token" and r["outcome"] == "token_issued"]
    assert len(refreshes) >= 2  # the device grant, then refresh grants
    inference = [r for r in audit if r["path"] == "/v1/messages"]
    assert inference and all(r["status"] == 200 and r["user"] == "dev@example.com" for r in inference)
    assert {r["model"] for r in inference} == {"claude-opus-5-5"}  # the managed settings' model
    assert ("/managed/settings", 200, "ok") in outcomes
