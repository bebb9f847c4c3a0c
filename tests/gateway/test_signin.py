"""Claude Code's gateway sign-in at the protocol level, as running processes: two gateway processes sharing one
real Redis (as a fleet shares ElastiCache) behind one public URL, the local OIDC IdP signing in a scripted user,
and a "browser" made of HTTP requests that follows the verification page to the IdP and back, as a person's
browser would. What the Claude Code CLI itself does with these endpoints is in test_signin_cli.py."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from gateway.settings import GatewaySettings
from gateway.signin_store import digest
from local import harness, token_issuer
from local.harness import MODEL, prompt
from tests.gateway.conftest import read_jsonl

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
FORM = {"content-type": "application/x-www-form-urlencoded"}


@dataclass
class Fleet:
    """Two gateway processes on one Redis; `url` is the public URL both serve (the first one's)."""

    first: harness.Process
    second: harness.Process
    settings: GatewaySettings
    audit_files: list[Path]
    issuer: harness.Process
    redis: harness.RedisServer

    @property
    def url(self) -> str:
        return self.first.url

    def post_form(self, path: str, form: dict[str, str], base: str | None = None) -> httpx.Response:
        return httpx.post((base or self.url) + path, data=form, headers=FORM, timeout=10)

    def device_code(self) -> dict[str, Any]:
        response = self.post_form("/oauth/device_authorization", {"surface": "cli"})
        assert response.status_code == 200, response.text
        grant: dict[str, Any] = response.json()
        return grant

    def poll(self, device_code: str, base: str | None = None) -> httpx.Response:
        return self.post_form("/oauth/token", {"grant_type": DEVICE_GRANT, "device_code": device_code}, base)

    def sign_in(self, grant: dict[str, Any]) -> httpx.Response:
        """What a person's browser does with the link the terminal shows: the page, the code, the IdP, back."""
        with httpx.Client(timeout=10) as browser:
            page = browser.get(grant["verification_uri_complete"])
            assert page.status_code == 200
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert csrf is not None
            to_idp = browser.post(
                self.url + "/device",
                data={"user_code": grant["user_code"], "csrf": csrf[1]},
                headers={"origin": self.url},
            )
            assert to_idp.status_code == 303, to_idp.text
            back = browser.get(to_idp.headers["location"])
            assert back.status_code == 302, back.text  # the IdP signs the scripted user in at once
            return browser.get(back.headers["location"])

    def signed_in(self) -> dict[str, Any]:
        grant = self.device_code()
        assert self.sign_in(grant).status_code == 200
        tokens = self.poll(grant["device_code"])
        assert tokens.status_code == 200, tokens.text
        answer: dict[str, Any] = tokens.json()
        return answer

    def refresh(self, refresh_token: str, base: str | None = None) -> httpx.Response:
        return self.post_form("/oauth/token", {"grant_type": "refresh_token", "refresh_token": refresh_token}, base)

    def invoke(self, token: str, base: str | None = None) -> httpx.Response:
        return httpx.post(
            f"{base or self.url}/model/{MODEL}/invoke",
            json=prompt("Say hello."),
            headers={"authorization": f"Bearer {token}"},
            timeout=30,
        )

    def audit(self, request_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for path in self.audit_files:
                for record in read_jsonl(path):
                    if record["request_id"] == request_id:
                        return record
            time.sleep(0.05)
        raise AssertionError(f"no audit record for {request_id}")

    def user(self, **claims: Any) -> None:
        httpx.post(self.issuer.url + "/_user", json=claims).raise_for_status()


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory,
    vendor: harness.Process,
    issuer: harness.Process,
    redis_server: harness.RedisServer,
) -> Iterator[Fleet]:
    if not redis_server.ping():
        redis_server.start()
    port = harness.free_port()
    public_url = f"http://127.0.0.1:{port}"
    processes, settings = [], []
    for name, own_port in (("first", port), ("second", None)):
        workdir = tmp_path_factory.mktemp(name)
        settings.append(
            harness.settings_for(
                workdir, vendor.url, issuer.url, limits__enabled=False,
                signin=harness.signin(public_url, issuer.url, reuse_grace_seconds=0), **redis_server.settings(),
            )
        )  # fmt: skip
        processes.append(harness.start_gateway(workdir, settings[-1], port=own_port))
    yield Fleet(processes[0], processes[1], settings[0], [s.audit.path for s in settings], issuer, redis_server)
    for process in processes:
        process.stop()


@pytest.fixture(autouse=True)
def default_user(fleet: Fleet) -> None:
    fleet.user()


def test_discovery_names_same_origin_endpoints(fleet: Fleet) -> None:
    found = httpx.get(fleet.url + "/.well-known/oauth-authorization-server").json()
    assert found["issuer"] == fleet.url
    assert found["device_authorization_endpoint"] == fleet.url + "/oauth/device_authorization"
    assert found["token_endpoint"] == fleet.url + "/oauth/token"
    assert found["revocation_endpoint"] == fleet.url + "/oauth/revoke"
    assert found["grant_types_supported"] == [DEVICE_GRANT, "refresh_token"]
    assert found["token_endpoint_auth_methods_supported"] == ["none"]
    protocol = httpx.get(fleet.url + "/protocol")
    assert protocol.headers["content-type"].startswith("text/markdown")
    assert "`POST /oauth/token`" in protocol.text and "`claude-opus-5-5`" in protocol.text
    assert "Access tokens live 3600 s" in protocol.text


def test_a_device_signs_in_and_its_token_works_on_every_path_and_process(fleet: Fleet) -> None:
    grant = fleet.device_code()
    assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", grant["user_code"])
    assert len(grant["device_code"]) >= 43 and grant["expires_in"] == 600 and grant["interval"] == 5
    assert grant["verification_uri"] == fleet.url + "/device"
    pending = fleet.poll(grant["device_code"])
    assert (pending.status_code, pending.json()["error"]) == (400, "authorization_pending")
    page = fleet.sign_in(grant)
    assert page.status_code == 200 and "Signed in as <b>dev@example.com</b> (team payments)" in page.text
    time.sleep(grant["interval"])
    tokens = fleet.poll(grant["device_code"], base=fleet.second.url)  # any process hands the grant out
    assert tokens.status_code == 200, tokens.text
    assert tokens.headers["cache-control"] == "no-store"
    answer = tokens.json()
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 3600
    assert answer["refresh_token"].startswith("aigw_rt_")
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    assert claims["iss"] == fleet.url and claims["aud"] == "aigw" and claims["exp"] - claims["iat"] == 3600
    assert (claims["sub"], claims["email"], claims["team"], claims["groups"]) == (
        "u-1001", "dev@example.com", "payments", ["developers"],
    )  # fmt: skip
    # The grant is handed out once.
    again = fleet.poll(grant["device_code"])
    assert again.json()["error"] == "invalid_grant"
    for base in (fleet.url, fleet.second.url):
        response = fleet.invoke(answer["access_token"], base)
        assert response.status_code == 200, response.text
    messages = httpx.post(
        fleet.url + "/v1/messages",
        json={"model": "claude-opus-5-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {answer['access_token']}"},
    )
    assert messages.status_code == 200
    record = fleet.audit(messages.headers["x-request-id"])
    assert (record["user"], record["team"]) == ("dev@example.com", "payments")
    issued = fleet.audit(tokens.headers["x-request-id"])
    assert (issued["api"], issued["outcome"], issued["user"]) == ("oauth", "token_issued", "dev@example.com")


def test_the_idp_s_own_tokens_still_work(fleet: Fleet, keys: token_issuer.KeyFolder) -> None:
    assert fleet.invoke(keys.token("k1")).status_code == 200


def test_a_token_forged_with_another_key_or_expired_is_refused(fleet: Fleet) -> None:
    now = int(time.time())
    claims = {"iss": fleet.url, "aud": "aigw", "sub": "x", "email": "x@example.com", "team": "payments",
              "iat": now, "exp": now + 600}  # fmt: skip
    forged = jwt.encode(claims, "another-secret-that-is-32-bytes-or-more", algorithm="HS256")
    response = fleet.invoke(forged)
    assert (response.status_code, response.json()["reason"]) == (401, "bad_signature")
    expired = jwt.encode({**claims, "iat": now - 7200, "exp": now - 3600}, harness.SIGNIN_SECRET, algorithm="HS256")
    response = fleet.invoke(expired)
    assert (response.status_code, response.json()["reason"]) == (401, "token_expired")


def test_polling_too_fast_slows_the_device_down(fleet: Fleet) -> None:
    grant = fleet.device_code()
    assert fleet.poll(grant["device_code"]).json()["error"] == "authorization_pending"
    hurried = fleet.poll(grant["device_code"])
    assert (hurried.status_code, hurried.json()["error"], hurried.json()["interval"]) == (400, "slow_down", 10)
    assert fleet.audit(hurried.headers["x-request-id"])["outcome"] == "slow_down"


def test_an_expired_or_unknown_device_code_gets_its_own_error(fleet: Fleet) -> None:
    grant = fleet.device_code()
    # The grant's clock, moved past its end (waiting out 600 s would be the other way).
    key = f"aigw:{{dev}}:signin:device:{digest(grant['device_code'])}"
    assert fleet.redis.command("HSET", key, "expires_at", "1").startswith(b":")
    expired = fleet.poll(grant["device_code"])
    assert (expired.status_code, expired.json()["error"]) == (400, "expired_token")
    unknown = fleet.poll("made-up-device-code")
    assert (unknown.status_code, unknown.json()["error"]) == (400, "invalid_grant")
    for response, outcome in ((expired, "expired_token"), (unknown, "invalid_grant")):
        assert fleet.audit(response.headers["x-request-id"])["outcome"] == outcome


def test_a_wrong_client_or_grant_type_is_refused_with_the_oauth_error(fleet: Fleet) -> None:
    wrong_client = fleet.post_form("/oauth/device_authorization", {"client_id": "someone-else"})
    assert (wrong_client.status_code, wrong_client.json()["error"]) == (401, "invalid_client")
    wrong_grant = fleet.post_form("/oauth/token", {"grant_type": "password", "username": "x"})
    assert (wrong_grant.status_code, wrong_grant.json()["error"]) == (400, "unsupported_grant_type")
    not_a_form = httpx.post(fleet.url + "/oauth/token", json={"grant_type": DEVICE_GRANT})
    assert (not_a_form.status_code, not_a_form.json()["error"]) == (400, "invalid_request")
    for response, outcome in (
        (wrong_client, "invalid_client"), (wrong_grant, "unsupported_grant_type"), (not_a_form, "invalid_request"),
    ):  # fmt: skip
        assert fleet.audit(response.headers["x-request-id"])["outcome"] == outcome


def test_a_redirect_uri_not_registered_is_refused(fleet: Fleet) -> None:
    grant = fleet.device_code()
    with httpx.Client(timeout=10) as browser:
        page = browser.get(grant["verification_uri_complete"])
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        refused = browser.post(
            fleet.url + "/device",
            data={"user_code": grant["user_code"], "csrf": csrf[1], "redirect_uri": "https://evil.example/cb"},
            headers={"origin": fleet.url},
        )
    assert refused.status_code == 400 and "redirect_uri is not registered" in refused.text
    assert fleet.audit(refused.headers["x-request-id"])["outcome"] == "invalid_request"


def test_the_verification_page_refuses_other_sites_and_forged_forms(fleet: Fleet) -> None:
    grant = fleet.device_code()
    with httpx.Client(timeout=10) as browser:
        browser.get(grant["verification_uri_complete"])
        other_site = browser.post(
            fleet.url + "/device", data={"user_code": grant["user_code"], "csrf": "x"},
            headers={"origin": "https://evil.example"},
        )  # fmt: skip
        forged = browser.post(
            fleet.url + "/device", data={"user_code": grant["user_code"], "csrf": "not-the-cookie"},
            headers={"origin": fleet.url},
        )  # fmt: skip
    assert other_site.status_code == 403 and forged.status_code == 403
    assert fleet.poll(grant["device_code"]).json()["error"] == "authorization_pending"  # still waiting


def test_a_person_in_no_configured_team_is_refused_naming_the_claim(fleet: Fleet) -> None:
    fleet.user(team="treasury")
    grant = fleet.device_code()
    page = fleet.sign_in(grant)
    assert page.status_code == 403 and "team claim &#x27;team&#x27; (&#x27;treasury&#x27;)" in page.text
    time.sleep(grant["interval"])
    refused = fleet.poll(grant["device_code"])
    assert refused.json()["error"] == "access_denied" and "'team'" in refused.json()["error_description"]
    assert fleet.audit(page.headers["x-request-id"])["outcome"] == "unknown_team"


def test_a_sign_in_the_idp_refuses_is_denied_to_the_device(fleet: Fleet) -> None:
    fleet.user(deny=True)
    grant = fleet.device_code()
    assert fleet.sign_in(grant).status_code == 400
    time.sleep(grant["interval"])
    assert fleet.poll(grant["device_code"]).json()["error"] == "access_denied"


def test_refresh_rotates_and_a_reused_token_revokes_the_family_on_every_process(fleet: Fleet) -> None:
    first = fleet.signed_in()
    rotated = fleet.refresh(first["refresh_token"], base=fleet.second.url)
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert fleet.invoke(second["access_token"]).status_code == 200  # minted on one process, accepted on the other
    # The first refresh token, presented again: whoever holds it is not the one who rotated it.
    reused = fleet.refresh(first["refresh_token"])
    assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")
    assert "revoked everywhere" in reused.json()["error_description"]
    assert fleet.audit(reused.headers["x-request-id"])["reason"] == "refresh_token_reused"
    for base in (fleet.url, fleet.second.url):  # the whole family: the rotated token too, on both processes
        assert fleet.refresh(second["refresh_token"], base=base).json()["error"] == "invalid_grant"


def test_sign_out_revokes_the_refresh_token(fleet: Fleet) -> None:
    tokens = fleet.signed_in()
    revoked = fleet.post_form("/oauth/revoke", {"token": tokens["refresh_token"], "token_type_hint": "refresh_token"})
    assert (revoked.status_code, revoked.json()) == (200, {})
    assert fleet.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"
    unknown = fleet.post_form("/oauth/revoke", {"token": "aigw_rt_unknown"})
    assert (unknown.status_code, unknown.json()) == (200, {})  # RFC 7009: no telling which tokens exist


def test_sign_in_needs_the_shared_store_and_says_so(fleet: Fleet) -> None:
    fleet.redis.pause()
    try:
        response = fleet.post_form("/oauth/device_authorization", {"surface": "cli"})
    finally:
        fleet.redis.resume()
    assert (response.status_code, response.json()["error"]) == (503, "temporarily_unavailable")
    assert response.headers["retry-after"] == "5"


def test_the_settings_each_person_received_are_noted_in_the_shared_store(fleet: Fleet) -> None:
    tokens = fleet.signed_in()
    served = httpx.get(fleet.url + "/managed/settings", headers={"authorization": f"Bearer {tokens['access_token']}"})
    assert served.status_code == 200
    noted = fleet.redis.command("HGET", f"aigw:{{dev}}:signin:settings:{digest('dev@example.com')}", "checksum")
    assert noted.decode().split("\r\n")[1] == served.json()["checksum"]
