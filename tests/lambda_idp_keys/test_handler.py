"""The handler against moto's SSM (in-process), with the IdP stood in for by a dict of URL -> answer; the real
HTTPS fetch is exercised against the local token issuer in tests/gateway/test_idp_keys.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import idp_keys_handler
import pytest
from idp_keys import EMPTY_VALUE, KeySetError, discovery_url
from idp_keys_handler import Clients, Memory, run
from idp_keys_io import fetch_json
from idp_keys_settings import Settings, SettingsError
from moto import mock_aws

from tests.lambda_idp_keys.keys import ISSUER, JWKS_URI, discovery, ec_jwk, rsa_jwk, rsa_private_jwk

REGION = "eu-west-1"
PARAMETER = "/aigw/test/idp-jwks"
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event"}
SETTINGS = Settings.from_env({"ISSUER": ISSUER, "PARAMETER_NAME": PARAMETER})


@dataclass
class FakeIdp:
    answers: dict[str, Any] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def __call__(self, url: str) -> Any:
        self.requests.append(url)
        return self.answers[url]

    def publish(self, *keys: dict[str, Any], document: dict[str, Any] | None = None) -> None:
        self.answers = {discovery_url(ISSUER): document or discovery(), JWKS_URI: {"keys": list(keys)}}


@dataclass
class World:
    ssm: Any
    idp: FakeIdp
    memory: Memory = field(default_factory=Memory)

    def run(self, event: dict[str, Any], now: datetime = NOW) -> dict[str, object]:
        return run(SETTINGS, Clients(ssm=self.ssm, fetch_json=self.idp), event, now, self.memory)

    def parameter(self) -> tuple[dict[str, Any], int]:
        found = self.ssm.get_parameter(Name=PARAMETER)["Parameter"]
        return json.loads(found["Value"]), int(found["Version"])


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        ssm = boto3.client("ssm", region_name=REGION)
        # As CloudFormation creates it: an empty key set, so IAM and the gateway can name it before the first run.
        ssm.put_parameter(Name=PARAMETER, Value=EMPTY_VALUE, Type="String")
        yield World(ssm, FakeIdp())


def test_a_scheduled_run_writes_the_trimmed_keys_with_their_fetch_time(world: World) -> None:
    world.idp.publish(rsa_jwk("k1"), ec_jwk("e1"))
    result = world.run(SCHEDULED)
    assert (result["outcome"], result["kids"], result["tier"]) == ("written", ["e1", "k1"], "Standard")
    value, version = world.parameter()
    assert version == 2
    assert value["fetched_at"] == NOW.isoformat() and value["issuer"] == ISSUER and value["jwks_uri"] == JWKS_URI
    assert [key["kid"] for key in value["keys"]] == ["e1", "k1"]
    assert all("x5c" not in key for key in value["keys"])
    assert world.idp.requests == [discovery_url(ISSUER), JWKS_URI]
    described = world.ssm.describe_parameters()["Parameters"][0]
    assert described["Tier"] == "Intelligent-Tiering"  # what the write asks for; AWS then picks by size


def test_the_same_keys_are_not_written_again(world: World) -> None:
    world.idp.publish(rsa_jwk("k1"))
    world.run(SCHEDULED)
    before = world.parameter()
    result = world.run(SCHEDULED, NOW + timedelta(minutes=5))
    assert result["outcome"] == "unchanged"
    assert world.parameter() == before  # same version, same fetch time


def test_a_rotation_is_written(world: World) -> None:
    world.idp.publish(rsa_jwk("k1"))
    world.run(SCHEDULED)
    world.idp.publish(rsa_jwk("k1"), rsa_jwk("k2"))
    later = NOW + timedelta(minutes=5)
    assert world.run(SCHEDULED, later)["outcome"] == "written"
    value, version = world.parameter()
    assert ([key["kid"] for key in value["keys"]], value["fetched_at"], version) == (["k1", "k2"], later.isoformat(), 3)


def test_on_demand_refreshes_are_rate_limited_and_skip_known_kids(world: World) -> None:
    world.idp.publish(rsa_jwk("k1"))
    assert world.run({"source": "aigw.gateway", "kid": "k1"})["outcome"] == "written"  # the empty parameter
    fetches = len(world.idp.requests)
    world.idp.publish(rsa_jwk("k1"), rsa_jwk("k2"))

    already = world.run({"source": "aigw.gateway", "kid": "k1"}, NOW + timedelta(minutes=10))
    assert (already["outcome"], already["reason"]) == ("skipped", "kid_already_mirrored")
    limited = world.run({"source": "aigw.gateway", "kid": "k2"}, NOW + timedelta(seconds=30))
    assert (limited["outcome"], limited["reason"], limited["asked_kid"]) == ("skipped", "rate_limited", "k2")
    assert len(world.idp.requests) == fetches  # neither asked the IdP

    fetched = world.run({"source": "aigw.gateway", "kid": "k2"}, NOW + timedelta(seconds=61))
    assert (fetched["outcome"], fetched["kids"]) == ("written", ["k1", "k2"])


def test_a_made_up_kid_does_not_reach_the_idp_twice_a_minute(world: World) -> None:
    world.idp.publish(rsa_jwk("k1"))
    world.run(SCHEDULED)
    later = NOW + timedelta(hours=1)  # the parameter's fetch time is long past, and the keys will not change
    assert world.run({"kid": "made-up-1"}, later)["outcome"] == "unchanged"
    assert world.run({"kid": "made-up-2"}, later + timedelta(seconds=20))["reason"] == "rate_limited"
    assert len(world.idp.requests) == 4  # the scheduled run and the first made-up kid, two requests each


def test_private_key_material_is_never_written(world: World) -> None:
    world.idp.publish(rsa_jwk("k1"), rsa_private_jwk("leaked"))
    with pytest.raises(KeySetError, match="private key material"):
        world.run(SCHEDULED)
    assert world.parameter() == (json.loads(EMPTY_VALUE), 1)


def test_a_discovery_document_for_another_issuer_is_refused(world: World) -> None:
    world.idp.publish(rsa_jwk("k1"), document=discovery(issuer="https://evil.example.com/"))
    with pytest.raises(KeySetError, match=r"is for issuer 'https://evil\.example\.com/'"):
        world.run(SCHEDULED)
    assert world.idp.requests == [discovery_url(ISSUER)]  # the key set was not even fetched
    assert world.parameter()[1] == 1


def test_the_handler_reads_its_settings_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISSUER", ISSUER)
    monkeypatch.setenv("PARAMETER_NAME", PARAMETER)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    idp_keys_handler._runtime.cache_clear()
    try:
        settings, _, memory = idp_keys_handler._runtime()
        assert idp_keys_handler._runtime()[2] is memory
        assert (settings.parameter_name, settings.min_refresh) == (PARAMETER, timedelta(seconds=60))
        assert settings.discovery_url == discovery_url(ISSUER)
    finally:
        idp_keys_handler._runtime.cache_clear()


@pytest.mark.parametrize(
    ("environ", "complaint"),
    [
        ({"PARAMETER_NAME": PARAMETER}, "ISSUER is required"),
        ({"ISSUER": ISSUER}, "PARAMETER_NAME is required"),
        ({"ISSUER": "http://idp.example.com", "PARAMETER_NAME": PARAMETER}, "ISSUER must be an https:// URL"),
        (
            {"ISSUER": ISSUER, "PARAMETER_NAME": PARAMETER, "DISCOVERY_URL": "http://idp.example.com/x"},
            "DISCOVERY_URL must be an https:// URL",
        ),
        ({"ISSUER": ISSUER, "PARAMETER_NAME": PARAMETER, "MIN_REFRESH_SECONDS": "0"}, "outside"),
        ({"ISSUER": ISSUER, "PARAMETER_NAME": PARAMETER, "HTTP_TIMEOUT_SECONDS": "soon"}, "not a number"),
    ],
)
def test_bad_settings_name_the_variable(environ: dict[str, str], complaint: str) -> None:
    with pytest.raises(SettingsError, match=complaint):
        Settings.from_env(environ)


# -- the HTTPS fetch ------------------------------------------------------------------------------------


class _Redirector(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/redirect-to-http":
            self.send_response(302)
            self.send_header("Location", "http://idp.example.com/keys")
            self.end_headers()
        else:
            body = b"x" * (1024 * 1024 + 1) if self.path == "/huge" else b"{not json"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def local_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_redirect_to_plain_http_is_not_followed(local_server: str) -> None:
    with pytest.raises(KeySetError, match="a redirect must be an https:// URL"):
        fetch_json(local_server + "/redirect-to-http", timeout=5)


@pytest.mark.parametrize(
    ("path", "complaint"), [("/huge", "more than 1048576 bytes"), ("/garbage", "did not answer JSON")]
)
def test_an_answer_that_is_not_a_small_json_document_is_refused(local_server: str, path: str, complaint: str) -> None:
    with pytest.raises(KeySetError, match=complaint):
        fetch_json(local_server + path, timeout=5)


def test_a_sign_in_code_is_exchanged_at_the_configured_token_endpoint_only(capsys: pytest.CaptureFixture[str]) -> None:
    posted: list[tuple[str, dict[str, str]]] = []

    def idp(url: str, form: dict[str, str]) -> tuple[int, str]:
        posted.append((url, form))
        return 200, '{"id_token": "x.y.z"}'

    endpoint = "https://idp.example.com/oauth2/v1/token"
    settings = Settings.from_env({"ISSUER": ISSUER, "PARAMETER_NAME": PARAMETER, "CODE_EXCHANGE_URL": endpoint})
    clients = Clients(ssm=None, fetch_json=FakeIdp(), post_form=idp)
    form = {"grant_type": "authorization_code", "code": "one-time-code", "code_verifier": "v", "client_id": "c"}
    answer = idp_keys_handler.exchange_code(settings, clients, {**form, "token_endpoint": "https://evil.example"})
    assert answer == {"status": 200, "body": '{"id_token": "x.y.z"}'}
    assert [url for url, _ in posted] == [endpoint]  # a URL in the form is just a field, passed on, never used
    assert "one-time-code" not in capsys.readouterr().out  # logged without the form
    refused = idp_keys_handler.exchange_code(settings, clients, {"grant_type": "password", "username": "u"})
    assert refused["status"] == 400 and len(posted) == 1
    without = idp_keys_handler.exchange_code(SETTINGS, clients, form)  # no CODE_EXCHANGE_URL: off
    assert without["status"] == 501 and len(posted) == 1
