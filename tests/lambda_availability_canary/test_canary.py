"""The canary's checks, run against a gateway serving HTTPS on loopback with a certificate for `localhost`, reached
by its address as the canary reaches the load balancer by its DNS name: running processes, the fake vendor."""

from __future__ import annotations

import secrets
import ssl
from collections.abc import Iterator
from pathlib import Path

import aigw_canary
import httpx
import pytest
from aigw_canary import CheckFailedError, Target

from local import harness, token_issuer
from local.harness import MODEL
from local.tls import LocalTls, make_local_tls
from tests.gateway.conftest import read_jsonl

pytestmark = pytest.mark.usefixtures("reset_vendor")
TOKEN = secrets.token_urlsafe(32)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> LocalTls:
    return make_local_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, tls: LocalTls, vendor: harness.Process, issuer: harness.Process
) -> Iterator[tuple[harness.Process, Path]]:
    workdir = tmp_path_factory.mktemp("canary-gateway")
    settings = harness.settings_for(
        workdir, vendor.url, issuer.url, limits__enabled=False, auth__canary_token_env="AIGW_TEST_CANARY"
    )
    process = harness.start_gateway(workdir, settings, env={"AIGW_TEST_CANARY": TOKEN}, tls=tls)
    yield process, settings.audit.path
    process.stop()


def target(gateway: tuple[harness.Process, Path], tls: LocalTls, server_name: str = "localhost") -> Target:
    port = int(gateway[0].url.rsplit(":", 1)[1])
    return Target(host="127.0.0.1", server_name=server_name, port=port, ca_file=str(tls.ca), timeout_seconds=10)


def test_a_run_passes_and_is_audited_as_the_canarys(gateway: tuple[harness.Process, Path], tls: LocalTls) -> None:
    aigw_canary.run(target(gateway, tls), TOKEN, MODEL)
    records = harness.wait_until(
        lambda: [r for r in read_jsonl(gateway[1]) if r.get("canary")],
        "the canary's audit record",
        timeout=10,
    )
    (record,) = records[-1:]
    assert (record["user"], record["team"], record["status"], record["model"]) == ("aigw-canary", "canary", 200, MODEL)


def test_the_certificate_must_name_the_domain_it_asked_for(
    gateway: tuple[harness.Process, Path], tls: LocalTls
) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        aigw_canary.run(target(gateway, tls, server_name="aigw.example.com"), TOKEN, MODEL)
    untrusted = Target(host="127.0.0.1", server_name="localhost", port=target(gateway, tls).port, timeout_seconds=10)
    with pytest.raises(ssl.SSLCertVerificationError):  # the system's trust store does not know the local CA
        aigw_canary.check_health(untrusted)


def test_a_refused_token_fails_the_run(gateway: tuple[harness.Process, Path], tls: LocalTls) -> None:
    with pytest.raises(CheckFailedError, match=r"invoke answered 401"):
        aigw_canary.run(target(gateway, tls), "not-the-canary", MODEL)


def test_a_failing_vendor_fails_the_run(
    gateway: tuple[harness.Process, Path], tls: LocalTls, vendor: harness.Process
) -> None:
    httpx.post(vendor.url + "/_control", json={"fail_status": 503}).raise_for_status()
    with pytest.raises(CheckFailedError, match=r"invoke answered 5\d\d"):
        aigw_canary.run(target(gateway, tls), TOKEN, MODEL)


def test_a_person_s_token_works_too_but_is_not_the_canary(
    gateway: tuple[harness.Process, Path], tls: LocalTls, keys: token_issuer.KeyFolder
) -> None:
    """The checks are the client's: they do not depend on the canary identity to pass."""
    aigw_canary.check_invoke(target(gateway, tls), keys.token("k1"), MODEL)
